"""Declarative missions: a TOML file of steps, validated before anything flies.

```toml
name = "hover"

[mission]
hover_throttle = 0.5      # throttle that holds altitude (no barometer on the rig)

[safety]
failsafe = "land"         # land | disarm | release

[drift]
enabled = true            # gains and estimator settings, see pipilot.control.drift

[[steps]]
action = "arm"
[[steps]]
action = "climb"
throttle = 0.6
seconds = 2.0
[[steps]]
action = "hover"
seconds = 60
[[steps]]
action = "land"
[[steps]]
action = "disarm"

[sim]                     # honoured by --sim only: the simulated craft, never the mission
mount_tilt_deg = 2.0
wind_mps = 0.5
mass_kg = 1.1
```

Every error names the step (1-based, with its action) and the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipilot.control.drift import CompensatorConfig, EstimatorConfig
from pipilot.control.flow import FlowConfig
from pipilot.control.hold import HoldConfig
from pipilot.core import tomlconf
from pipilot.core.firmware import FIRMWARES
from pipilot.core.tomlconf import Rule, load, setting
from pipilot.errors import ConfigError
from pipilot.mission.defaults import HOVER_THROTTLE
from pipilot.sim.faults import FAULT_ACTIONS, FAULT_KEYS, FAULT_LEVELS, inert_fault
from pipilot.uavtalk.fields import ALARM_ELEMENTS
from pipilot.uavtalk.linkbudget import CC3D_OBJECTS

FAILSAFES = ("land", "disarm", "release")


@dataclass(frozen=True)
class Param:
    """A step parameter: its rule (a number within bounds) and whether it must be given."""

    rule: Rule
    required: bool = False


_THROTTLE = Param(Rule(ge=0.0, le=1.0))
_STICK = Param(Rule(ge=-1.0, le=1.0))
_SECONDS = Param(Rule(gt=0.0, le=3600.0, unit="s"), required=True)
_TIMEOUT = Param(Rule(gt=0.0, le=600.0, unit="s"))

STEP_PARAMS: dict[str, dict[str, Param]] = {
    "arm": {"timeout_s": _TIMEOUT},
    "climb": {"throttle": Param(_THROTTLE.rule, required=True), "seconds": _SECONDS},
    "hover": {"seconds": _SECONDS, "throttle": _THROTTLE},
    "move": {"roll": _STICK, "pitch": _STICK, "seconds": _SECONDS, "throttle": _THROTTLE},
    "yaw": {"rate": Param(_STICK.rule, required=True), "seconds": _SECONDS,
            "throttle": _THROTTLE},
    "hold": {"seconds": _SECONDS, "height": Param(Rule(gt=0.0, le=10.0, unit="m"))},
    "land": {"seconds": Param(Rule(gt=0.0, le=120.0, unit="s")), "throttle": _THROTTLE},
    "disarm": {"timeout_s": _TIMEOUT},
}


@dataclass(frozen=True)
class Step:
    """One mission step: an action and its parameters (already validated)."""

    action: str
    params: Mapping[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{self.action}({args})"


@dataclass(frozen=True)
class MissionConfig:
    hover_throttle: float = setting(HOVER_THROTTLE, gt=0.0, lt=1.0)
    rate_hz: float = setting(50.0, ge=5.0, le=200.0, unit="Hz")
    """How often the mission publishes its setpoint and checks its monitors."""


# A huge duration would switch a monitor off or keep a failsafe flying for ever.
@dataclass(frozen=True)
class SafetyConfig:
    failsafe: str = setting("land", choices=FAILSAFES)
    connect_timeout_s: float = setting(10.0, gt=0.0, le=600.0, unit="s")
    """How long a mission waits for the telemetry link before it refuses to start."""
    telemetry_timeout_s: float = setting(1.0, gt=0.0, le=10.0, unit="s")
    max_tilt_deg: float = setting(35.0, gt=0.0, le=90.0, unit="deg")
    alarm_level: str = setting("Critical", choices=("Warning", "Critical", "Error"),
                               ignore_case=True)
    ignore_alarms: tuple[str, ...] = ()
    arm_timeout_s: float = setting(5.0, gt=0.0, le=60.0, unit="s")
    step_timeout_margin_s: float = setting(2.0, ge=0.0, le=60.0, unit="s")
    land_seconds: float = setting(4.0, gt=0.0, le=120.0, unit="s")   # as the land step's
    land_throttle: float | None = setting(None, ge=0.0, le=1.0)
    """Descent throttle; default: 90 % of the hover throttle."""


@dataclass(frozen=True)
class FaultSpec:
    """One fault injected into the simulated FC (``[[sim.faults]]``, see
    pipilot.sim.faults and docs/sim.md): ``action`` at simulator time ``at_s``,
    with the keys that action takes (the others keep their defaults)."""

    at_s: float = setting(ge=0.0, le=3600.0, unit="s")
    action: str = setting(choices=FAULT_ACTIONS)
    up: bool = True
    """cut_telemetry: cut the ground -> flight direction."""
    down: bool = True
    """cut_telemetry: cut the flight -> ground direction."""
    element: str = setting("Sensors", choices=ALARM_ELEMENTS)
    """raise_alarm, clear_alarm: the SystemAlarms element."""
    level: str = setting("Critical", choices=FAULT_LEVELS)
    """raise_alarm: its level."""
    roll_dps: float = setting(0.0, ge=-3600.0, le=3600.0, unit="deg/s")
    """upset: the kick to the body rates."""
    pitch_dps: float = setting(0.0, ge=-3600.0, le=3600.0, unit="deg/s")
    yaw_dps: float = setting(0.0, ge=-3600.0, le=3600.0, unit="deg/s")
    object: str = setting("FlightStatus", choices=CC3D_OBJECTS)
    """drop_updates, resume_updates: the object whose updates the FC's queue drops."""


