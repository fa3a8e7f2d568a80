"""The pilot's seat: who flies, whether they are still there, and arm requests.

One page at a time holds the seat. Its control messages are the heartbeat:
when they stop for `heartbeat_timeout` seconds the seat goes SILENT and the
server withdraws the pilot source, so the core's lost-pilot failsafe applies.
Fresh messages from the same page bring it back to ACTIVE (as an RC receiver
recovers when the link returns). Closing the page frees the seat.

The pilot may engage the vehicle's flow-deck hold (`set_hold`). While it is
on, the pilot's sticks go to the hold (its heartbeat; the throttle slider is a
climb-rate command, mid holds the height) and, while the hold reports
HOLDING, the "pilot" source is withdrawn so that the hold's source flies.
While it does not (engaging, withdrawn: its sensors are stale) the pilot
flies the fallback: the sticks' roll, pitch and yaw with the throttle at the
hold's hover throttle plus a bounded share of the slider. Once the hold has
flown, the fallback starts tilted as the hold last held against the wind and
fades to level over `FALLBACK_FADE_S` (each page message flies it as it is
then): the pilot does not see that tilt, and
the wind it was measured in may stop (a mission bounds the same tilt by
aborting after ``withdrawn_abort_s``). What is left of the fade comes back only
as fast as it went, while the hold flies again, so a hold that flaps between
holding and withdrawn cannot fly that tilt open loop for long. Hold off, the seat
lost or the heartbeat lost release it; the throttle then carries on from the
hover throttle, so the craft does not jump.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pipilot.control.holdapi import HoldState, HoldStatus
from pipilot.core.mixer import ARM_THROTTLE_MAX
from pipilot.core.setpoints import NEUTRAL, ArmRequest, Setpoint
from pipilot.server.port import VehiclePort
from pipilot.server.protocol import MessageError

log = logging.getLogger(__name__)

# The firmware arms and disarms only with the throttle off (NOTES.md, arming);
# the page's request is refused above the throttle the mixer would refuse it at.
THROTTLE_LOW = ARM_THROTTLE_MAX
#: With Hold on the throttle slider is a climb-rate command: mid holds the height.
HOLD_MID = 0.5
#: The fallback's throttle moves this much per unit of slider away from mid
#: (so at most +-0.1 around the hover throttle): enough to stop a slow sink or
#: climb, never a full-throttle jump.
FALLBACK_CLIMB_SPAN = 0.2
#: The withdrawn hold's tilt against the wind fades to level over this long.
FALLBACK_FADE_S = 5.0
#: The hover guess handed to the hold stays below full throttle.
HOVER_GUESS_MAX = 0.95


class SeatState(enum.Enum):
    VACANT = "vacant"  # nobody flies; nothing is fed to the mixer
    ACTIVE = "active"  # a pilot holds the seat and is heard from
    SILENT = "silent"  # the pilot's heartbeat timed out: withdrawn, failsafe


class Cockpit:
    """Single-pilot arbitration, heartbeat supervision and the arm request."""

    def __init__(
        self,
        port: VehiclePort,
        heartbeat_timeout: float = 0.3,
        arm_timeout: float = 3.0,
        on_change: Callable[[], None] | None = None,
        on_hold: Callable[[str], None] | None = None,
    ) -> None:
        self._port = port
        self.heartbeat_timeout = heartbeat_timeout
        self.arm_timeout = arm_timeout
        self._on_change = on_change or (lambda: None)
        # told (with the holder's id) when the hold's mode or the sticks the server
        # set for it change: the page must follow (its toggle, its throttle slider)
        self._on_hold = on_hold or (lambda client: None)
        self.state = SeatState.VACANT
        self.holder: str | None = None
        self.sticks: Setpoint = NEUTRAL
        self.last_heard = 0.0
        self.arm = ArmRequest.NONE
        self._arm_deadline = 0.0
        self.arm_result: str | None = None
        self.hold_on = False
        """The pilot engaged the hold (and it has not been released)."""
        self.hold_flies = False
        """The hold reports HOLDING and the "pilot" source is withdrawn for it."""
        self.hold_note: str | None = None
        """Why the pilot flies the fallback, or why the hold was last released."""
        self.hold_has_flown = False
        """The hold has flown since it was engaged: its fallback is the withdrawn one
        (tilted against the wind it measured), not the pilot's own attitude."""
        self._hold_guess = 0.0
        # the share of the hold's tilt the fallback may fly, as it was at _tilt_at: it
        # drains while the fallback flies and refills as fast while the hold flies
        self._tilt_left = 1.0
        self._tilt_at = 0.0
        self.fallback_tilt: tuple[float, float] = (0.0, 0.0)
        """The withdrawn hold's tilt (roll, pitch sticks) the fallback flies now."""

    def _set_state(self, new: SeatState, reason: str) -> None:
        if new is not self.state:
            log.info("seat %s -> %s (%s, holder %s)", self.state.value, new.value, reason,
                     self.holder)
            self.state = new
            self._on_change()

    # -- seat ------------------------------------------------------------
    def take(self, client: str, force: bool) -> Setpoint:
        """Give `client` the seat; return the sticks its page must start from."""
        if self.holder == client:
            return self.sticks
        if self.holder is not None and not force:
            raise MessageError("seat_taken", "another page is flying; take over explicitly")
        previous = self.holder
        if self.hold_on:
            # the page losing the seat hears it from the seat message, not as a hold
            # change it would answer with sticks the server then refuses
            self._hold_off("seat taken over by another page", notify=False)
        # A takeover continues from the sticks the previous pilot left, so the
        # craft does not jump; a vacant seat starts from the throttle (and the
        # accessories) the craft is flying on now, sticks centred: a mission or
        # a failsafe descent handed to the pilot must not become a throttle cut.
        if previous is None or self.state is not SeatState.ACTIVE:
            self.sticks = _starting_sticks(self._port.output_sticks())
        self.holder = client
        self.last_heard = self._port.now()
        self.arm = ArmRequest.NONE
        if previous is not None:
            log.warning("pilot seat taken over by %s from %s", client, previous)
        # Published either way: the previous pilot's arm gesture must not go on
        # being fed under the new pilot's name.
        self._publish()
        if self.state is SeatState.ACTIVE:
            self._on_change()  # holder changed, state did not
        else:
            self._set_state(SeatState.ACTIVE, f"taken by {client}")
        return self.sticks

    def release(self, client: str, reason: str = "released") -> None:
        """`client` gives up the seat (or its page closed): withdraw, failsafe."""
        if self.holder != client:
            return
        if self.hold_on:
            self._hold_off(reason, notify=False)
        self._port.withdraw_pilot()
        self.holder = None
        self.arm = ArmRequest.NONE
        self.sticks = NEUTRAL
        self._set_state(SeatState.VACANT, reason)

    def is_pilot(self, client: str) -> bool:
        return self.holder == client

    def _require_pilot(self, client: str) -> None:
        if self.holder != client:
            raise MessageError("not_pilot", "this page observes; take control first")

    # -- messages from the pilot ----------------------------------------
    def control(self, client: str, sticks: Setpoint, hold: bool = False) -> None:
        """The pilot's sticks. ``hold``: the page read its throttle slider as a
        climb-rate command. When that is not the server's mode (the page has not
        yet heard of a change) the throttle is not used: the server's stays."""
        self._require_pilot(client)
        if hold != self.hold_on:
            sticks = replace(sticks, throttle=self.sticks.throttle)
        self.sticks = sticks
        self._heard()
        if self.arm is not ArmRequest.NONE and sticks.throttle > THROTTLE_LOW:
            self._finish_arm("cancelled: throttle raised")  # publishes the sticks
        else:
            self._publish()

    def heartbeat(self, client: str) -> None:
        self._require_pilot(client)
        self._require_fresh_sticks()
        self._heard()
        self._publish()

    def request_arm(self, client: str, arm: bool) -> None:
        self._require_pilot(client)
        self._require_fresh_sticks()
        if self.hold_on:
            raise MessageError("hold_on", "turn Hold off first: the throttle slider is a "
                               "climb-rate command while it is on")
        if self.sticks.throttle > THROTTLE_LOW:
            raise MessageError("throttle_not_low",
                               f"lower the throttle to arm or disarm (<= {THROTTLE_LOW:g})")
        self.arm = ArmRequest.ARM if arm else ArmRequest.DISARM
        self._arm_deadline = self._port.now() + self.arm_timeout
        self.arm_result = None
        self._heard()
        self._publish()
        self._on_change()

    def _publish(self) -> None:
        if not self.hold_on:
            self._port.publish_pilot(replace(self.sticks, arm=self.arm))
            return
        self._port.hold_pilot(self.sticks)   # the hold's heartbeat, whoever flies
        self._route(self._port.hold_status(), always=True)

    # -- the flow-deck hold ------------------------------------------------
    def set_hold(self, client: str, on: bool, armed_state: str | None) -> None:
        """Engage or release the hold for the seated pilot (``armed_state``:
        FlightStatus.Armed as the FC reports it)."""
        self._require_pilot(client)
        if on and not self.hold_on:
            if self._port.hold_status() is None:
                raise MessageError("no_hold", "this vehicle has no hold (no flow deck)")
            self._require_fresh_sticks()
            if armed_state != "Armed":
                raise MessageError("not_flying", "the FC is not armed: arm and take off "
                                   "before holding")
            if self.sticks.throttle <= THROTTLE_LOW:
                raise MessageError("not_flying", "raise the throttle and take off before "
                                   "holding")
            self._hold_guess = min(self.sticks.throttle, HOVER_GUESS_MAX)
            self._port.hold_engage(self._hold_guess)
            self.hold_on = True
            self.hold_flies = False
            self.hold_has_flown = False
            self._tilt_left = 1.0
            self.hold_note = None
            self.sticks = replace(self.sticks, throttle=HOLD_MID)
            log.info("hold engaged by %s (hover guess %.3f)", client, self._hold_guess)
            self._heard()
            self._publish()
            self._on_change()
            self._on_hold(client)
        elif not on and self.hold_on:
            self._hold_off("Hold turned off")   # tells the page
            self._heard()
            self._publish()
            self._on_change()
        else:
            self._on_hold(client)   # nothing to change: the page hears the mode as it is

    def hold_view(self) -> dict[str, Any]:
        """The page's side of the hold: engaged, who flies, and why not the hold."""
        flies = None
        if self.hold_on and self.state is SeatState.ACTIVE:
            flies = "hold" if self.hold_flies else "pilot"
        tilt = [round(a, 3) for a in self.fallback_tilt] if flies == "pilot" else None
        return {"on": self.hold_on, "flies": flies, "note": self.hold_note,
                "fallback_tilt": tilt}

    def _hold_off(self, reason: str, notify: bool = True) -> None:
        """Release the hold; the sticks carry on from the hover throttle (no jump).
        ``notify``: tell the seated page (its toggle and throttle slider)."""
        hover = self._hover_throttle(self._port.hold_status())
        self._port.hold_release(reason)
        self.hold_on = False
        self.hold_flies = False
        self.hold_note = reason
        self.sticks = replace(self.sticks, throttle=hover)
        log.info("hold released (%s); throttle carries on at %.3f", reason, hover)
        if notify and self.holder is not None:
            self._on_hold(self.holder)

    def _hover_throttle(self, st: HoldStatus | None) -> float:
        h = None if st is None else st.hover_throttle
        if h is not None and math.isfinite(h) and 0.0 < h < 1.0:
            return float(h)
        return self._hold_guess

    def _route(self, st: HoldStatus | None, always: bool) -> None:
        """Who flies while the hold is on: the hold when HOLDING, else the fallback.
        ``always``: publish the fallback even when nothing changed (fresh sticks)."""
        if st is not None and st.state is HoldState.HOLDING:
            if not self.hold_flies:
                self._port.withdraw_pilot()
                self._turn_fade()
                self.hold_flies = True
                self.hold_has_flown = True
                self.hold_note = None
                log.info("the hold flies")
            return
        if self.hold_flies:
            self._turn_fade()
        why = "hold not available" if st is None else (st.reason or st.state.value)
        # the fade moves on with the page's own messages (its 50 ms keepalive): the
        # watchdog alone must never keep the pilot source fresh for a silent page
        if self.hold_flies or always or why != self.hold_note:
            if self.hold_flies:
                log.warning("hold not holding (%s): the pilot flies the fallback", why)
            self.hold_flies = False
            self.hold_note = why
            self._port.publish_pilot(self._fallback(st))

    def _fallback(self, st: HoldStatus | None) -> Setpoint:
        """The pilot's attitude hover; once the hold has flown (withdrawn), tilted as the
        hold last held against the wind, as a mission's fallback is, fading to level
        over `FALLBACK_FADE_S`: the pilot's roll and pitch add to that tilt."""
        s = self.sticks
        throttle = self._hover_throttle(st) + FALLBACK_CLIMB_SPAN * (s.throttle - HOLD_MID)
        roll = pitch = 0.0
        if self.hold_has_flown:
            left = self._fade_left()
            if left > 0.0:
                roll, pitch = self._port.hold_fallback_tilt()
                roll, pitch = roll * left, pitch * left
        self.fallback_tilt = (roll, pitch)
        return replace(Setpoint.saturated(throttle=throttle, roll=s.roll + roll,
                                          pitch=s.pitch + pitch, yaw=s.yaw),
                       accessories=s.accessories)

    def _fade_left(self) -> float:
        """The share of the hold's tilt the fallback flies now: it falls by the time the
        fallback has flown over `FALLBACK_FADE_S`, and comes back as fast while the
        hold flies (whole until the hold has first flown)."""
        if not self.hold_has_flown:
            return self._tilt_left
        moved = (self._port.now() - self._tilt_at) / FALLBACK_FADE_S
        if self.hold_flies:
            return min(1.0, self._tilt_left + moved)
        return max(0.0, self._tilt_left - moved)

    def _turn_fade(self) -> None:
        """Keep what is left of the fade where who flies changes."""
        self._tilt_left, self._tilt_at = self._fade_left(), self._port.now()

    def _require_fresh_sticks(self) -> None:
        # After a silence the sticks the server last heard are stale: only a
        # control message (the page's sticks as they are now) brings the seat back.
        if self.state is SeatState.SILENT:
            raise MessageError("stale_sticks", "heartbeat was lost; send the sticks "
                               "(a control message) to resume")

    def _heard(self) -> None:
        self.last_heard = self._port.now()
        if self.state is SeatState.SILENT:
            self._set_state(SeatState.ACTIVE, "heartbeat back")

    # -- supervision -----------------------------------------------------
    def check(self, armed_state: str | None) -> None:
        """Run often (the watchdog): heartbeat timeout and arm request resolution."""
        now = self._port.now()
        if self.state is SeatState.ACTIVE and now - self.last_heard > self.heartbeat_timeout:
            if self.hold_on:
                self._hold_off("pilot heartbeat lost")
            self._port.withdraw_pilot()
            self.arm = ArmRequest.NONE
            self._set_state(SeatState.SILENT, f"no heartbeat for {self.heartbeat_timeout:g} s")
        elif self.state is SeatState.ACTIVE and self.hold_on:
            self._route(self._port.hold_status(), always=False)
        if self.arm is ArmRequest.NONE:
            return
        want = "Armed" if self.arm is ArmRequest.ARM else "Disarmed"
        if armed_state == want:
            self._finish_arm("done")
        elif now > self._arm_deadline:
            self._finish_arm("timeout")

    def _finish_arm(self, result: str) -> None:
        log.info("%s request %s", self.arm.value, result)
        self.arm = ArmRequest.NONE
        self.arm_result = result
        if self.state is SeatState.ACTIVE and self.holder is not None:
            self._publish()
        self._on_change()


def _starting_sticks(output: Setpoint | None) -> Setpoint:
    """A fresh pilot's sticks: the throttle and accessories being sent, the rest centred."""
    if output is None:
        return NEUTRAL
    return Setpoint(throttle=output.throttle, accessories=output.accessories)
