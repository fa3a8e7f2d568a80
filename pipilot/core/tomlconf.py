"""TOML into frozen dataclasses: the one config loader.

A config class is a frozen dataclass whose field types and metadata say what
its TOML table may hold; `load(cls, table, path)` builds one and every
problem is a `ConfigError` naming the full dotted key path
(``sim.mass_kg``, ``drift.estimator.drag_coeff``, ``sources.pilot.mode``)
with what was expected and what was found.

Field types understood: ``bool``, ``int``, ``float`` (an integer is taken
too), ``str``, ``X | None`` (``None`` only as the default: TOML has no null),
a nested dataclass (a sub-table, read over the field's default so that a
partial table changes only the keys it names), ``tuple[X, ...]`` (an array)
and ``dict[str, X]`` (a table of values or of sub-tables, read over the
default's entries).

Field metadata comes from `setting(...)`: bounds (``ge``, ``gt``, ``le``,
``lt``), ``choices``, ``unit``, ``whole`` (a float that must be a whole
number), ``keys`` (the names a dict may hold), ``inline`` (a dataclass whose
keys sit in the enclosing table, not a sub-table of its own), ``parse`` (a
function ``(value, path) -> value`` for what no type says, such as mission
steps) and ``key`` (the TOML key, when it is not the field's name). For
containers the bounds and choices apply to each element.

`check_fields(obj, prefix)` applies the same rules to an object built in
code, so a dataclass's ``__post_init__`` validates with the very rules the
loader uses.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, Union, get_args, get_origin, get_type_hints

from pipilot.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

#: Integers beyond this are refused wherever they appear (TOML integers have no size limit).
INT_LIMIT = 2**53
_RULE = "pipilot.rule"
_MISSING: Any = dataclasses.MISSING


@dataclasses.dataclass(frozen=True)
class Rule:
    """What a field's value must be, beyond its type (see `setting`)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] | None = None
    ignore_case: bool = False
    unit: str = ""
    whole: bool = False
    keys: tuple[str, ...] | None = None
    inline: bool = False
    parse: Callable[[Any, str], Any] | None = None
    key: str | None = None

    def bounds(self) -> str:
        """The range as words: ">= 0 and <= 1 (s)"."""
        parts = [f"{op} {v:g}" for op, v in ((">=", self.ge), (">", self.gt),
                                               ("<=", self.le), ("<", self.lt)) if v is not None]
        return " and ".join(parts) + (f" ({self.unit})" if self.unit else "")

    def in_range(self, v: float) -> bool:
        return not ((self.ge is not None and not v >= self.ge)
                    or (self.gt is not None and not v > self.gt)
                    or (self.le is not None and not v <= self.le)
                    or (self.lt is not None and not v < self.lt))

    @property
    def bounded(self) -> bool:
        return any(v is not None for v in (self.ge, self.gt, self.le, self.lt))


NO_RULE = Rule()


def setting(default: Any = _MISSING, *, default_factory: Any = _MISSING,
            **rule: Any) -> Any:
    """A dataclass field with a `Rule` in its metadata: ``x: float = setting(1.0, ge=0)``."""
    meta = {_RULE: Rule(**rule)}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def rule_of(f: dataclasses.Field[Any]) -> Rule:
    rule: Rule = f.metadata.get(_RULE, NO_RULE)
    return rule


def short(v: Any) -> str:
    """``repr(v)``, cut short: a 5000-digit integer must not fill the terminal."""
    text = repr(v)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# -- reading a document ------------------------------------------------------------

