"""The module under QEMU: load two loopback ports, loop TX back to RX, push bytes
at 9600 and 57600 with several line settings, read them back intact, unload
cleanly; then wire two ports crosswise with disagreeing settings and check that
parity and framing errors are flagged and counted."""

from __future__ import annotations

import re

import pytest
from softuart_kbuild import MissingTool
from softuart_qemu import run

pytestmark = [pytest.mark.kernel, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.mark.parametrize("series", ["6.1", "6.12"])
def test_loopback_under_qemu(series: str, module_build) -> None:  # type: ignore[no-untyped-def]
    _, built = module_build(series)
    try:
        r = run(series, built.ko)
    except MissingTool as exc:
        pytest.fail(str(exc))
    assert f"SOFTUART-QEMU: booted {series}." in r.console, r.console[-3000:]
    assert r.result == "PASS", r.console[-3000:]
    cases = re.findall(r"^CASE (\d+) (\d[NOE]\d) ok", r.console, re.MULTILINE)
    bauds = {b for b, _ in cases}
    assert {"9600", "57600"} <= bauds
    assert len(cases) >= 8
    assert "CASE break ok" in r.console
    assert "CASE drain ok" in r.console and "CASE flush ok" in r.console
    # The port's counters as serial_core shows them (each case checked its own
    # tx/rx deltas): thousands of bytes, one break, no errors.
    m = re.search(r"^0: uart:softuart .* tx:(\d+) rx:(\d+)(.*)$", r.console, re.MULTILINE)
    assert m, r.console[-3000:]
    assert int(m.group(2)) > 5000
    assert "brk:1" in m.group(3)
    assert "fe:" not in m.group(3) and "pe:" not in m.group(3) and "oe:" not in m.group(3)
    # Several instances: the second loopback port carried its own traffic.
    m1 = re.search(r"^1: uart:softuart .* tx:(\d+) rx:(\d+)", r.console, re.MULTILINE)
    assert m1 and int(m1.group(1)) == int(m1.group(2)) == 1280
    # Crossed pair with disagreeing settings: errors flagged, counted, ignorable.
    for case in ("pair", "parity-error", "ignpar", "framing-error"):
        assert f"CASE {case} ok" in r.console
    assert re.search(r"^1: uart:softuart .* fe:16 pe:32", r.console, re.MULTILINE)
    assert "tx_late_aborts: 0" in r.console
