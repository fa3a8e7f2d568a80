"""Every file loader, fed mutated files: it loads, or it raises a PipilotError. Never a traceback.

The loaders are the core configuration (``pipilot.core.config.load``), its
``[server]`` table (``pipilot.server.settings``), missions
(``pipilot.mission.spec.load_mission``) and ``.opl`` telemetry logs
(``pipilot.uavtalk.opl.read_opl`` and the packet parser ``log dump`` feeds).
Each starts from a valid file and is mutated by byte flips, truncation,
inserted bytes, invalid UTF-8, huge integers, NaN/inf literals, values of the
wrong type and deep nesting.
"""

from __future__ import annotations

import argparse
import re
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipilot.core import config as core_config
from pipilot.errors import PipilotError
from pipilot.mission.spec import load_mission
from pipilot.server.settings import server_config
from pipilot.uavtalk import PacketParser, PacketType, encode_packet, load_definitions
from pipilot.uavtalk.opl import OplWriter, read_opl

REPO = Path(__file__).resolve().parents[1]
CONFIG = (REPO / "docs/pipilot.example.toml").read_text() + """
[server]
host = "127.0.0.1"
port = 8080
heartbeat_timeout_ms = 300
update_hz = 20
rate = 80
burst = 40
observers = "token"
extra_origins = ["http://localhost:8080"]
"""
MISSION = (REPO / "examples/hover.toml").read_text()
REG = load_definitions()
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

HOSTILE_VALUES = [
    "nan", "+nan", "-nan", "inf", "+inf", "-inf", "1e400", "-1e400",
    "9" * 400, "-" + "9" * 400, "9" * 5000, "9223372036854775808", "0x7fffffffffffffff",
    "0", "-1", "-0.0", "1e-320", "true", '""', '"text"', '"' + "x" * 5000 + '"',
    "[]", "[1, 2]", '["a", 1.5]', "{}", "{ a = 1 }", "1979-05-27T07:32:00Z", "07:32:00",
    "[" * 50 + "]" * 50, "[" * 3000 + "]" * 3000, "[" * 100_000,
]
_ASSIGN = re.compile(r"^(\s*[A-Za-z0-9_.\"-]+\s*=\s*)([^#\n]*?)(\s*(#.*)?)$", re.M)