def _faults(raw: Any, path: str) -> tuple[FaultSpec, ...]:
    """``[[sim.faults]]``: each table read as a `FaultSpec`, with only the keys its
    action takes, and none that would inject nothing."""
    if not isinstance(raw, list):
        raise ConfigError(path, "must be an array of tables ([[sim.faults]])")
    faults = []
    for i, entry in enumerate(raw):
        where = f"{path}[{i}]"
        fault = load(FaultSpec, entry, where)   # types, bounds, choices, missing keys
        allowed = FAULT_KEYS[fault.action] | {"at_s", "action"}
        for key in entry:
            if key not in allowed:
                takes = ", ".join(sorted(FAULT_KEYS[fault.action])) or "no other key"
                raise ConfigError(f"{where}.{key}",
                                  f"not a key of {fault.action} (it takes {takes})")
        if (inert := inert_fault(fault)) is not None:
            raise ConfigError(f"{where}.{inert[0]}", inert[1])
        faults.append(fault)
    return tuple(faults)


@dataclass(frozen=True)
class SimSpec:
    """The simulated craft and its conditions (``--sim`` only).

    These shape the simulated CC3D alone: nothing that flies (the mission, the
    drift loop, its estimator) reads them, so a run can differ from what the
    mission's own settings assume. Defaults are the simulator's standard craft.
    """

    mount_tilt_deg: float = setting(0.0, ge=0.0, le=20.0, unit="deg")
    mount_tilt_axis_deg: float = setting(0.0, ge=-360.0, le=360.0, unit="deg")
    """Direction the board leans: 0 = nose up (pitch), 90 = right side down (roll)."""
    wind_mps: float = setting(0.0, ge=0.0, le=20.0, unit="m/s")
    """Mean wind speed."""
    wind_from_deg: float = setting(0.0, ge=-360.0, le=360.0, unit="deg")
    """Where the wind comes from (0 = north), like a weather report."""
    gust_mps: float = setting(0.0, ge=0.0, le=10.0, unit="m/s")
    """Gusts around the mean wind: rms per horizontal axis (correlation time 2 s)."""
    seed: float = setting(0, ge=0.0, le=2.0**32 - 1, whole=True)
    """Seed of the simulator's sensor biases, noise and gusts."""
    firmware: str = setting("stock", choices=FIRMWARES)
    """"stock" 16.09, or "patched" with firmware-patches/ applied (S.Bus resync,
    AccelState low-passed: what the drift estimator needs, see docs/missions.md)."""
    mass_kg: float = setting(1.0, ge=0.05, le=20.0, unit="kg")
    """The craft's mass (its inertia stays the standard craft's)."""
    drag: float = setting(0.35, gt=0.0, le=10.0, unit="N per m/s")
    """Horizontal rotor drag, N per m/s of air-relative speed."""
    hover_throttle: float | None = setting(None, ge=0.1, le=0.9)
    """Throttle stick (0..1) at which the craft hovers; it sets the thrust-to-weight
    ratio. Default: the standard craft's (thrust-to-weight 2.2, about 0.468)."""
    telemetry_latency_s: float = setting(0.0, ge=0.0, le=2.0, unit="s")
    """Extra delay of the telemetry from the flight controller to the ground."""
    attitude_kp: float = setting(2.5, gt=0.0, le=10.0)
    """The FC's attitude loop gain, (deg/s) per degree off (StabilizationBank
    RollPI/PitchPI Kp; 2.5 is LibrePilot 16.09's default): how fast it tilts."""
    texture: float = setting(1.0, ge=0.0, le=1.0)
    """Floor quality for the optical-flow sensor model, 0 (none) .. 1 (good)."""
    flow_scale: float = setting(1.0, ge=0.5, le=1.5)
    """The flow sensor's scale error: counts per radian times this."""
    flow_noise: float = setting(1.0, ge=0.0, le=100.0)
    """The flow sensor's count noise, times the model's own (pipilot.sim.flowdeck)."""
    range_scale: float = setting(1.0, ge=0.5, le=1.5)
    """The ranger's scale error: distances times this."""
    texture_dropout_at_s: float = setting(0.0, ge=0.0, le=3600.0, unit="s")
    """Simulator time at which the floor loses its texture (with texture_dropout_s)."""
    texture_dropout_s: float = setting(0.0, ge=0.0, le=3600.0, unit="s")
    """How long the floor has no texture (0: never)."""
    imu: bool = True
    """The simulated flow deck has an MPU-6050 on its I2C bus (the hold's rates)."""
    faults: tuple[FaultSpec, ...] = setting((), parse=_faults)
    """Faults injected into the simulated FC during the run, each at its time."""


