"""The simulator's transmitter: Setpoint sticks to frames, moved one stick at a time."""

from __future__ import annotations

import pytest

from pipilot import sbus
from pipilot.core.setpoints import NEUTRAL, ArmRequest, Setpoint, SetpointError
from pipilot.sim import LockstepSim, stick_frame
from pipilot.sim.sticks import stick_channels


def test_a_frame_carries_the_sticks_on_the_rig_channels() -> None:
    sp = Setpoint(throttle=1.0, roll=-1.0, pitch=0.5, yaw=1.0, accessories=(1.0, 0.0, -1.0, 0.0))
    frame = stick_frame(sp)
    chans = list(sbus.decode(frame).channels)   # pipilot's codec reads the sim's packer
    assert chans[:4] == [1811, 1811, 172, sbus.unit_to_value(0.5)]
    assert chans[4:8] == [1811, 992, 172, 992] and chans[8:] == [992] * 8
    assert chans == stick_channels(sp)
    assert frame == sbus.encode(chans, ch17=False, ch18=False, frame_lost=False,
                                failsafe=False)


def test_a_transmitter_has_no_arm_request() -> None:
    with pytest.raises(SetpointError):
        stick_frame(Setpoint(arm=ArmRequest.ARM))


def test_set_sticks_moves_only_the_named_sticks() -> None:
    sim = LockstepSim(seed=1, handshake=False)
    assert sim.sticks == NEUTRAL
    sim.set_sticks(throttle=0.3)
    sim.set_sticks(yaw=-1.0)
    assert sim.sticks == Setpoint(throttle=0.3, yaw=-1.0)
    with pytest.raises(SetpointError):
        sim.set_sticks(roll=1.5)
    assert sim.sticks == Setpoint(throttle=0.3, yaw=-1.0)
