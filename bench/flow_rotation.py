"""Is the telemetry's gyro enough to take the craft's rotation out of the optical flow?

A downward camera sees flow = v / h + body rate: in a hover the rotation
term dominates, and what is left of it after compensation is velocity error
(``h x`` the rate error). This flies gusty hovers of the lock-step simulated
craft (stock firmware's stabilisation, no compensation loop), logs the true
body rates every physics step, and compares the mean rate over each 10 ms
flow interval with what each source can offer at that moment:

- ``gyro_telemetry``: GyroState (the FC's bias-corrected gyro) published at
  period P over the 9600-baud line beside AttitudeState and AccelState,
  through a FIFO line model (packet sizes from pipilot.uavtalk, 960 bytes/s)
  plus a latency L. ``latest``: the newest sample that has arrived;
  ``aligned``: the flow is held back until samples around it have arrived
  (L known) and the samples are interpolated at the interval's middle: the
  velocity then comes ``delay_s`` late.
- ``attitude_derivative``: the difference of consecutive AttitudeState roll
  and pitch (Euler rates = body rates near level), same line and latency.
- ``mpu6050``: the `pipilot.sensors.mpu6050` driver reading its register
  model (`pipilot.sim.mpu6050`) on a simulated I2C bus at R Hz, bias
  calibrated at rest, samples stamped on the Pi's clock with up to
  ``--stamp-jitter-ms`` of scheduling error, dated back by the DLPF's delay,
  averaged over the flow interval.

Per source: rms and p95 of the velocity error at heights 0.5, 1.0 and
1.5 m (the model has no ground effect, so the rotation does not depend on the
height and the error scales with it), and the largest position error that
integrating it over the hover gives, as a share of the hold's excursion
budget (median 0.12 m, p90 0.25 m). Ground truth is read here because this
is a measurement: no flight code reads it.

    PYTHONPATH=. python bench/flow_rotation.py [--seeds 0,1,2,3] [--hover-s 60] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import random
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from pipilot.core.setpoints import Setpoint
from pipilot.mission.events import EventKind
from pipilot.mission.lockstep import run_lockstep, sim_lockstep
from pipilot.mission.runner import run_spec
from pipilot.mission.spec import load_mission
from pipilot.sensors.mpu6050 import ImuConfig, Mpu6050
from pipilot.sim.flowdeck import SimI2cBus
from pipilot.sim.model import PHYSICS_DT, SimulatedCC3D
from pipilot.sim.mpu6050 import Mpu6050Model
from pipilot.sim.telemetry import QUEUE_SIZE
from pipilot.uavtalk import linkbudget
from pipilot.uavtalk.linkbudget import (
    BAUD,
    CC3D_OBJECTS,
    SAMPLED,
    USABLE_SHARE,
    fastest_period_ms,
    link_load,
)

ROOT = Path(__file__).resolve().parents[1]
LINE_BYTES_S = linkbudget.line_bytes_s(BAUD)
FLOW_PERIOD_S = 0.010
HEIGHTS_M = (0.5, 1.0, 1.5)
BUDGETS_M = {"median": 0.12, "p90": 0.25}
LATENCIES_S = (0.020, 0.050, 0.100)
IMU_RATES_HZ = (200, 500, 1000)
IMU_DLPF = {200: 3, 500: 2, 1000: 1}
"""DLPF per rate: bandwidth below half the sample rate (42, 98, 188 Hz)."""
VIBRATION_DPS = 0.25
"""Airframe vibration on the Pi's IMU: as on the simulated CC3D's gyro (QuadParams)."""
WIND_MPS, GUST_MPS = 0.5, 0.3
KEPT = ("SystemAlarms", "FlightTelemetryStats")
"""What a trimmed link keeps of the FC's other periodic objects (alarms, link statistics)."""
HOLD_KP_DEG_PER_M, HOLD_KV_DEG_PER_MPS, HOLD_MAX_DEG = 8.0, 6.0, 8.0
STICK_ANGLE_DEG = 42.0


def packet_bytes() -> dict[str, int]:
    """Bytes on the wire of one update of each of the CC3D's objects."""
    return {name: linkbudget.packet_bytes(name) for name in CC3D_OBJECTS}


def baseline_periodic(trimmed: bool = False) -> dict[str, int]:
    """The FC's other periodic objects at 16.09's default periods, ms; ``trimmed``: only
    `KEPT` (the ground may turn the rest off through their metadata)."""
    return linkbudget.stock_periodic(KEPT if trimmed else None)


