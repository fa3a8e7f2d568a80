import dataclasses
from pathlib import Path

import pytest

from pipilot.core import config, tomlconf
from pipilot.core.calibration import FUNCTIONS
from pipilot.core.config import ChannelsTable, CoreConfig
from pipilot.errors import ConfigError

EXAMPLE = Path(__file__).parents[2] / "docs" / "pipilot.example.toml"


def test_example_loads_and_equals_the_defaults():
    c = config.load(EXAMPLE)
    d = CoreConfig()
    assert c.link == d.link and c.watchdog == d.watchdog and c.limits == d.limits
    assert c.calibration == d.calibration and c.sources == d.sources


def write(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text,key", [
    ("[link]\nperiod_ms = 6.0\n", "link.period_ms"),
    ("[link]\nfirmware = 'betaflight'\n", "link.firmware"),
    ("[link]\nperiod_ms = 'fast'\n", "link.period_ms"),
    ("[link]\nbaud = 9600\n", "link.baud"),
    ("[watchdog]\nsilent_ms = 150.0\n", "watchdog.silent_ms"),
    ("[watchdog]\nstale_ms = 10.0\n", "watchdog.stale_ms"),
    ("[watchdog]\nstale_ms = 99.0\nsilent_ms = 90.0\n", "watchdog.silent_ms"),
    ("[failsafe]\non_source_loss = 'hover'\n", "failsafe.on_source_loss"),
    ("[failsafe]\ndescent_throttle = 1.5\n", "failsafe.descent_throttle"),
    ("[limits]\ntilt_max = 2\n", "limits.tilt_max"),
    ("[limits]\naxis_slew = -1\n", "limits.axis_slew"),
    ("[arming]\ngesture = 'roll_left'\n", "arming.gesture"),
    ("[arming]\ngesture = ['yaw_left']\n", "arming.gesture"),
    ("[realtime]\npump = 'rust'\n", "realtime.pump"),
    ("[realtime]\nmlockall = 1\n", "realtime.mlockall"),
    ("[realtime]\npriority = 0\n", "realtime.priority"),
    ("[realtime]\nnice = -30\n", "realtime.nice"),
    ("[sources.pilot]\nmode = 'mix'\n", "sources.pilot.mode"),
    ("[sources.pilot]\ntimeout_s = 0\n", "sources.pilot.timeout_s"),
    ("[sources.pilot]\nweight = 1\n", "sources.pilot.weight"),
    ("[sources.drift]\nmode = 'override'\n", "sources.drift.mode"),
    ("[sources.pilot]\nmode = 'additive'\n", "sources.pilot.mode"),
    ("[sources.mission]\nmode = 'additive'\n", "sources.mission.mode"),
    ("[channels.map]\nthrottle = 2\n", "channels.map"),
    ("[channels.map]\nflaps = 9\n", "channels.map.flaps"),
    ("[channels.roll]\nmin = 1500\nneutral = 992\n", "channels.roll"),
    ("[channels.yaw]\nmax = 4096\n", "channels.yaw.max"),
    ("[channels.yaw]\nreversed = 'yes'\n", "channels.yaw.reversed"),
    ("[shutdown]\nfailsafe_frames = 0\n", "shutdown.failsafe_frames"),
    ("[telemetry]\nport = 'x'\n", "telemetry"),
    ("[hold]\nmax_tilt_deg = 60\n", "hold.max_tilt_deg"),
    ("[hold]\nrates = 'gyro'\n", "hold.rates"),
    ("[hold]\nthrottle_min = 0.9\n", "hold.throttle_max"),
    ("[hold]\nenabled = true\n", "hold.enabled"),           # a mission's key only
    ("[hold]\ntarget_height_m = 1.0\n", "hold.target_height_m"),
    ("[hold]\nmax_tilt_kp = 1\n", "hold.max_tilt_kp"),
    ("[hold.estimator]\nlatency_s = 0\n", "hold.estimator.latency_s"),
    ("[hold.estimator]\nlag_s = 0.1\n", "hold.estimator.lag_s"),
    ("[hold]\nestimator = 3\n", "hold.estimator"),
])
def test_errors_name_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as exc:
        config.load(write(tmp_path, text))
    assert exc.value.key == key, exc.value


def test_patched_firmware_allows_short_periods(tmp_path):
    c = config.load(write(tmp_path, "[link]\nperiod_ms = 5.0\nfirmware = 'patched'\n"))
    assert c.period_s == pytest.approx(5e-3)


