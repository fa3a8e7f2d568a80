"""What the server reports about failsafe and telemetry is the truth, on the real Vehicle.

A lock-step FlightCore on a virtual clock; the adapter is read as the page reads
it (every status period), so the states follow each other as in flight.
"""

import pytest

from pipilot.core.clock import VirtualClock
from pipilot.core.config import CoreConfig
from pipilot.core.failsafe import FailsafePolicy
from pipilot.core.setpoints import Setpoint
from pipilot.core.vehicle import Vehicle
from pipilot.link.transport import FrameSink
from pipilot.server.adapter import VehicleAdapter
from pipilot.server.view import build_state, status

STATUS_PERIOD = 0.05  # the page's live view: 20 Hz


@pytest.fixture
async def make():
    made = []

    async def _make(policy: FailsafePolicy | None = None):
        clock = VirtualClock(10.0)
        config = CoreConfig() if policy is None else CoreConfig().replace(failsafe=policy)
        vehicle = Vehicle.create(FrameSink(lambda t, f: None), config, clock)
        await vehicle.start()
        made.append(vehicle)
        return clock, vehicle, VehicleAdapter(vehicle)

    yield _make
    for v in made:
        await v.stop()


def fly(clock, vehicle, adapter, seconds, throttle=None):
    """Advance `seconds`, the pilot publishing `throttle` (None: silent), the
    adapter read every status period as the live view does; the readings."""
    seen = []
    for _ in range(round(seconds / STATUS_PERIOD)):
        if throttle is not None:
            vehicle.mixer.publish("pilot", Setpoint(throttle=throttle))
        clock.advance(STATUS_PERIOD)
        vehicle.core.advance(clock.now())
        st = adapter.link_stats()
        seen.append((st["failsafe_state"], st["failsafe"]))
    return seen


async def test_a_lost_pilot_in_flight_is_failsafe_and_the_throttle_cut_after_it_is_not(make):
    clock, vehicle, adapter = await make()
    assert adapter.link_stats()["failsafe"] is False  # standby: nobody flew yet
    assert set(fly(clock, vehicle, adapter, 1.0, throttle=0.6)) == {("normal", False)}
    vehicle.mixer.withdraw("pilot")  # the pilot's page is gone in the air
    seen = fly(clock, vehicle, adapter, 0.5)
    assert set(seen) == {("descent", True)}
    seen = fly(clock, vehicle, adapter, 9.0)  # past descent_time_s (8 s)
    assert seen[-1] == ("throttle_cut", False)
    assert ("throttle_cut", True) not in seen
    body = status(adapter, _cockpit())
    assert body["sbus"]["failsafe"] is False and body["sbus"]["failsafe_state"] == "throttle_cut"


async def test_letting_go_of_the_seat_after_landing_is_no_failsafe(make):
    clock, vehicle, adapter = await make()
    fly(clock, vehicle, adapter, 1.0, throttle=0.5)
    fly(clock, vehicle, adapter, 1.0, throttle=0.0)  # landed: throttle off
    vehicle.mixer.withdraw("pilot")  # and released the seat
    seen = fly(clock, vehicle, adapter, 10.0)
    assert seen[0][0] == "descent" and seen[-1][0] == "throttle_cut"
    assert not any(fs for _, fs in seen)


async def test_a_descent_to_throttle_off_is_failsafe_though_the_reading_comes_late(make):
    # descent_throttle 0: the throttle is slewed to 0 within 0.3 s, and the
    # status may be read only then; the craft was under power, so it is failsafe.
    clock, vehicle, adapter = await make(FailsafePolicy(descent_throttle=0.0))
    fly(clock, vehicle, adapter, 1.0, throttle=0.6)
    vehicle.mixer.withdraw("pilot")
    clock.advance(0.02)
    vehicle.core.advance(clock.now())
    clock.advance(0.4)  # no reading in between
    vehicle.core.advance(clock.now())
    assert vehicle.core.last_output.setpoint.throttle == 0.0
    assert adapter.link_stats()["failsafe"] is True
    assert set(fly(clock, vehicle, adapter, 2.0)) == {("descent", True)}


async def test_flagged_frames_are_failsafe_until_a_source_returns(make):
    clock, vehicle, adapter = await make(FailsafePolicy(on_source_loss="failsafe"))
    fly(clock, vehicle, adapter, 0.5, throttle=0.0)  # even on the ground
    vehicle.mixer.withdraw("pilot")
    assert set(fly(clock, vehicle, adapter, 1.0)) == {("failsafe", True)}
    assert set(fly(clock, vehicle, adapter, 0.5, throttle=0.0)) == {("normal", False)}
    vehicle.core.failsafe.force("link error", "test")
    assert set(fly(clock, vehicle, adapter, 0.5, throttle=0.0)) == {("failsafe", True)}
    vehicle.core.failsafe.release("link error")
    assert set(fly(clock, vehicle, adapter, 0.5, throttle=0.0)) == {("normal", False)}


def _cockpit():
    from pipilot.server.cockpit import Cockpit

    class Port:
        def withdraw_pilot(self):
            pass

    return Cockpit(Port(), 0.3)


class FakeSession:
    """The TelemetrySession surface the adapter reads."""

    def __init__(self, clock):
        self.clock = clock
        self.connected = False
        self.connects = 0
        self.last_rx = None

    @property
    def stats(self):
        now = self.clock.now()
        return {"connected": self.connected, "connects": self.connects,
                "last_rx_age_s": None if self.last_rx is None else now - self.last_rx}

    def latest(self, name):
        return None


async def test_telemetry_link_age_and_presence(make):
    clock, vehicle, adapter = await make()
    # `pipilot fly` without --telemetry-port: there is no telemetry, said as such.
    state = build_state(adapter, _cockpit(), 1)
    assert state["telemetry_link"] == {"configured": False, "connected": False,
                                       "was_connected": False, "age": None}
    session = FakeSession(clock)
    vehicle.attach_telemetry(session)
    link = build_state(adapter, _cockpit(), 1)["telemetry_link"]
    assert link == {"configured": True, "connected": False, "was_connected": False, "age": None}
    session.connected, session.connects, session.last_rx = True, 1, clock.now()
    clock.advance(0.2)
    link = build_state(adapter, _cockpit(), 1)["telemetry_link"]
    assert link["connected"] and link["was_connected"] and link["age"] == pytest.approx(0.2)
    # The link drops and the session reopens its port: it forgets its last packet,
    # the age it reports goes on growing from the FC's last packet all the same.
    clock.advance(6.0)
    session.connected, session.last_rx = False, None
    clock.advance(1.0)
    link = status(adapter, _cockpit())["telemetry_link"]
    assert not link["connected"] and link["was_connected"]
    assert link["age"] == pytest.approx(7.2)