def scenarios() -> list[dict[str, Any]]:
    """Link configurations: which objects at which periods (ms), and what is asked of it."""
    stock, trimmed = baseline_periodic(), baseline_periodic(trimmed=True)
    drift = {"AttitudeState": 200, "AccelState": 100}       # the drift loop's periods
    out = [
        {"name": "stock objects, drift loop's periods, GyroState default 1 s",
         "key": "stock/att200/accel100/gyro1000", "base": stock, "attitude": True,
         "periods": drift | {"GyroState": 1000}},
        {"name": "stock objects, drift loop's periods, GyroState 100 ms (over the line)",
         "key": "stock/att200/accel100/gyro100", "base": stock,
         "periods": drift | {"GyroState": 100}},
    ]
    g = fastest_period_ms("GyroState", trimmed | drift)
    if g is not None:
        out.append({"name": "trimmed link, drift loop's periods, fastest GyroState",
                    "key": f"trimmed/att200/accel100/gyro{g}", "base": trimmed,
                    "periods": drift | {"GyroState": g}})
    g = fastest_period_ms("GyroState", trimmed | {"AttitudeState": 200})
    if g is not None:
        out.append({"name": "trimmed link, AttitudeState 200 ms, no AccelState, fastest GyroState",
                    "key": f"trimmed/att200/gyro{g}", "base": trimmed,
                    "periods": {"AttitudeState": 200, "GyroState": g}})
    a = fastest_period_ms("AttitudeState", trimmed)
    if a is not None:
        out.append({"name": "trimmed link, fastest AttitudeState alone",
                    "key": f"trimmed/att{a}", "base": trimmed, "attitude": True,
                    "periods": {"AttitudeState": a}})
    for sc in out:
        sc["load_bytes_s"] = round(link_load(sc["base"] | sc["periods"]), 1)
        sc["usable_bytes_s"] = round(USABLE_SHARE * LINE_BYTES_S, 1)
    return out


class _OffsetClock:
    """The model's time plus the time spent calibrating before the flight."""

    def __init__(self, model: SimulatedCC3D) -> None:
        self.model = model
        self.offset = 0.0

    def now(self) -> float:
        return self.model.now + self.offset

    def advance(self, dt: float) -> None:
        self.offset += dt


class _Log:
    """Every physics step: true body rates, the FC's GyroState and attitude."""

    def __init__(self, model: SimulatedCC3D) -> None:
        self.model = model
        self.t: list[float] = []
        self.rate: list[np.ndarray] = []
        self.fc_gyro: list[np.ndarray] = []
        self.fc_att: list[np.ndarray] = []
        model.add_task("bench:log", PHYSICS_DT, self._log)

    def _log(self, now: float) -> None:
        m = self.model
        self.t.append(now)
        self.rate.append(m.quad.truth.rate.copy())
        self.fc_gyro.append(m.estimator.gyro.copy())
        self.fc_att.append(np.array(m.estimator.euler()))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return (np.array(self.t), np.array(self.rate), np.array(self.fc_gyro),
                np.array(self.fc_att))


class _Imu:
    """An MPU-6050 driver on its register model, read at its rate from a model task."""

    def __init__(self, model: SimulatedCC3D, rate_hz: int, seed: int, jitter_s: float) -> None:
        self.clock = _OffsetClock(model)
        chip = Mpu6050Model(model.imu_truth, self.clock, rng=np.random.default_rng(seed),
                            vibration_dps=VIBRATION_DPS)
        self.driver = Mpu6050(SimI2cBus({0x68: chip}), device="sim:i2c",
                              config=ImuConfig(rate_hz=rate_hz, dlpf=IMU_DLPF[rate_hz]),
                              sleep=self.clock.advance, now=self.clock.now)
        self.driver.init()
        self.driver.calibrate()          # on the ground, before arming: the craft is at rest
        self.rng = random.Random(seed)
        self.jitter_s = jitter_s
        self.t: list[float] = []
        self.rates: list[tuple[float, float, float]] = []
        model.add_task(f"bench:imu{rate_hz}", 1.0 / rate_hz, self._read)

    def _read(self, now: float) -> None:
        s = self.driver.poll()
        if s is not None:
            self.t.append(now + self.rng.uniform(0, self.jitter_s) - self.driver.delay_s)
            self.rates.append(s.rates)