@st.composite
def mutated_toml(draw: st.DrawFn, seed: str) -> bytes:
    """``seed`` with one to three hostile edits, as the bytes of a file."""
    text = seed
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["value", "value", "value", "table", "text"]))
        if kind == "value":
            spots = list(_ASSIGN.finditer(text))
            m = draw(st.sampled_from(spots))
            value = draw(st.sampled_from(HOSTILE_VALUES))
            text = text[:m.start(2)] + value + text[m.end(2):]
        elif kind == "table":
            heads = [m.start() for m in re.finditer(r"^\[", text, re.M)] + [len(text)]
            at = draw(st.sampled_from(heads))
            name = draw(st.sampled_from(["link", "server", "bogus", "sources.x", "channels.map",
                                         "steps", "sim", "drift.estimator", "mission"]))
            body = draw(st.sampled_from(["", "x = 1\n", f"period_ms = {'9' * 400}\n",
                                         "priority = nan\n", "mode = 5\n"]))
            double = draw(st.booleans())
            head = f"[[{name}]]" if double else f"[{name}]"
            text = text[:at] + f"\n{head}\n{body}" + text[at:]
        else:
            at = draw(st.integers(0, len(text)))
            ins = draw(st.sampled_from(["\n= 1\n", "[", "]", '"', "\\", "\x00", "x = [" * 20,
                                        "\n" + "a." * 500 + "b = 1\n"]))
            text = text[:at] + ins + text[at:]
    data = text.encode()
    return draw(mutated_bytes(data))


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """Maybe flip, drop, insert bytes (some not UTF-8), or truncate."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "non_utf8", "none"]))
        if not buf or kind == "none":
            continue
        at = draw(st.integers(0, len(buf) - 1))
        if kind == "flip":
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del buf[at:]
        elif kind == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            buf[at:at] = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xfe\xff"]))
    return bytes(buf)


def _loads_or_refuses(fn, *args) -> None:  # type: ignore[no-untyped-def]
    try:
        fn(*args)
    except PipilotError as exc:
        text = str(exc)
        assert text and "\n" not in text.strip(), text   # one line
        assert len(text) < 2000, text[:200]


def _server(path: Path) -> None:
    table = core_config.load(path).server
    args = argparse.Namespace(http_host=None, http_port=None, token="t")
    server_config(args, table, env={})


@pytest.mark.parametrize("loader", ["config", "server", "mission"])
def test_seed_files_load(tmp_path: Path, loader: str) -> None:
    """The unmutated seeds are valid: the property below starts from a working file."""
    p = tmp_path / "seed.toml"
    p.write_text(MISSION if loader == "mission" else CONFIG)
    {"config": core_config.load, "server": _server, "mission": load_mission}[loader](p)


@FUZZ
@given(data=mutated_toml(CONFIG))
def test_core_config_never_tracebacks(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "pipilot.toml"
    p.write_bytes(data)
    _loads_or_refuses(core_config.load, p)


@FUZZ
@given(data=mutated_toml(CONFIG))
def test_server_table_never_tracebacks(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "pipilot.toml"
    p.write_bytes(data)
    _loads_or_refuses(_server, p)


@FUZZ
@given(data=mutated_toml(MISSION))
def test_mission_never_tracebacks(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "mission.toml"
    p.write_bytes(data)
    _loads_or_refuses(load_mission, p)


def test_a_5000_character_step_action_is_refused_in_one_short_line(tmp_path: Path) -> None:
    # found by the property above in CI: the step's name went into the key and
    # the message, each cut at 1000 characters, and the line was 2051 long
    p = tmp_path / "mission.toml"
    p.write_text(MISSION.replace('action = "arm"', 'action = "' + "x" * 5000 + '"', 1))
    with pytest.raises(PipilotError, match="unknown action") as err:
        load_mission(p)
    assert len(str(err.value)) < 2000


def _opl_seed(tmp_path: Path) -> bytes:
    p = tmp_path / "seed.opl"
    with OplWriter.open(p, 0.0) as w:
        for i in range(5):
            for obj in (REG["AttitudeState"], REG["FlightStatus"]):
                w.write(encode_packet(PacketType.OBJ, obj.object_id, 0,
                                      obj.encode(obj.defaults())), i * 0.1)
    return p.read_bytes()


@st.composite
def mutated_opl(draw: st.DrawFn, seed: bytes) -> bytes:
    buf = bytearray(seed)
    if draw(st.booleans()):   # a record header with a hostile length
        at = draw(st.integers(0, len(buf)))
        size = draw(st.sampled_from([-1, -(2**63), 2**63 - 1, 2**31, 1 << 24, (1 << 24) + 1, 0]))
        buf[at:at] = struct.pack("<Iq", draw(st.integers(0, 2**32 - 1)), size)
    return draw(mutated_bytes(bytes(buf)))


def _dump(path: Path) -> None:
    parser = PacketParser(REG)
    for rec in read_opl(path):
        for p in parser.feed(rec.data):
            assert p.name is None or p.name in REG


def test_opl_seed_loads(tmp_path: Path) -> None:
    p = tmp_path / "x.opl"
    p.write_bytes(_opl_seed(tmp_path))
    assert len(list(read_opl(p))) == 10


@FUZZ
@given(data=st.data())
def test_opl_log_never_tracebacks(tmp_path: Path, data: st.DataObject) -> None:
    p = tmp_path / "x.opl"
    p.write_bytes(data.draw(mutated_opl(_opl_seed(tmp_path))))
    _loads_or_refuses(_dump, p)
