#!/usr/bin/env python3
"""Draw the interface hardware as SVG schematics (schemdraw).

Component names and values match bom.csv, README.md and the SPICE netlists.
Usage: schematics.py OUTDIR   (writes inverter.svg, level_shifter.svg, wiring.svg)
"""

from __future__ import annotations

import sys
from pathlib import Path

import schemdraw
import schemdraw.elements as elm

schemdraw.use("svg")


def inverter(path: Path) -> None:
    """S.Bus inverter: Pi TX (3.3 V UART) -> NPN -> 5 V inverted S.Bus."""
    with schemdraw.Drawing(file=str(path), show=False) as d:
        d.config(fontsize=11)
        src = elm.Dot(open=True).label("Pi GPIO14 TXD\n(header pin 8)", "left")
        elm.Resistor().right().label("R1 10k")
        q = elm.BjtNpn(circle=True).anchor("base").label("Q1\n2N3904", "right", ofst=(0.3, 0))
        elm.Ground().at(q.emitter)
        elm.Line().at(q.collector).up(0.5)
        top = elm.Dot()
        elm.Resistor().up().label("R2\n10k", "bottom")
        elm.Vdd().label("+5 V (CC3D Main pin 2)")
        elm.Line().at(top.end).right(3)
        elm.Dot(open=True).label("S.Bus to CC3D Main\nport pin 4 (RX)", "right")
        elm.Label().at((src.end[0], src.end[1] - 2.2)).label(
            "option for cables longer than 1 m (over 100 pF): R2 = 1k and 100 pF across R1",
            fontsize=9, halign="left")


def level_shifter(path: Path) -> None:
    """One channel of the common-base NPN level shifter (two are built)."""
    with schemdraw.Drawing(file=str(path), show=False) as d:
        d.config(fontsize=11)
        lo = elm.Dot(open=True).label("3.3 V side\n(Pi GPIO)", "left")
        elm.Line().right(1.5)
        n_lo = elm.Dot()
        elm.Line().right(1.5)
        q = elm.BjtNpn(circle=True).theta(-90).anchor("emitter")
        elm.Label().at((q.base[0] + 0.9, q.base[1] - 1.4)).label("Q 2N3904", fontsize=10)
        elm.Line().at(q.collector).right(1.5)
        n_hi = elm.Dot()
        elm.Line().right(1.5)
        elm.Dot(open=True).label("5 V side\n(CC3D Flexi)", "right")
        elm.Resistor().at(n_lo.end).up().label("RL\n22k", "bottom")
        elm.Vdd().label("+3.3 V")
        elm.Line().at(q.base).up(0.5)
        elm.Resistor().up().label("RB\n4.7k", "bottom")
        elm.Vdd().label("+3.3 V")
        elm.Resistor().at(n_hi.end).up().label("RH\n10k", "bottom")
        elm.Vdd().label("+5 V")
        elm.Label().at((lo.end[0], lo.end[1] - 2.2)).label(
            "one channel; build two: Pi TX -> CC3D Flexi RX and CC3D Flexi TX -> Pi RX.\n"
            "The rig as built has RB = RL = 10k: its 5 V -> 3.3 V low level (0.68 V)\n"
            "leaves no noise margin at the Pi (V_IL 0.8 V); see README.md.",
            fontsize=9, halign="left")


def _box(d: schemdraw.Drawing, x: float, y: float, w: float, h: float, text: str) -> None:
    elm.Line().at((x, y)).right(w)
    elm.Line().up(h)
    elm.Line().left(w)
    elm.Line().down(h)
    elm.Label().at((x + w / 2, y + h / 2)).label(text, fontsize=9)


def wiring(path: Path) -> None:
    """The whole interface: Pi header, the three signal paths, CC3D ports, power."""
    rows = {  # y of each signal row; Pi on the left at x = 0, CC3D on the right at x = 16
        "gnd": 0.0, "v5": 1.5, "ctx": 3.0, "ptx": 4.5, "sbus": 6.0, "v33": 7.5,
    }
    pi_pins = {"gnd": "GND (6)", "ctx": "GPIO27 soft RX (13)", "ptx": "GPIO17 soft TX (11)",
               "sbus": "GPIO14 TXD (8)", "v33": "3V3 (1)"}
    cc_pins = {"gnd": "Main 1 GND", "v5": "Main 2 +5V", "ctx": "Flexi 3 TX",
               "ptx": "Flexi 4 RX", "sbus": "Main 4 RX (S.Bus)"}
    with schemdraw.Drawing(file=str(path), show=False) as d:
        d.config(fontsize=10, unit=2)
        _box(d, -4.5, -0.75, 4.5, 9.0, "")
        elm.Label().at((-2.25, 8.6)).label("Raspberry Pi 40-pin header", fontsize=10)
        _box(d, 16.0, -0.75, 4.5, 9.0, "")
        elm.Label().at((18.25, 8.6)).label("CC3D ports", fontsize=10)
        for key, name in pi_pins.items():
            elm.Label().at((-0.2, rows[key])).label(name, halign="right", fontsize=9)
        for key, name in cc_pins.items():
            elm.Label().at((16.2, rows[key])).label(name, halign="left", fontsize=9)
        _box(d, 6.0, 5.5, 4.0, 1.0, "S.Bus inverter (Q1, R1, R2)")
        _box(d, 6.0, 2.5, 4.0, 2.5, "level shifter, 2 channels\n(Q2, Q3, RB, RL, RH x 2)")
        elm.Line().at((0, rows["sbus"])).right(6).label("3.3 V UART", fontsize=8)
        elm.Line().at((10, rows["sbus"])).right(6).label("inverted, 5 V", fontsize=8)
        elm.Line().at((0, rows["ptx"])).right(6).label("Pi -> CC3D", fontsize=8)
        elm.Line().at((10, rows["ptx"])).right(6)
        elm.Line().at((0, rows["ctx"])).right(6).label("CC3D -> Pi", "bottom", fontsize=8)
        elm.Line().at((10, rows["ctx"])).right(6)
        elm.Line().at((0, rows["gnd"])).right(16).label("common ground", fontsize=8)
        elm.Line().at((0, rows["v33"])).right(8).label("3.3 V: shifter RB, RL", fontsize=8)
        elm.Line().down(0.5)
        elm.Line().at((16, rows["v5"])).left(8).label("+5 V: R2, shifter RH", "bottom",
                                                       fontsize=8)
        elm.Line().up(1.0)
        elm.Label().at((8.0, -1.6)).label(
            "Pi and CC3D keep their own supplies; do not join the Pi's 5 V pins to the CC3D's "
            "+5 V unless one regulator feeds both.", fontsize=8)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    inverter(out / "inverter.svg")
    level_shifter(out / "level_shifter.svg")
    wiring(out / "wiring.svg")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
