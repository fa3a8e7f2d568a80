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

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pipilot.control.drift import CompensatorConfig, EstimatorConfig
from pipilot.control.flow import FlowConfig, FlowEstimator
from pipilot.control.hold import HoldConfig
from pipilot.core.firmware import FIRMWARES
from pipilot.errors import ConfigError

FAILSAFES = ("land", "disarm", "release")


@dataclass(frozen=True)
class Param:
    kind: type
    required: bool = False
    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False


_THROTTLE = Param(float, lo=0.0, hi=1.0)
_STICK = Param(float, lo=-1.0, hi=1.0)
_SECONDS = Param(float, required=True, lo=0.0, hi=3600.0, lo_open=True)
_TIMEOUT = Param(float, lo=0.0, hi=600.0, lo_open=True)

STEP_PARAMS: dict[str, dict[str, Param]] = {
    "arm": {"timeout_s": _TIMEOUT},
    "climb": {"throttle": Param(float, required=True, lo=0.0, hi=1.0), "seconds": _SECONDS},
    "hover": {"seconds": _SECONDS, "throttle": _THROTTLE},
    "move": {"roll": _STICK, "pitch": _STICK, "seconds": _SECONDS, "throttle": _THROTTLE},
    "yaw": {"rate": Param(float, required=True, lo=-1.0, hi=1.0), "seconds": _SECONDS,
            "throttle": _THROTTLE},
    "hold": {"seconds": _SECONDS, "height": Param(float, lo=0.0, hi=10.0, lo_open=True)},
    "land": {"seconds": Param(float, lo=0.0, hi=120.0, lo_open=True), "throttle": _THROTTLE},
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
    hover_throttle: float = 0.5
    rate_hz: float = 50.0
    """How often the mission publishes its setpoint and checks its monitors."""


@dataclass(frozen=True)
class SafetyConfig:
    failsafe: str = "land"
    connect_timeout_s: float = 10.0
    """How long a mission waits for the telemetry link before it refuses to start."""
    telemetry_timeout_s: float = 1.0
    max_tilt_deg: float = 35.0
    alarm_level: str = "Critical"
    ignore_alarms: tuple[str, ...] = ()
    arm_timeout_s: float = 5.0
    step_timeout_margin_s: float = 2.0
    land_seconds: float = 4.0
    land_throttle: float | None = None
    """Descent throttle; default: 90 % of the hover throttle."""


@dataclass(frozen=True)
class SimSpec:
    """The simulated craft and its conditions (``--sim`` only).

    These shape the simulated CC3D alone: nothing that flies (the mission, the
    drift loop, its estimator) reads them, so a run can differ from what the
    mission's own settings assume. Defaults are the simulator's standard craft.
    """

    mount_tilt_deg: float = 0.0
    mount_tilt_axis_deg: float = 0.0
    """Direction the board leans: 0 = nose up (pitch), 90 = right side down (roll)."""
    wind_mps: float = 0.0
    """Mean wind speed."""
    wind_from_deg: float = 0.0
    """Where the wind comes from (0 = north), like a weather report."""
    gust_mps: float = 0.0
    """Gusts around the mean wind: rms per horizontal axis (correlation time 2 s)."""
    seed: float = 0
    """Seed of the simulator's sensor biases, noise and gusts."""
    firmware: str = field(default="stock", metadata={"choices": FIRMWARES})
    """"stock" 16.09, or "patched" with firmware-patches/ applied (S.Bus resync,
    AccelState low-passed: what the drift estimator needs, see docs/missions.md)."""
    mass_kg: float = 1.0
    """The craft's mass (its inertia stays the standard craft's)."""
    drag: float = 0.35
    """Horizontal rotor drag, N per m/s of air-relative speed."""
    hover_throttle: float | None = None
    """Throttle stick (0..1) at which the craft hovers; it sets the thrust-to-weight
    ratio. Default: the standard craft's (thrust-to-weight 2.2, about 0.468)."""
    telemetry_latency_s: float = 0.0
    """Extra delay of the telemetry from the flight controller to the ground."""
    texture: float = 1.0
    """Floor quality for the optical-flow sensor model, 0 (none) .. 1 (good)."""
    flow_scale: float = 1.0
    """The flow sensor's scale error: counts per radian times this."""
    range_scale: float = 1.0
    """The ranger's scale error: distances times this."""
    texture_dropout_at_s: float = 0.0
    """Simulator time at which the floor loses its texture (with texture_dropout_s)."""
    texture_dropout_s: float = 0.0
    """How long the floor has no texture (0: never)."""


SIM_RANGES: dict[str, Param] = {
    "mount_tilt_deg": Param(float, lo=0.0, hi=20.0),
    "mount_tilt_axis_deg": Param(float, lo=-360.0, hi=360.0),
    "wind_mps": Param(float, lo=0.0, hi=20.0),
    "wind_from_deg": Param(float, lo=-360.0, hi=360.0),
    "gust_mps": Param(float, lo=0.0, hi=10.0),
    "seed": Param(float, lo=0.0, hi=2.0**32 - 1),
    "mass_kg": Param(float, lo=0.05, hi=20.0),
    "drag": Param(float, lo=0.0, hi=10.0, lo_open=True),
    "hover_throttle": Param(float, lo=0.1, hi=0.9),
    "telemetry_latency_s": Param(float, lo=0.0, hi=2.0),
    "texture": Param(float, lo=0.0, hi=1.0),
    "flow_scale": Param(float, lo=0.5, hi=1.5),
    "range_scale": Param(float, lo=0.5, hi=1.5),
    "texture_dropout_at_s": Param(float, lo=0.0, hi=3600.0),
    "texture_dropout_s": Param(float, lo=0.0, hi=3600.0),
}
"""Accepted range of each numeric ``[sim]`` key."""


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


HOLD_HEIGHT = Param(float, lo=0.0, hi=10.0, lo_open=True)


def _hold(raw: Any) -> tuple[bool, float, HoldConfig, FlowConfig]:
    """The ``[hold]`` table: enabled, target_height_m, the HoldConfig numbers, [hold.estimator]."""
    if not isinstance(raw, Mapping):
        raise ConfigError("hold", "must be a table")
    enabled = raw.get("enabled", False)
    if not isinstance(enabled, bool):
        raise ConfigError("hold.enabled", "must be true or false")
    height = _number(raw.get("target_height_m", 1.0), HOLD_HEIGHT, "hold.target_height_m")
    config = HoldConfig.from_mapping(raw)
    if height > config.max_height_m:
        raise ConfigError("hold.target_height_m",
                          f"must be <= hold.max_height_m ({config.max_height_m:g})")
    est = raw.get("estimator", {})
    if not isinstance(est, Mapping):
        raise ConfigError("hold.estimator", "must be a table")
    return enabled, height, config, FlowEstimator.config_from_mapping(est)


def load_mission(path: str | Path) -> MissionSpec:
    """Read and validate a mission file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), f"cannot read mission file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(str(p), f"not UTF-8 text: {exc.reason}") from exc
    return parse_mission(text, name=p.stem)


def parse_mission(text: str, *, name: str = "mission") -> MissionSpec:
    try:
        doc = tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError, or an integer too long to convert
        raise ConfigError("toml", str(exc).split(";")[0]) from None
    except RecursionError:     # arrays nested thousands deep
        raise ConfigError("toml", "nested too deeply") from None
    return mission_from_dict(doc, name=name)


def mission_from_dict(doc: Mapping[str, Any], *, name: str = "mission") -> MissionSpec:
    known = {"name", "mission", "safety", "drift", "steps", "sim", "hold"}
    for key in doc:
        if key not in known:
            raise ConfigError(key, f"unknown top-level key (known: {', '.join(sorted(known))})")
    title = doc.get("name", name)
    if not isinstance(title, str):
        raise ConfigError("name", "must be a string")
    mission = _table(MissionConfig, doc.get("mission", {}), "mission")
    if not 0 < mission.hover_throttle < 1:
        raise ConfigError("mission.hover_throttle", "must be between 0 and 1")
    if not 5 <= mission.rate_hz <= 200:
        raise ConfigError("mission.rate_hz", "must be between 5 and 200")
    safety = _safety(doc.get("safety", {}))
    if safety.land_throttle is not None and safety.land_throttle >= mission.hover_throttle:
        # the land failsafe would climb for land_seconds, then cut the motors up there
        raise ConfigError("safety.land_throttle",
                          f"must be below mission.hover_throttle ({mission.hover_throttle:g}),"
                          f" not {safety.land_throttle:g}")
    drift_table = doc.get("drift", {})
    if not isinstance(drift_table, Mapping):
        raise ConfigError("drift", "must be a table")
    enabled = drift_table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError("drift.enabled", "must be true or false")
    drift = CompensatorConfig.from_mapping(drift_table)
    est_table = drift_table.get("estimator", {})
    if not isinstance(est_table, Mapping):
        raise ConfigError("drift.estimator", "must be a table")
    estimator = EstimatorConfig.from_mapping(est_table)
    sim = _sim(doc["sim"]) if "sim" in doc else None
    steps = _steps(doc.get("steps"))
    hold_on, height, hold, flow = _hold(doc.get("hold", {}))
    for i, step in enumerate(steps, start=1):
        h = step.params.get("height")
        if h is not None and h > hold.max_height_m:
            raise ConfigError(f"step {i} ({step.action}).height",
                              f"must be <= hold.max_height_m ({hold.max_height_m:g})")
    return MissionSpec(title, steps, mission, safety, enabled, drift, estimator, sim,
                       hold_on, height, hold, flow)


def validate_step(action: Any, params: Mapping[str, Any], where: str) -> Step:
    """Check one step; ``where`` prefixes the key in errors (e.g. "step 3 (climb)")."""
    if not isinstance(action, str) or action not in STEP_PARAMS:
        raise ConfigError(f"{where}.action",
                          f"unknown action {action!r} (one of {', '.join(STEP_PARAMS)})")
    schema = STEP_PARAMS[action]
    out: dict[str, float] = {}
    for key, value in params.items():
        if key not in schema:
            raise ConfigError(f"{where}.{key}",
                              f"unknown key for {action} (known: {', '.join(schema) or 'none'})")
        out[key] = _number(value, schema[key], f"{where}.{key}")
    for key, param in schema.items():
        if param.required and key not in out:
            raise ConfigError(f"{where}.{key}", f"missing (required by {action})")
    return Step(action, out)


def _steps(raw: Any) -> tuple[Step, ...]:
    if raw is None:
        raise ConfigError("steps", "a mission needs at least one [[steps]] entry")
    if not isinstance(raw, list) or not raw:
        raise ConfigError("steps", "must be a non-empty array of tables ([[steps]])")
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


def _number(value: Any, param: Param, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"must be a number, not {value!r}")
    try:
        v = float(value)
    except OverflowError:  # TOML integers have no size limit in the parser
        raise ConfigError(key, "must be finite") from None
    if not math.isfinite(v):
        raise ConfigError(key, "must be finite")
    too_low = v <= param.lo if param.lo_open else v < param.lo
    if too_low or v > param.hi:
        lo = f"> {param.lo:g}" if param.lo_open else f">= {param.lo:g}"
        raise ConfigError(key, f"must be {lo} and <= {param.hi:g}, not {v:g}")
    return v


def _table(cls: Any, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(prefix, "must be a table")
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            raise ConfigError(f"{prefix}.{key}",
                              f"unknown key (known: {', '.join(known)})")
        choices = known[key].metadata.get("choices")
        if choices is not None:
            if value not in choices:
                raise ConfigError(f"{prefix}.{key}", f"must be one of {', '.join(choices)}")
            values[key] = value
            continue
        values[key] = _number(value, Param(float), f"{prefix}.{key}")
    return cls(**values)


def _sim(raw: Any) -> SimSpec:
    sim: SimSpec = _table(SimSpec, raw, "sim")
    for key, param in SIM_RANGES.items():
        value = getattr(sim, key)
        if value is not None:
            _number(value, param, f"sim.{key}")
    if sim.seed != int(sim.seed):
        raise ConfigError("sim.seed", f"must be a whole number, not {sim.seed:g}")
    return sim


def _safety(raw: Any) -> SafetyConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError("safety", "must be a table")
    raw = dict(raw)
    failsafe = raw.pop("failsafe", "land")
    if failsafe not in FAILSAFES:
        raise ConfigError("safety.failsafe", f"must be one of {', '.join(FAILSAFES)}")
    level = raw.pop("alarm_level", "Critical")
    if not isinstance(level, str) or level.capitalize() not in ("Warning", "Critical", "Error"):
        raise ConfigError("safety.alarm_level", "must be Warning, Critical or Error")
    ignore = raw.pop("ignore_alarms", [])
    if not isinstance(ignore, list) or not all(isinstance(a, str) for a in ignore):
        raise ConfigError("safety.ignore_alarms", "must be a list of alarm names")
    land_throttle = raw.pop("land_throttle", None)
    if land_throttle is not None:
        land_throttle = _number(land_throttle, _THROTTLE, "safety.land_throttle")
    base = _table(_SafetyNumbers, raw, "safety")
    positive = ("connect_timeout_s", "telemetry_timeout_s", "max_tilt_deg", "arm_timeout_s",
                "land_seconds")
    for key in positive:
        if getattr(base, key) <= 0:
            raise ConfigError(f"safety.{key}", "must be > 0")
    # A huge value would switch a monitor off or keep a failsafe flying for ever.
    for key, most in _SAFETY_MAX.items():
        if getattr(base, key) > most:
            raise ConfigError(f"safety.{key}", f"must be <= {most:g}, not {getattr(base, key):g}")
    if base.max_tilt_deg > 90:
        raise ConfigError("safety.max_tilt_deg", "must be <= 90")
    if base.step_timeout_margin_s < 0:
        raise ConfigError("safety.step_timeout_margin_s", "must be >= 0")
    return SafetyConfig(failsafe=failsafe, alarm_level=level.capitalize(),
                        ignore_alarms=tuple(ignore), land_throttle=land_throttle,
                        **{f.name: getattr(base, f.name) for f in fields(base)})


_SAFETY_MAX = {
    "connect_timeout_s": 600.0,
    "telemetry_timeout_s": 10.0,
    "arm_timeout_s": 60.0,
    "step_timeout_margin_s": 60.0,
    "land_seconds": 120.0,  # as the land step's seconds
}


@dataclass(frozen=True)
class _SafetyNumbers:
    connect_timeout_s: float = SafetyConfig.connect_timeout_s
    telemetry_timeout_s: float = SafetyConfig.telemetry_timeout_s
    max_tilt_deg: float = SafetyConfig.max_tilt_deg
    arm_timeout_s: float = SafetyConfig.arm_timeout_s
    step_timeout_margin_s: float = SafetyConfig.step_timeout_margin_s
    land_seconds: float = SafetyConfig.land_seconds
