#!/usr/bin/env python3
"""Simulate the interface hardware with ngspice and check it against stated margins.

Prints every figure as one JSON document on stdout and exits 1 when a margin
of a circuit we recommend is not met (2 when ngspice is missing or fails). The
margins, and why they are what they are: NOISE_MARGIN_V, MAX_BIT_DISTORTION, the
Receiver thresholds below, and README.md. Circuits as built on the rig that we do
not recommend are simulated and reported too, with "gated": false.

Usage: check.py [--build DIR] [--json FILE] [--plot FILE.svg]
Needs numpy (and matplotlib for --plot); independent of the pipilot package.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SPICE = HERE / "spice"

#: Noise margin demanded between a settled level and the receiver's threshold
#: (the TTL figure: V_OL 0.4 V against V_IL 0.8 V).
NOISE_MARGIN_V = 0.4
#: Largest change of a single bit's width, as a fraction of the bit time. A
#: 16x oversampling UART (STM32 USART, the soft UART's edge timestamps) reads
#: the majority of samples 7, 8 and 9 of 16 after the start edge it saw 0..1/16
#: bit late, so an edge may move by at most 6/16 = 37.5 % of a bit before a bit
#: is misread. We allow about half of that and leave the rest for clock error,
#: noise and the receiver's own input stage.
MAX_BIT_DISTORTION = 0.20


@dataclass(frozen=True)
class Receiver:
    """Input thresholds of the side that receives the signal."""

    name: str
    vil: float
    vih: float
    basis: str


# The CC3D input stage is not documented: the Main port goes through the board's
# own S.Bus inverter, the Flexi RX straight to an STM32 5 V tolerant pin. NOTES.md
# says the ports need 5 V logic in practice, so we take the widest window of the
# plausible input types: switching anywhere from 0.8 V (TTL, 74LVC at 3.3 V) up to
# 3.5 V (5 V CMOS, 0.7 x VDD).
CC3D_INPUT = Receiver(
    "CC3D port input", 0.8, 3.5,
    "unknown input stage: switching anywhere from 0.8 V (TTL/LVC V_IL) to 3.5 V (5 V CMOS V_IH)",
)
PI_GPIO = Receiver(
    "Pi GPIO input", 0.8, 2.0,
    "BCM283x/BCM2711 GPIO at 3.3 V: V_IL 0.8 V, V_IH 2.0 V",
)


@dataclass(frozen=True)
class Link:
    """One simulated signal path: netlist, parameter changes, bit rate, receiver.

    ``params`` override ``.param`` values of the netlist and ``model`` values of
    the transistor model; the derived netlist is written to the build directory
    so it can be rerun by hand. ``gated`` links must meet every margin.
    """

    key: str
    netlist: str
    baud: int
    receiver: Receiver
    role: str
    description: str
    params: tuple[tuple[str, str], ...] = ()
    model: tuple[tuple[str, str], ...] = ()
    gated: bool = True
    source_high: float = 3.3


#: the level shifter we recommend: stronger base drive, weaker 3.3 V side pull-up
SHIFTER_FIX = (("rb", "4.7k"), ("rl", "22k"))
#: the reverse beta of a 2N3904 is not on its datasheet: check the shifter at half of it too
LOW_BR = (("BR", "0.5"),)


def _shifter_links() -> list[Link]:
    links = []
    for baud in (9600, 57600):
        for way, rx, what in (
            ("up", CC3D_INPUT, "3.3 V -> 5 V, Pi TX -> CC3D Flexi RX"),
            ("down", PI_GPIO, "5 V -> 3.3 V, CC3D Flexi TX -> Pi RX"),
        ):
            net = f"ls_{way}_{baud}.cir"
            links += [
                Link(f"level_shifter_as_built_{way}_{baud}", net, baud, rx, "as built",
                     f"level shifter as built (RB = RL = RH = 10 k), {what}", gated=False),
                Link(f"level_shifter_{way}_{baud}", net, baud, rx, "recommended",
                     f"level shifter, RB = 4.7 k, RL = 22 k, RH = 10 k, {what}", SHIFTER_FIX),
                Link(f"level_shifter_low_br_{way}_{baud}", net, baud, rx, "corner",
                     f"recommended level shifter with the model's reverse beta halved, {what}",
                     SHIFTER_FIX, LOW_BR),
            ]
    return links


INVERTER = Link(
    "inverter", "inverter.cir", 100_000, CC3D_INPUT, "as built and recommended",
    "S.Bus inverter, R1 = R2 = 10 k, Pi TX -> 1 m cable (100 pF) -> CC3D Main port")

LINKS = (
    INVERTER,
    Link("inverter_fast", "inverter.cir", 100_000, CC3D_INPUT, "option for long cables",
         "S.Bus inverter with R2 = 1 k and 100 pF across R1, same load",
         (("r2", "1k"), ("cs", "100p"))),
    *_shifter_links(),
)

#: cable capacitances the inverter is also simulated with (reported, not gated)
CABLE_SWEEP_PF = (50, 100, 150, 200, 300, 500)

#: 2N3904 datasheet limits the model must reproduce (name: (min, max)).
MODEL_LIMITS = {
    "hfe_10mA": (100.0, 300.0),
    "hfe_0.1mA": (40.0, None),
    "vce_sat_V": (None, 0.2),
    "vbe_sat_V": (0.65, 0.85),
    "ts_s": (None, 200e-9),
}


class SpiceError(RuntimeError):
    pass


def run_ngspice(netlist: Path, workdir: Path) -> str:
    exe = shutil.which("ngspice")
    if exe is None:
        raise SpiceError("ngspice not found (Debian package 'ngspice')")
    proc = subprocess.run(
        [exe, "-b", str(netlist)], cwd=workdir, capture_output=True, text=True, timeout=300,
    )
    if proc.returncode != 0 or re.search(r"^\s*Error", proc.stdout + proc.stderr, re.M):
        raise SpiceError(f"ngspice failed on {netlist.name}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def derive(link: Link, workdir: Path, extra: tuple[tuple[str, str], ...] = (),
           tag: str = "") -> Path:
    """Write the link's netlist with its overrides into workdir; returns its path."""
    text = (SPICE / link.netlist).read_text()
    for name, value in link.params + extra:
        text, n = re.subn(rf"^(\.param\b.*?\b{name}=)\S+", rf"\g<1>{value}", text, flags=re.M)
        if n != 1:
            raise SpiceError(f"{link.netlist}: no .param {name}")
    model = "q2n3904.lib"
    if link.model:
        lib = (SPICE / model).read_text()
        for name, value in link.model:
            lib, n = re.subn(rf"\b{name}=\S+", f"{name}={value}", lib)
            if n != 1:
                raise SpiceError(f"q2n3904.lib: no model parameter {name}")
        model = f"q2n3904_{link.key}.lib"
        (workdir / model).write_text(lib)
    text = text.replace(".include q2n3904.lib", f".include {workdir.resolve() / model}"
                        if link.model else f".include {SPICE / model}")
    text = re.sub(r"^\.include (?!/)(\S+)", lambda m: f".include {SPICE / m[1]}", text, flags=re.M)
    name = f"{link.key}{tag}"
    text = re.sub(r"^wrdata \S+", f"wrdata {name}.dat", text, flags=re.M)
    out = workdir / f"{name}.cir"
    out.write_text(text)
    return out


