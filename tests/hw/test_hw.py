"""hw/: `make -C hw` renders and checks; the checks measure what they claim and can fail."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

HW = Path(__file__).resolve().parents[2] / "hw"


def _load_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hw_check", HW / "check.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["hw_check"] = mod
    spec.loader.exec_module(mod)
    return mod


check = _load_check()


def _need_ngspice() -> None:
    if shutil.which("ngspice") is None:
        pytest.fail("ngspice is not installed (Debian package 'ngspice', tools/apt/hw.txt)")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """One `make -C hw` into a temporary build and SVG directory."""
    _need_ngspice()
    out = tmp_path_factory.mktemp("hw")
    proc = subprocess.run(
        ["make", "-C", str(HW), f"PYTHON={sys.executable}", f"BUILD={out / 'build'}",
         f"SVG={out / 'svg'}", "-B"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    figures = json.loads((out / "build" / "figures.json").read_text())
    return figures, out / "svg"


@pytest.mark.slow
def test_make_renders_every_svg(made: tuple[dict, Path]) -> None:
    _, svg = made
    for name in ("inverter", "level_shifter", "wiring", "waveforms"):
        root = ET.parse(svg / f"{name}.svg").getroot()
        assert root.tag.endswith("svg"), name


@pytest.mark.slow
def test_transistor_model_matches_datasheet(made: tuple[dict, Path]) -> None:
    model = made[0]["model"]
    assert model["ok"]
    assert 100 <= model["hfe_10mA"] <= 300
    assert 150e-9 <= model["ts_s"] <= 200e-9  # at the slow datasheet limit, on purpose


@pytest.mark.slow
def test_inverter_figures(made: tuple[dict, Path]) -> None:
    inv = made[0]["inverter"]
    assert inv["baud"] == 100_000
    assert inv["v_low_V"] < 0.2 and inv["v_high_V"] > 4.8
    # a 10 k pull-up into 110 pF: 2.2 RC = 2.4 us plus the model's junctions
    assert 2.0 < inv["rise_10_90_us"] < 3.5
    assert inv["fall_10_90_us"] < 0.5
    assert 10 < inv["bit_distortion_pct"] < 20
    assert inv["ok"] and inv["gated"]


@pytest.mark.slow
def test_inverter_cable_sweep_says_where_it_stops_working(made: tuple[dict, Path]) -> None:
    sweep = made[0]["inverter_cable_sweep"]
    pct = [row["bit_distortion_pct"] for row in sweep["results"].values()]
    assert pct == sorted(pct), "distortion must grow with cable capacitance"
    assert sweep["largest_passing_pF"] == 100
    assert not sweep["results"]["200pF"]["ok"]


@pytest.mark.slow
def test_as_built_shifter_fails_towards_the_pi_and_is_reported(made: tuple[dict, Path]) -> None:
    figures = made[0]
    for baud in (9600, 57600):
        down = figures[f"level_shifter_as_built_down_{baud}"]
        assert not down["ok"] and not down["gated"]
        failed = [c["name"] for c in down["checks"] if not c["ok"]]
        assert failed == ["v_low_below_vil_minus_margin"]
        assert 0.4 < down["v_low_V"] < 0.8
        assert f"level_shifter_as_built_down_{baud}" in figures["not_gated_failing"]


@pytest.mark.slow
def test_recommended_shifter_passes_every_direction_rate_and_corner(
    made: tuple[dict, Path],
) -> None:
    figures = made[0]
    for way in ("up", "down"):
        for baud in (9600, 57600):
            for key in (f"level_shifter_{way}_{baud}", f"level_shifter_low_br_{way}_{baud}"):
                assert figures[key]["gated"] and figures[key]["ok"], key
    assert figures["failed"] == [] and figures["ok"]


# --- the measurement itself, on waveforms with known answers (no ngspice) ---

TB = 1e-5
LINK = check.INVERTER


def _uart_wave(shape: str, rc: float = 0.0, low: float = 0.0, high: float = 5.0):
    """Input: idle, 0x55, 0x00, idle (UART level); output: the inverted wave."""
    bits = [1] * 5 + [0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 1, 1] + [0] * 10 + [1] * 7
    t = np.arange(0, len(bits) * TB, TB / 200)
    vin = np.array([3.3 * bits[int(x / TB)] for x in t])
    target = np.where(vin > 1.65, low, high)
    if shape == "ideal":
        return t, vin, target
    out = np.empty_like(target)
    out[0] = target[0]
    dt = t[1] - t[0]
    for i in range(1, len(t)):  # first-order RC on rising edges only, like a pull-up
        if target[i] > out[i - 1]:
            out[i] = out[i - 1] + (target[i] - out[i - 1]) * (1 - np.exp(-dt / rc))
        else:
            out[i] = target[i]
    return t, vin, out


def test_crossings_interpolates() -> None:
    t = np.array([0.0, 1.0, 2.0, 3.0])
    v = np.array([0.0, 2.0, 2.0, 0.0])
    times, dirs = check.crossings(t, v, 1.0)
    assert times.tolist() == [0.5, 2.5] and dirs.tolist() == [1, -1]


def test_ideal_wave_passes_with_no_distortion() -> None:
    r = check.analyse(LINK, *_uart_wave("ideal"))
    assert r["ok"] and r["bit_distortion_pct"] < 1


def test_slow_rise_fails_distortion() -> None:
    # RC = 2 us: reaching 3.5 V of 5 V takes 1.2 RC = 2.4 us, 24 % of a bit
    r = check.analyse(LINK, *_uart_wave("rc", rc=2e-6))
    failed = {c["name"] for c in r["checks"] if not c["ok"]}
    assert "single_bit_width_distortion" in failed
    assert 22 < r["bit_distortion_pct"] < 26


def test_bad_levels_fail() -> None:
    r = check.analyse(LINK, *_uart_wave("ideal", low=0.6, high=3.7))
    failed = {c["name"] for c in r["checks"] if not c["ok"]}
    assert failed == {"v_low_below_vil_minus_margin", "v_high_above_vih_plus_margin"}


def test_swallowed_bits_fail() -> None:
    # RC = 10 us: a single high bit at the output peaks at 5 V x (1 - 1/e) = 3.16 V < 3.5 V
    r = check.analyse(LINK, *_uart_wave("rc", rc=10e-6))
    failed = {c["name"] for c in r["checks"] if not c["ok"]}
    assert "every_edge_crosses_the_threshold_window" in failed


@pytest.mark.slow
def test_check_exits_1_when_a_gated_circuit_misses_a_margin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    _need_ngspice()
    as_built = next(lk for lk in check.LINKS if lk.key == "level_shifter_as_built_down_9600")
    gated = check.Link(**{**as_built.__dict__, "gated": True})
    monkeypatch.setattr(check, "LINKS", (gated,))
    monkeypatch.setattr(check, "CABLE_SWEEP_PF", (100,))
    assert check.main(["--build", str(tmp_path)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["failed"] == ["level_shifter_as_built_down_9600"] and not report["ok"]


def test_missing_ngspice_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert check.main(["--build", str(tmp_path)]) == 2
    assert "ngspice not found" in capsys.readouterr().err
