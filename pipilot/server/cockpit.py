"""The pilot's seat: who flies, whether they are still there, and arm requests.

One page at a time holds the seat. Its control messages are the heartbeat:
when they stop for `heartbeat_timeout` seconds the seat goes SILENT and the
server withdraws the pilot source, so the core's lost-pilot failsafe applies.
Fresh messages from the same page bring it back to ACTIVE (as an RC receiver
recovers when the link returns). Closing the page frees the seat.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import replace

from pipilot.core.mixer import ARM_THROTTLE_MAX
from pipilot.core.setpoints import NEUTRAL, ArmRequest, Setpoint
from pipilot.server.port import VehiclePort
from pipilot.server.protocol import MessageError

log = logging.getLogger(__name__)

# The firmware arms and disarms only with the throttle off (NOTES.md, arming);
# the page's request is refused above the throttle the mixer would refuse it at.
THROTTLE_LOW = ARM_THROTTLE_MAX


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
    ) -> None:
        self._port = port
        self.heartbeat_timeout = heartbeat_timeout
        self.arm_timeout = arm_timeout
        self._on_change = on_change or (lambda: None)
        self.state = SeatState.VACANT
        self.holder: str | None = None
        self.sticks: Setpoint = NEUTRAL
        self.last_heard = 0.0
        self.arm = ArmRequest.NONE
        self._arm_deadline = 0.0
        self.arm_result: str | None = None

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
    def control(self, client: str, sticks: Setpoint) -> None:
        self._require_pilot(client)
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
        self._port.publish_pilot(replace(self.sticks, arm=self.arm))

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
            self._port.withdraw_pilot()
            self.arm = ArmRequest.NONE
            self._set_state(SeatState.SILENT, f"no heartbeat for {self.heartbeat_timeout:g} s")
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