@dataclass(frozen=True)
class MissionSpec:
    name: str
    steps: tuple[Step, ...]
    mission: MissionConfig = field(default_factory=MissionConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    drift_enabled: bool = True
    drift: CompensatorConfig = field(default_factory=CompensatorConfig)
    estimator: EstimatorConfig = field(default_factory=EstimatorConfig)
    sim: SimSpec | None = None
    hold_enabled: bool = False
    """Fly ``hold`` steps (and the climb and landing around them) on the flow-deck
    hold; False: a ``hold`` step is a plain hover at the mission's hover throttle."""
    hold_target_height_m: float = 1.0
    hold: HoldConfig = field(default_factory=HoldConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)


def validate_step(action: Any, params: Mapping[str, Any], where: str) -> Step:
    """Check one step; ``where`` prefixes the key in errors (e.g. "step 3 (climb)")."""
    if not isinstance(action, str) or action not in STEP_PARAMS:
        raise ConfigError(f"{where}.action",
                          f"unknown action {tomlconf.short(action)} "
                          f"(one of {', '.join(STEP_PARAMS)})")
    schema = STEP_PARAMS[action]
    out: dict[str, float] = {}
    for key, value in params.items():
        if key not in schema:
            raise ConfigError(f"{where}.{key}",
                              f"unknown key for {action} (known: {', '.join(schema) or 'none'})")
        out[key] = tomlconf.check(value, f"{where}.{key}", schema[key].rule)
    for key, param in schema.items():
        if param.required and key not in out:
            raise ConfigError(f"{where}.{key}", f"missing (required by {action})")
    return Step(action, out)


def _steps(raw: Any, path: str) -> tuple[Step, ...]:
    """``[[steps]]``: errors name the step by its number (1-based) and action."""
    if not isinstance(raw, list) or not raw:
        raise ConfigError(path, "must be a non-empty array of tables ([[steps]])")
    steps = []
    for i, entry in enumerate(raw, start=1):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"step {i}", "must be a table")
        action = entry.get("action")
        where = f"step {i} ({action})" if isinstance(action, str) else f"step {i}"
        if action is None:
            raise ConfigError(f"{where}.action", "missing")
        params = {k: v for k, v in entry.items() if k != "action"}
        steps.append(validate_step(action, params, where))
    return tuple(steps)