def parse_toml(text: str, key: str) -> dict[str, Any]:
    """Parse TOML text; every way it can fail is one ConfigError under ``key``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(key, f"not valid TOML: {exc}") from None
    except ValueError as exc:   # an integer too long to convert (over 4300 digits)
        raise ConfigError(key, f"not valid TOML: {str(exc).split(';')[0]}") from None
    except RecursionError:      # arrays nested thousands deep
        raise ConfigError(key, "not valid TOML: nested too deeply") from None


def read_text(path: str | Path, what: str = "") -> str:
    """A file's UTF-8 text; unreadable or not UTF-8 is a ConfigError naming the file."""
    p = Path(path)
    label = f"cannot read {what}" if what else "cannot read"
    try:
        return p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), f"{label}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(p), f"not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; errors name the file."""
    return parse_toml(read_text(path), str(path))


# -- tables into dataclasses -----------------------------------------------------

def load(cls: type[T], data: Any, path: str = "", *, base: T | None = None) -> T:
    """Build ``cls`` from a TOML table; keys it does not name keep ``base``'s (or
    the class's default) values. Errors name ``path``.key."""
    if not isinstance(data, Mapping):
        raise ConfigError(path or "config", f"must be a table, got {short(data)}")
    hints = _hints(cls)
    known = _known_keys(cls)
    for key in data:
        if key not in known:
            raise ConfigError(join(path, str(key)),
                              f"unknown key (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        rule = rule_of(f)
        tp = hints[f.name]
        current = getattr(base, f.name) if base is not None else _default(f)
        if rule.inline:
            sub = {k: v for k, v in data.items() if k in _known_keys(tp)}
            values[f.name] = load(tp, sub, path, base=current)
        elif (key := rule.key or f.name) in data:
            values[f.name] = convert(tp, data[key], join(path, key), rule, current)
        elif current is _MISSING:
            raise ConfigError(join(path, key), "missing")
    if base is not None:
        return dataclasses.replace(base, **values)
    return cls(**values)


def _known_keys(cls: type) -> set[str]:
    known: set[str] = set()
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        rule = rule_of(f)
        if rule.inline:
            known |= _known_keys(hints[f.name])
        else:
            known.add(rule.key or f.name)
    return known


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = get_type_hints(cls)
    return hints


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not _MISSING:
        return f.default
    factory: Any = f.default_factory
    if factory is not _MISSING:
        return factory()
    return _MISSING


def convert(tp: Any, value: Any, path: str, rule: Rule = NO_RULE,
            current: Any = _MISSING) -> Any:
    """One value, checked against its type and rule; ``current`` is what it replaces
    (a nested table and a dict are read over it)."""
    if rule.parse is not None:
        return rule.parse(value, path)
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        inner = [a for a in get_args(tp) if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"{path}: only X | None is supported, not {tp}")
        return convert(inner[0], value, path, rule,
                       _MISSING if current is None else current)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return load(tp, value, path, base=None if current is _MISSING else current)
    if origin is tuple:
        return _array(tp, value, path, rule)
    if origin is dict:
        return _table(tp, value, path, rule, current)
    return _scalar(tp, value, path, rule)


def _array(tp: Any, value: Any, path: str, rule: Rule) -> tuple[Any, ...]:
    args = get_args(tp)
    if len(args) != 2 or args[1] is not Ellipsis:
        raise TypeError(f"{path}: only tuple[X, ...] is supported, not {tp}")
    if not isinstance(value, list):
        raise ConfigError(path, f"must be an array ({_expected(args[0], rule)} each), "
                                f"got {short(value)}")
    return tuple(convert(args[0], v, f"{path}[{i}]", rule) for i, v in enumerate(value))


def _table(tp: Any, value: Any, path: str, rule: Rule, current: Any) -> dict[str, Any]:
    key_type, value_type = get_args(tp)
    if key_type is not str:
        raise TypeError(f"{path}: only dict[str, X] is supported, not {tp}")
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"must be a table, got {short(value)}")
    out: dict[str, Any] = dict(current) if isinstance(current, Mapping) else {}
    for key, v in value.items():
        if rule.keys is not None and key not in rule.keys:
            raise ConfigError(join(path, key), f"unknown key (known: {', '.join(rule.keys)})")
        out[key] = convert(value_type, v, join(path, key), rule, out.get(key, _MISSING))
    return out


def _expected(tp: Any, rule: Rule) -> str:
    if rule.choices is not None:
        return f"one of {', '.join(rule.choices)}"
    if dataclasses.is_dataclass(tp):
        return "a table"
    noun = {bool: "true or false", int: "an integer", float: "a number",
            str: "a string"}.get(tp, str(tp))
    return f"{noun} {rule.bounds()}" if rule.bounded else noun


def _scalar(tp: Any, value: Any, path: str, rule: Rule) -> Any:
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"must be true or false, got {short(value)}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"must be {_expected(tp, rule)}, got {short(value)}")
        if rule.choices is not None:
            return _choice(value, path, rule)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"must be {_expected(tp, rule)}, got {short(value)}")
        if abs(value) > INT_LIMIT or not rule.in_range(value):
            raise ConfigError(path, f"must be {_expected(tp, rule)}, got {short(value)}")
        return value
    if tp is float:
        return _number(value, path, rule)
    raise TypeError(f"{path}: no loader for type {tp}")


def _choice(value: str, path: str, rule: Rule) -> str:
    assert rule.choices is not None
    for c in rule.choices:
        if value == c or (rule.ignore_case and value.lower() == c.lower()):
            return c
    raise ConfigError(path, f"must be one of {', '.join(rule.choices)}, got {short(value)}")


def _number(value: Any, path: str, rule: Rule) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(path, f"must be {_expected(float, rule)}, got {short(value)}")
    # an integer beyond a float's range: float() overflows, isfinite() too
    v = float(value) if abs(value) <= INT_LIMIT or isinstance(value, float) else math.inf
    if not math.isfinite(v):
        raise ConfigError(path, f"must be a finite number {rule.bounds()}".rstrip()
                                + f", got {short(value)}")
    if not rule.in_range(v):
        raise ConfigError(path, f"must be {_expected(float, rule)}, got {v:g}")
    if rule.whole and v != int(v):
        raise ConfigError(path, f"must be a whole number, got {v:g}")
    return v


def check(value: Any, path: str, rule: Rule, tp: Any = float) -> Any:
    """One value against a rule outside any dataclass (mission step parameters)."""
    return convert(tp, value, path, rule)


def check_fields(obj: DataclassInstance, prefix: str) -> None:
    """Apply the fields' types and rules to an object built in code (``__post_init__``);
    a field read by a ``parse`` function is its own type's business."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        if rule_of(f).parse is not None:
            continue
        v = getattr(obj, f.name)
        tp = hints[f.name]
        if v is None and get_origin(tp) in (Union, types.UnionType):
            continue
        if rule_of(f).inline:
            check_fields(v, prefix)
            continue
        _check_value(tp, v, join(prefix, rule_of(f).key or f.name), rule_of(f))


def _check_value(tp: Any, v: Any, path: str, rule: Rule) -> None:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        check_fields(v, path)
    elif isinstance(v, tuple) and get_origin(tp) is tuple:
        for i, x in enumerate(v):
            _check_value(get_args(tp)[0], x, f"{path}[{i}]", rule)
    elif isinstance(v, dict) and get_origin(tp) is dict:
        for k, x in v.items():
            if rule.keys is not None and k not in rule.keys:
                raise ConfigError(join(path, k), f"unknown key (known: {', '.join(rule.keys)})")
            _check_value(get_args(tp)[1], x, join(path, k), rule)
    else:
        convert(tp, v, path, rule)
