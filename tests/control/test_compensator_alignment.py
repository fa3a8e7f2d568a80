"""The drift loop pairs each AccelState sample with the attitude at its time (the
session engine is fed the packets at chosen virtual times)."""

from __future__ import annotations

from typing import Any

import pytest

from pipilot.control.compensator import ATTITUDE_WAIT_S, DriftCompensator
from pipilot.control.drift import Sample
from pipilot.core.clock import VirtualClock
from pipilot.uavtalk import PacketType, encode_packet, load_definitions
from pipilot.uavtalk.session import GroundSession

REG = load_definitions()


class Telemetry(GroundSession):
    """The engine that flies, fed the flight side's packets as they would arrive."""

    def receive(self, name: str, values: dict[str, Any]) -> None:
        d = REG[name]
        data = d.encode(d.defaults() | values)
        self.receive_data(encode_packet(PacketType.OBJ, d.object_id, 0, data))


class Mixer:
    def __init__(self) -> None:
        self.published: list[Any] = []

    def publish(self, name: str, setpoint: Any) -> None:
        self.published.append((name, setpoint))


class Vehicle:
    def __init__(self) -> None:
        self.clock = VirtualClock(10.0)
        self.telemetry = Telemetry(self.clock, REG)
        self.mixer = Mixer()


@pytest.fixture
def rig() -> tuple[Vehicle, DriftCompensator, list[Sample]]:
    vehicle = Vehicle()
    comp = DriftCompensator(vehicle, flying=lambda: False)
    fed: list[Sample] = []
    step = comp.controller.step

    def spy(sample: Sample, **kw: Any) -> Any:
        fed.append(sample)
        return step(sample, **kw)

    comp.controller.step = spy  # type: ignore[method-assign]
    vehicle.telemetry.receive("FlightStatus", {"Armed": "Disarmed"})
    return vehicle, comp, fed


def attitude(roll: float, yaw: float = 0.0) -> dict[str, float]:
    return {"Roll": roll, "Pitch": 0.0, "Yaw": yaw}


ACCEL = {"x": 0.0, "y": 0.0, "z": -9.8}


def test_a_sample_waits_for_the_next_attitude_and_takes_the_interpolated_one(rig: Any) -> None:
    vehicle, comp, fed = rig
    clock, tel = vehicle.clock, vehicle.telemetry
    tel.receive("AttitudeState", attitude(0.0, yaw=170.0))
    clock.advance(0.2)
    tel.receive("AttitudeState", attitude(2.0, yaw=178.0))
    comp.tick()
    clock.advance(0.05)
    tel.receive("AccelState", dict(ACCEL))
    assert comp.tick() is None and fed == []  # the attitude after it is still to come
    clock.advance(0.15)
    tel.receive("AttitudeState", attitude(6.0, yaw=-174.0))  # across +-180 degrees
    assert comp.tick() is not None
    assert len(fed) == 1
    s = fed[0]
    assert s.t == pytest.approx(10.25)
    assert s.attitude[0] == pytest.approx(3.0)  # a quarter of the way from 2 to 6
    assert s.attitude[2] == pytest.approx(180.0)  # 178 + 8 / 4, the short way round
    assert s.attitude_t is None and s.attitude_rate is None


def test_a_late_attitude_leaves_the_sample_extrapolated_after_a_bounded_wait(rig: Any) -> None:
    vehicle, comp, fed = rig
    clock, tel = vehicle.clock, vehicle.telemetry
    tel.receive("AttitudeState", attitude(0.0))
    comp.tick()
    clock.advance(0.2)
    tel.receive("AttitudeState", attitude(2.0))
    comp.tick()
    clock.advance(0.05)
    tel.receive("AccelState", dict(ACCEL))
    comp.tick()
    while clock.now() < 10.25 + ATTITUDE_WAIT_S - 0.02:
        clock.advance(0.02)
        assert comp.tick() is None
    clock.advance(0.04)
    assert comp.tick() is not None
    s = fed[0]
    assert s.attitude == (2.0, 0.0, 0.0) and s.attitude_t == pytest.approx(10.2)
    assert s.attitude_rate == pytest.approx((10.0, 0.0, 0.0))  # carried forward from the last two


def test_samples_keep_their_order_and_each_is_taken_once(rig: Any) -> None:
    vehicle, comp, fed = rig
    clock, tel = vehicle.clock, vehicle.telemetry
    tel.receive("AttitudeState", attitude(0.0))
    comp.tick()
    for _ in range(3):
        clock.advance(0.1)
        tel.receive("AccelState", dict(ACCEL))
        comp.tick()
        comp.tick()  # nothing new: nothing more
    clock.advance(0.1)
    tel.receive("AttitudeState", attitude(4.0))
    comp.tick()
    assert [round(s.t, 3) for s in fed] == [10.1, 10.2, 10.3]
    assert [round(s.attitude[0], 3) for s in fed] == [1.0, 2.0, 3.0]