@dataclass(frozen=True)
class DriftTable:
    """``[drift]``: on or off, the loop's gains (keys of this table itself) and
    ``[drift.estimator]``."""

    enabled: bool = True
    estimator: EstimatorConfig = field(default_factory=EstimatorConfig)
    loop: CompensatorConfig = setting(default_factory=CompensatorConfig, inline=True)


@dataclass(frozen=True)
class HoldTable:
    """``[hold]``: on or off, the hold step's default height, the hold's limits and
    gains (keys of this table itself) and ``[hold.estimator]``."""

    enabled: bool = False
    target_height_m: float = setting(1.0, gt=0.0, le=10.0, unit="m")
    estimator: FlowConfig = field(default_factory=FlowConfig)
    limits: HoldConfig = setting(default_factory=HoldConfig, inline=True)


@dataclass(frozen=True)
class MissionFile:
    """A mission file's shape; `MissionSpec` is what it becomes."""

    name: str | None = None
    mission: MissionConfig = field(default_factory=MissionConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    drift: DriftTable = field(default_factory=DriftTable)
    sim: SimSpec | None = None
    hold: HoldTable = field(default_factory=HoldTable)
    steps: tuple[Step, ...] = setting((), parse=_steps)


def load_mission(path: str | Path) -> MissionSpec:
    """Read and validate a mission file."""
    p = Path(path)
    return parse_mission(tomlconf.read_text(p, "mission file"), name=p.stem)


def parse_mission(text: str, *, name: str = "mission") -> MissionSpec:
    return mission_from_dict(tomlconf.parse_toml(text, "toml"), name=name)


def mission_from_dict(doc: Mapping[str, Any], *, name: str = "mission") -> MissionSpec:
    f = tomlconf.load(MissionFile, doc)
    land = f.safety.land_throttle
    if land is not None and land >= f.mission.hover_throttle:
        # the land failsafe would climb for land_seconds, then cut the motors up there
        raise ConfigError("safety.land_throttle",
                          f"must be below mission.hover_throttle ({f.mission.hover_throttle:g}),"
                          f" not {land:g}")
    if not f.steps:
        raise ConfigError("steps", "a mission needs at least one [[steps]] entry")
    ceiling = f.hold.limits.max_height_m
    if f.hold.target_height_m > ceiling:
        raise ConfigError("hold.target_height_m",
                          f"must be <= hold.max_height_m ({ceiling:g})")
    for i, step in enumerate(f.steps, start=1):
        h = step.params.get("height")
        if h is not None and h > ceiling:
            raise ConfigError(f"step {i} ({step.action}).height",
                              f"must be <= hold.max_height_m ({ceiling:g})")
    return MissionSpec(f.name if f.name is not None else name, f.steps, f.mission, f.safety,
                       f.drift.enabled, f.drift.loop, f.drift.estimator, f.sim,
                       f.hold.enabled, f.hold.target_height_m, f.hold.limits,
                       f.hold.estimator)
