"""The real vehicle behind the server's VehiclePort: mixer, telemetry, core stats, sim."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from pipilot.core.setpoints import ArmRequest, Setpoint
from pipilot.server.port import ArmIntent, TelemetryValue
from pipilot.server.protocol import Sticks

PILOT = "pilot"
_RATE_WINDOW_S = 1.0
_FAILSAFE_STATES = ("descent", "throttle_cut", "failsafe")


class VehicleAdapter:
    """Adapts `pipilot.core.vehicle.Vehicle` to `VehiclePort`.

    With `flight_loop` (the loop the core mixes on) the server may run on
    another thread: the pilot's setpoints and withdrawals are handed to that
    loop in order (the mixer is only touched from its own thread); the rest
    are reads of values the core replaces whole.
    """

    def __init__(self, vehicle: Any, flight_loop: asyncio.AbstractEventLoop | None = None
                 ) -> None:
        self.vehicle = vehicle
        self._flight_loop = flight_loop
        self._samples: deque[tuple[float, int]] = deque()
        self._sim_cache: dict[str, Any] = {}

    def _on_flight_loop(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._flight_loop
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if loop is None or here is loop:
            fn(*args)
        else:
            with contextlib.suppress(RuntimeError):  # the flight loop has ended
                loop.call_soon_threadsafe(fn, *args)

    def _from_sim(self, key: str, read: Callable[[], Any]) -> Any:
        """Read from the simulator without ever blocking the event loop.

        The real-time simulator steps its model under `sim.lock` in a thread of
        its own; the loop that mixes the pilot's setpoints must not wait for it.
        If the lock is busy, the previous reading is good enough for a display.
        """
        lock = getattr(self.vehicle.sim, "lock", None)
        if lock is None:
            self._sim_cache[key] = read()
        elif lock.acquire(blocking=False):
            try:
                self._sim_cache[key] = read()
            finally:
                lock.release()
        return self._sim_cache.get(key)

    def now(self) -> float:
        return float(self.vehicle.clock.now())

    def publish_pilot(self, sticks: Sticks, arm: ArmIntent) -> None:
        a = sticks.accessories
        sp = Setpoint(throttle=sticks.throttle, roll=sticks.roll, pitch=sticks.pitch,
                      yaw=sticks.yaw, accessories=(a[0], a[1], a[2], a[3]),
                      arm=ArmRequest(arm.value))
        self._on_flight_loop(self.vehicle.mixer.publish, PILOT, sp)

    def output_sticks(self) -> Sticks | None:
        out = getattr(self.vehicle.core, "last_output", None)
        if out is None:
            return None
        sp = out.setpoint
        return Sticks(throttle=sp.throttle, yaw=sp.yaw, roll=sp.roll, pitch=sp.pitch,
                      accessories=tuple(sp.accessories))

    def withdraw_pilot(self) -> None:
        self._on_flight_loop(self.vehicle.mixer.withdraw, PILOT)

    def latest(self, name: str) -> TelemetryValue | None:
        session = self.vehicle.telemetry
        if session is None:
            return None
        got = session.latest(name)
        return None if got is None else (got[0], float(got[1]))

    @property
    def telemetry_connected(self) -> bool:
        session = self.vehicle.telemetry
        return bool(session is not None and session.connected)

    def _rate(self, now: float, frames: int) -> float | None:
        """Frames a second over the last second or so, from the sent counter."""
        s = self._samples
        s.append((now, frames))
        while len(s) > 2 and now - s[1][0] >= _RATE_WINDOW_S:
            s.popleft()
        t0, f0 = s[0]
        return (frames - f0) / (now - t0) if now - t0 > 0.1 else None

    def link_stats(self) -> Mapping[str, Any]:
        core = self.vehicle.core
        st = core.stats
        out: dict[str, Any] = {
            "rate_hz": self._rate(self.now(), st.frames_sent),
            "period_ms": st.period_s * 1e3,
            "frames_sent": st.frames_sent,
            "watchdog_frames": st.watchdog_frames,
            "missed_slots": st.missed_slots,
            "max_mix_gap_ms": st.max_mix_gap_s * 1e3,
            "write_errors": st.write_errors,
            "lateness_p50_us": st.lateness_p50_s * 1e6,
            "lateness_p99_us": st.lateness_p99_s * 1e6,
            "lateness_max_us": st.lateness_max_s * 1e6,
            "expected_accepted_per_s": st.expected_accepted_per_s,
            # Descending, throttle cut and failsafe frames are all the failsafe at
            # work; STANDBY (no source yet) is the quiet state before anyone flies.
            "failsafe": core.failsafe.state.value in _FAILSAFE_STATES,
            "failsafe_state": core.failsafe.state.value,
            "failsafe_reason": core.failsafe.reason,
            "source": getattr(core.last_output, "source", None),
        }
        sim = self.vehicle.sim
        receiver = getattr(getattr(sim, "model", sim), "receiver", None)
        rs = None if receiver is None else self._from_sim("rx", receiver.stats.as_dict)
        if rs is not None:
            out["frames_accepted"] = rs["frames_accepted"]
            out["frames_rejected"] = rs["frames_rejected"]
            seen = rs.get("frames_seen") or 0
            out["accepted_fraction"] = rs["frames_accepted"] / seen if seen else None
        return out

    def sim_truth(self) -> Mapping[str, Any] | None:
        sim = self.vehicle.sim
        if sim is None or not hasattr(sim, "ground_truth"):
            return None
        truth: Mapping[str, Any] | None = self._from_sim("truth", sim.ground_truth)
        return truth