def deliveries(t: np.ndarray, periods_ms: dict[str, int], latency_s: float,
               phase_rng: random.Random) -> dict[str, Any]:
    """Each sampled object's updates over the FC's telemetry line, as pipilot.sim.telemetry
    sends them: published at its period from a random phase into a queue of
    ``QUEUE_SIZE`` (full: dropped), encoded with the value of the moment the line
    takes it, paced at 960 bytes/s, then ``latency_s`` to the Pi. Per object: the
    index into ``t`` of the value sent, the arrival time, and the share dropped."""
    size = packet_bytes()
    start, end = float(t[0]), float(t[-1])
    events: list[tuple[float, str]] = []
    for name, period in periods_ms.items():
        k = phase_rng.uniform(0, period / 1000.0)
        events += [(start + k + i * period / 1000.0, name)
                   for i in range(int((end - start - k) * 1000.0 / period) + 1)]
    events.sort()
    queue: deque[tuple[float, str]] = deque()
    free = start
    sent: dict[str, tuple[list[int], list[float]]] = {n: ([], []) for n in periods_ms}
    published = dict.fromkeys(periods_ms, 0)
    dropped = dict.fromkeys(periods_ms, 0)

    def send_until(t_limit: float) -> None:
        nonlocal free
        while queue and free <= t_limit:
            t_pub, n = queue.popleft()
            begin = max(free, t_pub)
            free = begin + size[n] / LINE_BYTES_S
            sent[n][0].append(min(len(t) - 1, int(np.searchsorted(t, begin))))
            sent[n][1].append(free + latency_s)

    for when, name in events:
        send_until(when)
        published[name] += 1
        if len(queue) >= QUEUE_SIZE:
            dropped[name] += 1
            continue
        queue.append((when, name))
    send_until(math.inf)
    return {n: (np.array(i), np.array(a), dropped[n] / max(1, published[n]))
            for n, (i, a) in sent.items()}


def _interp(times: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(at, times, values[:, k]) for k in range(values.shape[1])], axis=1)