def simulate(link: Link, workdir: Path, extra: tuple[tuple[str, str], ...] = (),
             tag: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    net = derive(link, workdir, extra, tag)
    run_ngspice(net, workdir)
    return load_dat(net.with_suffix(".dat"))


def load_dat(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A wrdata file with one time column and two voltages: (t, v_in, v_out)."""
    data = np.loadtxt(path, skiprows=1)
    return data[:, 0], data[:, 1], data[:, 2]


def crossings(t: np.ndarray, v: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Times where v crosses level (linear interpolation) and the direction (+1 rising)."""
    above = v >= level
    idx = np.nonzero(above[1:] != above[:-1])[0]
    v0, v1 = v[idx], v[idx + 1]
    times = t[idx] + (level - v0) / (v1 - v0) * (t[idx + 1] - t[idx])
    return times, np.where(above[idx + 1], 1, -1)


def _check(name: str, value: float, limit: float, kind: str, unit: str) -> dict[str, object]:
    ok = value <= limit if kind == "max" else value >= limit
    return {"name": name, "value": round(value, 6), kind: limit, "unit": unit, "ok": bool(ok)}


def analyse(link: Link, t: np.ndarray, vin: np.ndarray, vout: np.ndarray) -> dict[str, object]:
    tb = 1.0 / link.baud
    rx = link.receiver
    t_in, _ = crossings(t, vin, link.source_high / 2)
    widths_in = np.diff(t_in)
    long_end = [i + 1 for i, w in enumerate(widths_in) if w > 4.5 * tb]
    single = [i for i, w in enumerate(widths_in) if abs(w - tb) < 0.25 * tb]
    if not long_end or not single:
        raise SpiceError(f"{link.netlist}: stimulus lacks long or single bits")

    # settled levels at the end of long input intervals (and of the idle lead-in)
    ends = [t_in[0]] + [t_in[i] for i in long_end]
    settled = [float(np.interp(te - 0.1 * tb, t, vout)) for te in ends]
    mid = (max(settled) + min(settled)) / 2
    v_high = min(v for v in settled if v > mid)
    v_low = max(v for v in settled if v < mid)

    # 10-90 % transition times of full swings (edges that start from a settled level);
    # the received side may start to move before the driven side crosses its midpoint
    swing = v_high - v_low
    lo10, hi90 = v_low + 0.1 * swing, v_low + 0.9 * swing
    rise, fall = [], []
    for te in ends:
        seg = (t >= te - 0.5 * tb) & (t <= te + 0.95 * tb)
        tt, vv = t[seg], vout[seg]
        c10, _ = crossings(tt, vv, lo10)
        c90, _ = crossings(tt, vv, hi90)
        if len(c10) and len(c90):
            (rise if c90[0] > c10[0] else fall).append(abs(c90[0] - c10[0]))

    # per receiver threshold: every input edge must appear, single bits keep their width
    worst = 0.0
    worst_at = None
    worst_bit = None
    edges_ok = True
    delays: dict[str, list[float]] = {"rise": [], "fall": []}
    for vth in np.linspace(rx.vil, rx.vih, 7):
        t_out, d_out = crossings(t, vout, float(vth))
        if len(t_out) != len(t_in):
            edges_ok = False
            continue
        for i in single:
            err = (t_out[i + 1] - t_out[i]) - widths_in[i]
            if abs(err) > abs(worst):
                worst, worst_at = err, float(vth)
                worst_bit = "high" if d_out[i] > 0 else "low"
        for k in range(len(t_in)):
            delays["rise" if d_out[k] > 0 else "fall"].append(t_out[k] - t_in[k])

    checks = [
        _check("v_low_below_vil_minus_margin", v_low, rx.vil - NOISE_MARGIN_V, "max", "V"),
        _check("v_high_above_vih_plus_margin", v_high, rx.vih + NOISE_MARGIN_V, "min", "V"),
        {"name": "every_edge_crosses_the_threshold_window", "value": edges_ok, "ok": edges_ok},
        _check("single_bit_width_distortion", abs(worst) / tb, MAX_BIT_DISTORTION, "max",
               "fraction of a bit"),
    ]
    us = 1e6
    return {
        "role": link.role,
        "description": link.description,
        "netlist": f"spice/{link.netlist}",
        "changes": dict(link.params + link.model),
        "baud": link.baud,
        "bit_time_us": round(tb * us, 3),
        "receiver": {"name": rx.name, "vil_V": rx.vil, "vih_V": rx.vih, "basis": rx.basis},
        "v_low_V": round(v_low, 4),
        "v_high_V": round(v_high, 4),
        "rise_10_90_us": round(max(rise) * us, 4) if rise else None,
        "fall_10_90_us": round(max(fall) * us, 4) if fall else None,
        "delay_rising_edge_us": _span(delays["rise"]),
        "delay_falling_edge_us": _span(delays["fall"]),
        "bit_distortion_pct": round(100 * abs(worst) / tb, 2),
        "bit_distortion_worst_case": None if worst_bit is None else (
            f"a single {worst_bit} bit at the receiver is {abs(worst) * us:.2f} us "
            f"{'longer' if worst > 0 else 'shorter'} (threshold {worst_at:.2f} V)"),
        "gated": link.gated,
        "checks": checks,
        "ok": all(bool(c["ok"]) for c in checks),
    }


def _span(values: list[float]) -> list[float] | None:
    if not values:
        return None
    return [round(min(values) * 1e6, 4), round(max(values) * 1e6, 4)]


def model_figures(workdir: Path) -> dict[str, object]:
    out = run_ngspice(SPICE / "model_check.cir", workdir)
    figures = {m[1]: float(m[2]) for m in re.finditer(r"^RESULT (\S+) (\S+)", out, re.M)}
    checks = []
    for name, (lo, hi) in MODEL_LIMITS.items():
        if name not in figures:
            raise SpiceError(f"model_check.cir did not report {name}")
        v = figures[name]
        ok = (lo is None or v >= lo) and (hi is None or v <= hi)
        checks.append({"name": name, "value": v, "min": lo, "max": hi, "ok": ok})
    return {
        "model": "spice/q2n3904.lib",
        **{k: float(f"{v:.4g}") for k, v in figures.items()},
        "checks": checks,
        "gated": True,
        "ok": all(c["ok"] for c in checks),
    }


def plot(results: dict[str, tuple[Link, np.ndarray, np.ndarray, np.ndarray]], path: Path) -> None:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "pipilot-hw"
    fig, axes = plt.subplots(len(results), 1, figsize=(9, 2.4 * len(results)))
    for ax, (key, (link, t, vin, vout)) in zip(axes, results.items(), strict=True):
        tb = 1.0 / link.baud
        ax.plot(t / tb, vin, lw=1, label="driven side")
        ax.plot(t / tb, vout, lw=1.2, label="received side")
        for v, style in ((link.receiver.vil, ":"), (link.receiver.vih, "--")):
            ax.axhline(v, color="grey", ls=style, lw=0.8)
        ax.set_title(f"{key}: {link.description}", fontsize=8)
        ax.set_xlabel(f"time in bits ({tb * 1e6:.2f} us a bit)", fontsize=7)
        ax.set_ylabel("V", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.set_xlim(3, t[-1] / tb)
        ax.legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, format=path.suffix[1:] or "svg", metadata={"Date": None})
    plt.close(fig)


def cable_sweep(workdir: Path) -> dict[str, object]:
    """The as-built inverter against cable capacitance: how long may the cable be?"""
    base = INVERTER
    rows = {}
    for pf in CABLE_SWEEP_PF:
        t, vin, vout = simulate(base, workdir, (("ccable", f"{pf}p"),), f"_cable_{pf}pF")
        r = analyse(base, t, vin, vout)
        rows[f"{pf}pF"] = {"bit_distortion_pct": r["bit_distortion_pct"],
                           "rise_10_90_us": r["rise_10_90_us"], "ok": r["ok"]}
    passing = [pf for pf in CABLE_SWEEP_PF if rows[f"{pf}pF"]["ok"]]
    return {"description": "as-built inverter with other cable capacitances (about 100 pF/m)",
            "gated": False, "results": rows,
            "largest_passing_pF": max(passing) if passing else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", type=Path, default=HERE / "build",
                    help="directory for ngspice output (default hw/build)")
    ap.add_argument("--plot", type=Path, help="write the waveforms to this SVG")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    args = ap.parse_args(argv)
    args.build = args.build.resolve()
    args.build.mkdir(parents=True, exist_ok=True)

    report: dict[str, object] = {
        "margins": {
            "noise_margin_V": NOISE_MARGIN_V,
            "max_single_bit_distortion": MAX_BIT_DISTORTION,
        },
    }
    waves = {}
    try:
        report["model"] = model_figures(args.build)
        for link in LINKS:
            t, vin, vout = simulate(link, args.build)
            report[link.key] = analyse(link, t, vin, vout)
            if link.role != "corner" and not link.key.startswith("level_shifter_as_built_up"):
                waves[link.key] = (link, t, vin, vout)
        report["inverter_cable_sweep"] = cable_sweep(args.build)
    except SpiceError as e:
        print(f"check.py: {e}", file=sys.stderr)
        return 2
    failed = [k for k, v in report.items()
              if isinstance(v, dict) and v.get("gated") and not v.get("ok")]
    report["failed"] = failed
    report["not_gated_failing"] = [
        k for k, v in report.items()
        if isinstance(v, dict) and "checks" in v and not v.get("gated") and not v.get("ok")]
    report["ok"] = not failed
    if args.plot:
        plot(waves, args.plot)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    for key in report["not_gated_failing"]:
        print(f"check.py: note: {key} ({report[key]['role']}) misses a margin", file=sys.stderr)
    for key in failed:
        print(f"check.py: FAIL: {key} misses a margin", file=sys.stderr)
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
