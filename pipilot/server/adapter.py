"""The real vehicle behind the server's VehiclePort: mixer, telemetry, core stats, sim."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVarTuple

from pipilot.control.holdapi import HoldControl, HoldStatus
from pipilot.core.failsafe import FailsafeState
from pipilot.core.setpoints import ArmRequest, Setpoint
from pipilot.core.truth import TruthSnapshot
from pipilot.core.vehicle import LinkStatistics, ServedVehicle
from pipilot.server.port import TelemetryValue

PILOT = "pilot"
Ts = TypeVarTuple("Ts")
_RATE_WINDOW_S = 1.0
#: How old the last throttle seen in NORMAL may be and still tell what a descent
#: began from: a few status periods (20 Hz).
_FLYING_SAMPLE_S = 0.25


class VehicleAdapter:
    """Adapts `pipilot.core.vehicle.Vehicle` to `VehiclePort`.

    With `flight_loop` (the loop the core mixes on) the server may run on
    another thread: the pilot's setpoints and withdrawals are handed to that
    loop in order (the mixer is only touched from its own thread); the rest
    are reads of values the core replaces whole.
    """

    def __init__(self, vehicle: ServedVehicle,
                 flight_loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.vehicle = vehicle
        self._flight_loop = flight_loop
        self._samples: deque[tuple[float, int]] = deque()
        self._sim_reading: dict[str, object] | None = None
        # The throttle last seen while a source flew, and whether the descent under
        # way started with the craft under power (see `failsafe_active`).
        self._flying: tuple[float, float] | None = None  # (time, throttle)
        self._descent_powered: bool | None = None
        # When the FC's newest telemetry arrived, on the session's clock: kept here
        # because a session that reopens its port forgets it.
        self._telemetry_rx_at: float | None = None
        self._was_connected = False

    def _on_flight_loop(self, fn: Callable[[*Ts], None], *args: *Ts) -> None:
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

    def _read_sim(self) -> dict[str, object] | None:
        """The simulator's `ground_truth()`, read without ever blocking the event loop.

        The real-time simulator steps its model under `sim.lock` in a thread of
        its own; the loop that mixes the pilot's setpoints must not wait for it.
        If the lock is busy, the previous reading is good enough for a display.
        """
        sim = self.vehicle.sim
        if sim is None:
            return None
        lock = sim.lock
        if lock is None:
            self._sim_reading = sim.ground_truth()
        elif lock.acquire(blocking=False):
            try:
                self._sim_reading = sim.ground_truth()
            finally:
                lock.release()
        return self._sim_reading

    def now(self) -> float:
        return float(self.vehicle.clock.now())

    def publish_pilot(self, setpoint: Setpoint) -> None:
        self._on_flight_loop(self.vehicle.mixer.publish, PILOT, setpoint)

    def output_sticks(self) -> Setpoint | None:
        out = getattr(self.vehicle.core, "last_output", None)
        if out is None:
            return None
        # the sticks being sent; the gesture's arm request is the mixer's, not a pilot's
        sent: Setpoint = out.setpoint
        return replace(sent, arm=ArmRequest.NONE)

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

    def telemetry_link(self) -> Mapping[str, Any]:
        """The FC telemetry link: `configured` (a session exists at all: `pipilot fly`
        without --telemetry-port has none), `connected`, `was_connected` (the
        handshake completed at least once) and `age_s`, the seconds since the last
        valid packet from the FC (None before the first)."""
        session = self.vehicle.telemetry
        if session is None:
            return {"configured": False, "connected": False, "was_connected": False,
                    "age_s": None}
        if not isinstance(session, LinkStatistics):  # a link that keeps no counters
            connected = bool(session.connected)
            self._was_connected = self._was_connected or connected
            return {"configured": True, "connected": connected,
                    "was_connected": self._was_connected, "age_s": None}
        st = session.stats
        now = float(session.clock.now())
        age = st.get("last_rx_age_s")
        if age is not None:
            self._telemetry_rx_at = now - float(age)
        rx_at = self._telemetry_rx_at
        return {"configured": True, "connected": bool(st.get("connected")),
                "was_connected": int(st.get("connects") or 0) > 0,
                "age_s": None if rx_at is None else max(0.0, now - rx_at)}

    def failsafe_active(self) -> bool:
        """True while the core, not a pilot or a mission, decides what the craft does.

        FAILSAFE (flagged frames) always counts. DESCENT counts when it began with
        the craft under power: the lost-source descent is flying it down. A
        descent that began at throttle off (the pilot landed, then let go of the
        seat) sends throttle off, which is the end of a flight, not a failsafe;
        so is THROTTLE_CUT, the state a finished descent rests in, and STANDBY.
        """
        core = self.vehicle.core
        state = core.failsafe.state
        out = getattr(core, "last_output", None)
        throttle = 0.0 if out is None else float(out.setpoint.throttle)
        now = self.now()
        if state is FailsafeState.NORMAL:
            self._flying = (now, throttle)
        if state is not FailsafeState.DESCENT:
            self._descent_powered = None
            return state is FailsafeState.FAILSAFE
        if self._descent_powered is None:
            # This reading can come a status period (50 ms) after the descent began,
            # the throttle already slewed down: the throttle seen while a source
            # flew just before counts too.
            flying = self._flying
            before = (flying[1] if flying is not None
                      and flying[0] >= core.failsafe.since - _FLYING_SAMPLE_S else 0.0)
            self._descent_powered = max(before, throttle) > 0.0
        self._descent_powered = self._descent_powered or throttle > 0.0
        return self._descent_powered

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
            "failsafe": self.failsafe_active(),
            "failsafe_state": core.failsafe.state.value,
            "failsafe_reason": core.failsafe.reason,
            "source": getattr(core.last_output, "source", None),
        }
        truth = self._read_sim()
        rs = None if truth is None else truth.get("receiver")
        if isinstance(rs, Mapping):
            accepted, seen = rs["frames_accepted"], rs.get("frames_seen") or 0
            out["frames_accepted"] = accepted
            out["frames_rejected"] = rs["frames_rejected"]
            out["accepted_fraction"] = (accepted / seen if isinstance(accepted, int)
                                        and isinstance(seen, int) and seen else None)
        return out

    def sim_truth(self) -> Mapping[str, Any] | None:
        return self._read_sim()

    def truth_snapshot(self) -> TruthSnapshot | None:
        sim = self.vehicle.sim
        return None if sim is None else sim.truth_snapshot()

    # -- the flow-deck hold: its calls run on the flight loop, in order ------------
    def hold_status(self) -> HoldStatus | None:
        hold = self.vehicle.hold
        return None if hold is None else hold.status()

    def hold_engage(self, hover_guess: float) -> None:
        hold = self.vehicle.hold
        if hold is not None:
            self._on_flight_loop(_engage_piloted, hold, hover_guess)

    def hold_release(self, reason: str) -> None:
        hold = self.vehicle.hold
        if hold is not None:
            self._on_flight_loop(hold.release, reason)

    def hold_pilot(self, sticks: Setpoint) -> None:
        hold = self.vehicle.hold
        if hold is not None:
            self._on_flight_loop(hold.pilot, sticks)

    def hold_fallback_tilt(self) -> tuple[float, float]:
        hold = self.vehicle.hold
        if hold is None:
            return (0.0, 0.0)
        roll, pitch = hold.fallback_tilt()
        # a numerical fault must not tilt the fallback (the frame would clamp a NaN)
        if not (math.isfinite(roll) and math.isfinite(pitch)):
            return (0.0, 0.0)
        return (roll, pitch)


def _engage_piloted(hold: HoldControl, hover_guess: float) -> None:
    """Hold here, at the current height, with the page's sticks as the heartbeat."""
    hold.engage(None, hover_guess=hover_guess, piloted=True)
