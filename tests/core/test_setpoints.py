import math

import pytest

from pipilot.core.calibration import Calibration, ChannelCalibration
from pipilot.core.setpoints import ArmRequest, Setpoint, SetpointError
from pipilot.errors import ConfigError


def test_defaults_are_neutral_and_throttle_off():
    sp = Setpoint()
    assert (sp.throttle, sp.roll, sp.pitch, sp.yaw) == (0, 0, 0, 0)
    assert sp.accessories == (0, 0, 0, 0)
    assert sp.arm is ArmRequest.NONE


@pytest.mark.parametrize("kw", [
    {"throttle": 1.01}, {"throttle": -0.1}, {"roll": 1.5}, {"pitch": -2},
    {"yaw": math.nan}, {"roll": math.inf}, {"accessories": (0, 0, 0)},
    {"accessories": (0, 0, 0, 3)}, {"throttle": "x"}, {"arm": "fly"},
])
def test_bad_setpoints_are_refused_with_the_field_name(kw):
    with pytest.raises(SetpointError) as exc:
        Setpoint(**kw)
    field = next(iter(kw))
    assert field in str(exc.value)


def test_arm_accepts_strings():
    assert Setpoint(arm="arm").arm is ArmRequest.ARM


def test_calibration_maps_ends_and_centre():
    cal = ChannelCalibration(min=172, neutral=992, max=1811)
    assert cal.bipolar(-1) == 172 and cal.bipolar(0) == 992 and cal.bipolar(1) == 1811
    assert cal.bipolar(0.5) == round(992 + 0.5 * (1811 - 992))
    rev = ChannelCalibration(min=172, neutral=992, max=1811, reversed=True)
    assert rev.bipolar(-1) == 1811 and rev.unipolar(0) == 1811
    assert cal.unipolar(0) == 172 and cal.unipolar(1) == 1811


def test_non_finite_values_never_leave_the_span():
    cal = ChannelCalibration(min=300, neutral=1000, max=1700)
    assert cal.bipolar(math.nan) == 1000
    assert cal.unipolar(math.nan) == 300
    assert cal.bipolar(math.inf) == 1000
    assert cal.bipolar(7.0) == 1700 and cal.unipolar(-3) == 300


def test_channel_map_follows_the_rig():
    chans = Calibration().to_channels(Setpoint(throttle=1.0, roll=-1.0, pitch=1.0, yaw=-1.0,
                                               accessories=(1.0, 0.0, -1.0, 0.0)))
    assert chans[0] == 1811            # throttle on 1
    assert chans[1] == 172             # yaw on 2
    assert chans[2] == 172             # roll on 3
    assert chans[3] == 1811            # pitch on 4
    assert chans[4:8] == [1811, 992, 172, 992]
    assert chans[8:] == [992] * 8


@pytest.mark.parametrize("bad", [
    {"channel_map": (("throttle", 1), ("yaw", 1), ("roll", 3), ("pitch", 4), ("accessory0", 5),
                     ("accessory1", 6), ("accessory2", 7), ("accessory3", 8))},
    {"channel_map": (("throttle", 17),)},
    {"unused_value": 4000},
])
def test_bad_calibration_is_refused(bad):
    with pytest.raises(ConfigError):
        Calibration(**bad)


def test_min_neutral_max_order_is_checked():
    with pytest.raises(ConfigError, match=r"channels\.roll"):
        ChannelCalibration(min=1000, neutral=900, max=1800).validate("channels.roll")
    with pytest.raises(ConfigError, match=r"channels\.roll\.max"):
        ChannelCalibration(min=100, neutral=900, max=3000).validate("channels.roll")


def test_saturated_setpoints_never_raise():
    sp = Setpoint.saturated(throttle=1.7, roll=-3.0, pitch=math.nan, yaw=math.inf,
                            arm=ArmRequest.DISARM)
    # beyond the range: the end; not a number at all (inf included): neutral
    assert (sp.throttle, sp.roll, sp.pitch, sp.yaw) == (1.0, -1.0, 0.0, 0.0)
    assert sp.arm is ArmRequest.DISARM
    assert Setpoint.saturated(throttle=-math.inf).throttle == 0.0
    assert Setpoint.saturated(throttle=math.nan).throttle == 0.0
    assert Setpoint.saturated(throttle=0.4, yaw=-0.2) == Setpoint(throttle=0.4, yaw=-0.2)


def test_calibration_goes_through_the_sbus_scale():
    # the default calibration is the S.Bus unit span; the throttle spans it linearly
    from pipilot.sbus import scale
    cal = Calibration()
    for u in (-1.0, -0.37, 0.0, 0.5, 0.91, 1.0):
        sp = Setpoint(throttle=(u + 1) / 2, roll=u, pitch=-u, yaw=u, accessories=(u, u, u, u))
        chans = cal.to_channels(sp)
        assert chans[2] == chans[1] == chans[4] == scale.unit_to_value(u)
        assert chans[3] == scale.unit_to_value(-u)
        assert chans[0] == scale.fraction_to_value((u + 1) / 2)