def test_custom_calibration_and_sources(tmp_path):
    c = config.load(write(tmp_path, """
[channels.map]
throttle = 3
roll = 1
[channels.yaw]
reversed = true
[sources.joystick]
priority = 50
timeout_s = 0.3
"""))
    assert c.calibration.channel_of("throttle") == 3
    assert c.calibration.calibration_for("yaw").reversed
    assert c.sources["joystick"].priority == 50


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(write(tmp_path, "[link\n"))


def test_a_partial_channel_table_keeps_the_rest_of_its_default(tmp_path):
    c = config.load(write(tmp_path, "[channels.throttle]\nmin = 100\n"))
    cal = c.calibration.calibration_for("throttle")
    assert (cal.min, cal.neutral, cal.max) == (100, 212, 1811)


def test_a_partial_source_table_keeps_the_standard_values(tmp_path):
    c = config.load(write(tmp_path, "[sources.mission]\ntimeout_s = 2.0\n"))
    assert c.sources["mission"] == config.SourceConfig(20, "override", 2.0)
    assert c.sources["pilot"] == config.SourceConfig(30, "override", 0.5)


@pytest.mark.parametrize("text,key,words", [
    ("[server]\nobservers = 'all'\n", "server.observers", "must be one of token, open"),
    ("[server]\nextra_origins = 'x'\n", "server.extra_origins", "must be an array"),
    ("[sources.pilot]\ntimeout_s = 0\n", "sources.pilot.timeout_s",
     "must be a number >= 0.01 and <= 10 (s), got 0"),
    ("[link]\nperiod_ms = 'fast'\n", "link.period_ms", "got 'fast'"),
    ("[link]\nmix_interval_ms = 5.0\n", "link.mix_interval_ms", "at least link.period_ms"),
    ("[realtime]\nloop_priority = 60\n", "realtime.loop_priority", "below realtime.priority"),
    ("[link]\nport = ''\n", "link.port", "device path"),
])
def test_messages_say_what_was_expected_and_found(tmp_path, text, key, words):
    with pytest.raises(ConfigError) as exc:
        config.load(write(tmp_path, text))
    assert exc.value.key == key and words in str(exc.value), exc.value


def test_a_config_built_in_code_is_checked_by_the_same_rules():
    with pytest.raises(ConfigError) as exc:
        CoreConfig(link=config.LinkConfig(period_ms=float("nan")))
    assert exc.value.key == "link.period_ms"
    with pytest.raises(ConfigError) as exc:
        CoreConfig(realtime=config.RealtimeConfig(priority=True))
    assert exc.value.key == "realtime.priority"
    with pytest.raises(ConfigError) as exc:
        CoreConfig(sources={"pilot": config.SourceConfig(30, "override", 99.0)})
    assert exc.value.key == "sources.pilot.timeout_s"


def test_the_channels_table_has_one_calibration_per_function() -> None:
    names = {f.name for f in dataclasses.fields(ChannelsTable)}
    assert set(FUNCTIONS) <= names
    assert tomlconf.load(CoreConfig, {}).calibration == ChannelsTable().calibration()


def test_the_hold_table_is_a_missions_hold_limits_and_estimator(tmp_path):
    """[hold] in the core config: the very classes (and rules) a mission's [hold] has."""
    from pipilot.control.flow import FlowConfig
    from pipilot.control.hold import HoldConfig
    from pipilot.mission.spec import parse_mission

    table = ("max_tilt_deg = 8\nmax_speed_mps = 0.6\nrates = 'attitude'\n"
             "attitude_period_ms = 300\n[hold.estimator]\nlatency_s = 0.05\n")
    c = config.load(write(tmp_path, "[hold]\n" + table))
    assert c.hold.limits == HoldConfig(max_tilt_deg=8, max_speed_mps=0.6, rates="attitude",
                                       attitude_period_ms=300)
    assert c.hold.estimator == FlowConfig(latency_s=0.05)
    spec = parse_mission("[hold]\n" + table + "[[steps]]\naction = 'arm'\n")
    assert (spec.hold, spec.flow) == (c.hold.limits, c.hold.estimator)
    assert CoreConfig().hold.limits == HoldConfig() and config.load(EXAMPLE).hold == \
        CoreConfig().hold