def _latest(arrive: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    i = np.searchsorted(arrive, at, side="right") - 1
    return values[np.clip(i, 0, len(values) - 1)]


def _stats(err_pq: np.ndarray, delay_s: float) -> dict[str, Any]:
    """Velocity error figures from the rate errors (rad/s, p and q) over the hover."""
    e = np.hypot(err_pq[:, 0], err_pq[:, 1])
    rms = float(np.sqrt(np.mean(e ** 2)))
    out: dict[str, Any] = {"rate_error_rms_dps": round(math.degrees(rms), 3),
                           "delay_s": round(delay_s, 4), "heights": {}}
    pos = np.cumsum(err_pq, axis=0) * FLOW_PERIOD_S
    pos_max = float(np.max(np.hypot(pos[:, 0], pos[:, 1])))
    for h in HEIGHTS_M:
        out["heights"][f"{h:g}"] = {
            "velocity_error_rms_mps": round(h * rms, 4),
            "velocity_error_p95_mps": round(h * float(np.percentile(e, 95)), 4),
            "position_error_max_m": round(h * pos_max, 4),
            **{f"share_of_{k}": round(h * pos_max / b, 3) for k, b in BUDGETS_M.items()},
        }
    return out


async def _hold(sim: Any, hover: dict[str, float]) -> None:
    """An ideal position hold on the truth, as additive roll/pitch trims (the flow hold's
    stand-in: the rotation it commands is part of what the flow sees)."""
    while True:
        await asyncio.sleep(0.02)
        if "start" not in hover:
            continue
        m = sim.model
        t = m.quad.truth
        if "n0" not in hover:
            hover["n0"], hover["e0"] = float(t.position[0]), float(t.position[1])
        yaw = math.radians(t.euler_deg()[2])
        c, s_ = math.cos(yaw), math.sin(yaw)
        dn, de = float(t.position[0]) - hover["n0"], float(t.position[1]) - hover["e0"]
        vn, ve = float(t.velocity[0]), float(t.velocity[1])
        fwd, right = c * dn + s_ * de, -s_ * dn + c * de
        vf, vr = c * vn + s_ * ve, -s_ * vn + c * ve
        lim = HOLD_MAX_DEG
        pitch = max(-lim, min(lim, HOLD_KP_DEG_PER_M * fwd + HOLD_KV_DEG_PER_MPS * vf))
        roll = max(-lim, min(lim, -(HOLD_KP_DEG_PER_M * right + HOLD_KV_DEG_PER_MPS * vr)))
        sim.vehicle.mixer.publish("drift", Setpoint(roll=roll / STICK_ANGLE_DEG,
                                                    pitch=pitch / STICK_ANGLE_DEG))


def fly(seed: int, hover_s: float, jitter_s: float, hold: bool) -> dict[str, Any]:
    """One gusty hover (held on truth when ``hold``); the rate error of every source over it."""
    base = load_mission(ROOT / "examples" / "hover.toml")
    assert base.sim is not None
    rnd = random.Random(seed)
    cond = dataclasses.replace(base.sim, seed=seed, firmware="stock", mount_tilt_deg=0.0,
                               wind_mps=WIND_MPS, wind_from_deg=rnd.uniform(0, 360),
                               gust_mps=GUST_MPS)
    steps = [dataclasses.replace(s, params={**s.params, "seconds": hover_s})
             if s.action == "hover" else s for s in base.steps]
    spec = dataclasses.replace(base, sim=cond, steps=steps)
    sim = sim_lockstep(**dataclasses.asdict(cond))
    imus = {r: _Imu(sim.model, r, seed * 10 + i, jitter_s) for i, r in enumerate(IMU_RATES_HZ)}
    log = _Log(sim.model)
    hover: dict[str, float] = {}
    excursion = [0.0]

    def on_event(ev: Any) -> None:
        if getattr(ev, "action", None) == "hover":
            if ev.kind is EventKind.STEP_STARTED:
                hover["start"] = ev.t
            elif ev.kind is EventKind.STEP_DONE:
                hover["end"] = ev.t

    def watch(_now: float) -> None:
        if "start" in hover and "end" not in hover and "n0" in hover:
            p = sim.model.quad.truth.position
            excursion[0] = max(excursion[0], math.hypot(float(p[0]) - hover["n0"],
                                                        float(p[1]) - hover["e0"]))

    sim.model.add_task("bench:excursion", 0.05, watch)

    async def main() -> Any:
        task = asyncio.create_task(_hold(sim, hover)) if hold else None
        try:
            return await run_spec(spec, sim.vehicle, drift=False, on_event=on_event)
        finally:
            if task is not None:
                task.cancel()

    if not hold:
        hover["n0"] = hover["e0"] = math.nan
    run_lockstep(sim, main)
    t, rate, fc_gyro, fc_att = log.arrays()
    t0, t1 = hover["start"], hover.get("end", float(t[-1]))
    flow_t = np.arange(t0 + 1.0, t1, FLOW_PERIOD_S)       # 1 s after the hover began
    lo = np.searchsorted(t, flow_t - FLOW_PERIOD_S, side="right")
    hi = np.searchsorted(t, flow_t, side="right")
    csum = np.vstack([np.zeros(3), np.cumsum(rate, axis=0)])
    true = (csum[hi] - csum[lo]) / np.maximum(hi - lo, 1)[:, None]
    mid = flow_t - FLOW_PERIOD_S / 2

    def err(est: np.ndarray) -> np.ndarray:
        return (true - est)[:, :2]

    sources: dict[str, Any] = {}
    phase = random.Random(seed + 1000)
    for sc in scenarios():
        for lat in LATENCIES_S:
            dl = deliveries(t, sc["base"] | sc["periods"], lat, phase)
            tag = f"{sc['key']}/lat{int(lat * 1000)}ms"
            if "GyroState" in sc["periods"]:
                gi, ga, drop = dl["GyroState"]
                g_vals, g_t = fc_gyro[gi], t[gi]
                delay = float(np.percentile(ga - g_t, 95)) + sc["periods"]["GyroState"] / 1000
                for how, est, d in (("latest", _latest(ga, g_vals, flow_t), 0.0),
                                    ("aligned", _interp(g_t, g_vals, mid), delay)):
                    sources[f"gyro_telemetry/{tag}/{how}"] = \
                        _stats(err(est), d) | {"dropped": round(drop, 3)}
            if not sc.get("attitude"):
                continue
            ai, aa, adrop = dl["AttitudeState"]
            a_t = t[ai]
            d = np.diff(fc_att[ai], axis=0) / np.maximum(np.diff(a_t), 1e-6)[:, None]
            d_t, d_arr = (a_t[1:] + a_t[:-1]) / 2, aa[1:]
            adelay = float(np.percentile(aa - a_t, 95)) + sc["periods"]["AttitudeState"] / 1000
            for how, est, dly in (("latest", _latest(d_arr, d, flow_t), 0.0),
                                  ("aligned", _interp(d_t, d, mid), adelay)):
                sources[f"attitude_derivative/{tag}/{how}"] = \
                    _stats(err(est), dly) | {"dropped": round(adrop, 3)}
    for r, imu in imus.items():
        it, iv = np.array(imu.t), np.array(imu.rates)
        ilo = np.searchsorted(it, flow_t - FLOW_PERIOD_S, side="right")
        ihi = np.searchsorted(it, flow_t, side="right")
        icsum = np.vstack([np.zeros(3), np.cumsum(iv, axis=0)])
        n = (ihi - ilo)[:, None]
        mean = np.where(n > 0, (icsum[ihi] - icsum[ilo]) / np.maximum(n, 1),
                        _latest(it, iv, flow_t))
        sources[f"mpu6050/{r}hz"] = _stats(err(mean), 0.0)
    sources["none"] = _stats(err(np.zeros_like(true)), 0.0)
    rms_rate = math.degrees(float(np.sqrt(np.mean(np.sum(true[:, :2] ** 2, axis=1)))))
    return {"seed": seed, "hold": hold, "hover_s": round(t1 - t0, 2),
            "body_rate_rms_dps": round(rms_rate, 3),
            "max_excursion_m": round(excursion[0], 3) if hold else None, "sources": sources}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per source: the worst seed's figures at each height (the seeds' maxima)."""
    out: dict[str, Any] = {}
    for key in runs[0]["sources"]:
        per = [r["sources"][key] for r in runs]
        heights = {}
        for h in per[0]["heights"]:
            heights[h] = {f: max(p["heights"][h][f] for p in per) for f in per[0]["heights"][h]}
        out[key] = {"rate_error_rms_dps": max(p["rate_error_rms_dps"] for p in per),
                    "delay_s": max(p["delay_s"] for p in per), "heights": heights}
        if "dropped" in per[0]:
            out[key]["dropped"] = max(p["dropped"] for p in per)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--hover-s", type=float, default=60.0)
    ap.add_argument("--stamp-jitter-ms", type=float, default=3.0)
    ap.add_argument("--no-hold", action="store_true",
                    help="plain hover, without the position hold on truth")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON to FILE")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    started = time.perf_counter()
    hold = not args.no_hold
    runs = [fly(s, args.hover_s, args.stamp_jitter_ms / 1000.0, hold) for s in seeds]
    sizes = packet_bytes()
    link = {
        "baud": BAUD, "line_bytes_per_s": LINE_BYTES_S, "usable_share": round(USABLE_SHARE, 3),
        "queue_size": QUEUE_SIZE, "packet_bytes": {n: sizes[n] for n in SAMPLED},
        "stock_other_objects_bytes_per_s": round(link_load(baseline_periodic()), 1),
        "trimmed_other_objects_bytes_per_s": round(link_load(baseline_periodic(True)), 1),
        "scenarios": [{k: v for k, v in sc.items() if k != "base"} for sc in scenarios()],
    }
    result = {"bench": "flow_rotation", "seeds": seeds, "hover_s": args.hover_s, "hold": hold,
              "hold_gains": {"kp_deg_per_m": HOLD_KP_DEG_PER_M,
                             "kv_deg_per_mps": HOLD_KV_DEG_PER_MPS, "max_deg": HOLD_MAX_DEG},
              "wind_mps": WIND_MPS, "gust_mps": GUST_MPS, "firmware": "stock",
              "flow_period_s": FLOW_PERIOD_S, "stamp_jitter_ms": args.stamp_jitter_ms,
              "heights_m": list(HEIGHTS_M), "budgets_m": BUDGETS_M, "link": link,
              "body_rate_rms_dps": [r["body_rate_rms_dps"] for r in runs],
              "max_excursion_m": [r["max_excursion_m"] for r in runs],
              "worst_over_seeds": summarise(runs),
              "runs": [{k: v for k, v in r.items() if k != "sources"} | {
                  "rate_error_rms_dps": {k: v["rate_error_rms_dps"]
                                         for k, v in r["sources"].items()}} for r in runs],
              "wall_s": round(time.perf_counter() - started, 1)}
    text = json.dumps(result, indent=1)
    if args.out is not None:
        args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
