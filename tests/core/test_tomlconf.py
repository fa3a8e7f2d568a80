"""The config loader: TOML tables into frozen dataclasses, errors naming the key path."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipilot.core import tomlconf
from pipilot.core.mixer import Limits
from pipilot.core.tomlconf import Rule, check, check_fields, load, setting
from pipilot.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    gain: float = setting(1.0, gt=0.0, le=10.0, unit="1/s")
    mode: str = setting("fast", choices=("fast", "slow"), ignore_case=True)


@dataclass(frozen=True)
class Loop:
    kp: float = setting(2.0, ge=0.0)
    ki: float = setting(0.5, ge=0.0)


@dataclass(frozen=True)
class Doc:
    name: str | None = None
    count: int = setting(3, ge=1, le=9)
    on: bool = True
    seed: float = setting(0.0, ge=0.0, whole=True)
    inner: Inner = field(default_factory=Inner)
    extra: Inner | None = None
    loop: Loop = setting(default_factory=Loop, inline=True)
    tags: tuple[str, ...] = ()
    levels: tuple[float, ...] = setting((), ge=0.0, le=1.0)
    table: dict[str, Inner] = field(default_factory=lambda: {"a": Inner(gain=5.0)})
    ports: dict[str, int] = setting(default_factory=dict, keys=("x", "y"), ge=1, le=16)


@dataclass(frozen=True)
class Required:
    size: float = setting(ge=0.0)


def error(data: Any, cls: type = Doc, path: str = "") -> ConfigError:
    with pytest.raises(ConfigError) as err:
        load(cls, data, path)
    return err.value


def test_an_empty_table_is_the_defaults() -> None:
    assert load(Doc, {}) == Doc()


def test_values_are_converted_and_merged_over_the_defaults() -> None:
    d = load(Doc, {"count": 5, "seed": 3, "inner": {"mode": "SLOW"}, "kp": 4,
                   "extra": {}, "tags": ["a", "b"], "levels": [0, 0.5],
                   "table": {"a": {"mode": "slow"}, "b": {"gain": 2}}, "ports": {"y": 2}})
    assert d.count == 5 and d.seed == 3.0 and isinstance(d.seed, float)
    assert d.inner == Inner(mode="slow")              # canonical spelling of the choice
    assert d.loop == Loop(kp=4.0)                     # inline: keys of the table itself
    assert d.extra == Inner()
    assert d.tags == ("a", "b") and d.levels == (0.0, 0.5)
    assert d.table == {"a": Inner(gain=5.0, mode="slow"), "b": Inner(gain=2.0)}
    assert d.ports == {"y": 2}


def test_a_base_keeps_what_the_table_does_not_name() -> None:
    base = Doc(count=7, inner=Inner(gain=9.0))
    assert load(Doc, {"on": False}, base=base) == dataclasses.replace(base, on=False)


@pytest.mark.parametrize(("data", "key", "words"), [
    ({"bogus": 1}, "bogus", "unknown key (known: count, extra, inner, ki, kp, levels, name"),
    ({"inner": {"speed": 1}}, "inner.speed", "unknown key (known: gain, mode)"),
    ({"inner": 3}, "inner", "must be a table, got 3"),
    ({"inner": {"gain": 0}}, "inner.gain", "must be a number > 0 and <= 10 (1/s), got 0"),
    ({"inner": {"gain": "1"}}, "inner.gain", "got '1'"),
    ({"inner": {"gain": True}}, "inner.gain", "must be a number"),
    ({"inner": {"gain": math.nan}}, "inner.gain", "must be a finite number"),
    ({"inner": {"gain": 10**400}}, "inner.gain", "must be a finite number"),
    ({"inner": {"mode": "medium"}}, "inner.mode", "must be one of fast, slow, got 'medium'"),
    ({"inner": {"mode": 1}}, "inner.mode", "must be one of fast, slow, got 1"),
    ({"extra": {"gain": -1}}, "extra.gain", "> 0"),
    ({"count": 0}, "count", "must be an integer >= 1 and <= 9, got 0"),
    ({"count": 2.0}, "count", "must be an integer"),
    ({"count": 10**400}, "count", "characters"),
    ({"on": 1}, "on", "must be true or false, got 1"),
    ({"name": ["x"]}, "name", "must be a string, got ['x']"),
    ({"seed": 1.5}, "seed", "must be a whole number, got 1.5"),
    ({"kp": -1}, "kp", "must be a number >= 0, got -1"),
    ({"tags": "a"}, "tags", "must be an array (a string each), got 'a'"),
    ({"tags": ["a", 2]}, "tags[1]", "must be a string, got 2"),
    ({"levels": [0.5, 2]}, "levels[1]", "<= 1"),
    ({"table": {"b": {"gain": 20}}}, "table.b.gain", "<= 10"),
    ({"table": {"b": 1}}, "table.b", "must be a table"),
    ({"table": []}, "table", "must be a table"),
    ({"ports": {"z": 1}}, "ports.z", "unknown key (known: x, y)"),
    ({"ports": {"x": 17}}, "ports.x", "<= 16"),
])
def test_errors_name_the_key_path_and_say_what_was_expected_and_found(
        data: dict[str, Any], key: str, words: str) -> None:
    err = error(data)
    assert err.key == key
    assert words in str(err), str(err)


def test_the_path_prefixes_every_key() -> None:
    assert error({"inner": {"gain": 0}}, path="drift.estimator").key == \
        "drift.estimator.inner.gain"
    assert error(5, path="sim").key == "sim"
    assert error(5).key == "config"


def test_a_required_field_that_is_missing_is_named() -> None:
    err = error({}, Required, "box")
    assert err.key == "box.size" and "missing" in str(err)
    assert load(Required, {"size": 2}).size == 2.0


def test_long_values_are_cut_in_the_message() -> None:
    err = error({"inner": {"mode": "x" * 5000}})
    assert err.key == "inner.mode"
    assert len(str(err)) < 200 and "5002 characters" in str(err)


def test_check_fields_applies_the_same_rules_to_objects_built_in_code() -> None:
    check_fields(Doc(), "doc")
    with pytest.raises(ConfigError) as err:
        check_fields(Doc(inner=Inner(gain=0.0)), "doc")
    assert err.value.key == "doc.inner.gain"
    with pytest.raises(ConfigError) as err:
        check_fields(Doc(levels=(0.5, 3.0)), "doc")
    assert err.value.key == "doc.levels[1]"
    with pytest.raises(ConfigError) as err:
        check_fields(Doc(table={"q": Inner(mode="odd")}), "doc")
    assert err.value.key == "doc.table.q.mode"
    with pytest.raises(ConfigError) as err:
        check_fields(Doc(loop=Loop(ki=-1.0)), "doc")
    assert err.value.key == "doc.ki"                   # inline: no table of its own
    with pytest.raises(ConfigError) as err:
        Limits(tilt_max=2.0)                           # a config class's __post_init__
    assert err.value.key == "limits.tilt_max"


def test_check_one_value_against_a_rule() -> None:
    assert check(3, "step 1 (hover).seconds", Rule(gt=0.0)) == 3.0
    with pytest.raises(ConfigError) as err:
        check(0, "step 1 (hover).seconds", Rule(gt=0.0, unit="s"))
    assert err.value.key == "step 1 (hover).seconds" and "> 0 (s)" in str(err.value)


def test_parse_toml_and_read_text_errors_name_where(tmp_path: Any) -> None:
    with pytest.raises(ConfigError) as err:
        tomlconf.parse_toml("[a\n", "toml")
    assert err.value.key == "toml" and "not valid TOML" in str(err.value)
    with pytest.raises(ConfigError, match="nested too deeply"):
        tomlconf.parse_toml("a = " + "[" * 5000 + "]" * 5000, "toml")
    p = tmp_path / "x.toml"
    p.write_bytes(b"a = '\xff'\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        tomlconf.read_toml(p)
    with pytest.raises(ConfigError, match="cannot read"):
        tomlconf.read_toml(tmp_path / "missing.toml")


# -- the property: any TOML value anywhere loads within the rules, or is one ConfigError

TOML_SCALARS = st.one_of(
    st.booleans(), st.integers(), st.integers(min_value=-(10**500), max_value=10**500),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=60),
)
TOML_VALUES = st.recursive(
    TOML_SCALARS,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["gain", "mode", "x", "y", "a", "b", "zz"]), inner,
                      max_size=4),
    max_leaves=12,
)
KEYS = [f.name for f in dataclasses.fields(Doc) if f.name != "loop"] + ["kp", "ki", "bogus"]


def _within(rule: Rule, v: float) -> bool:
    return math.isfinite(v) and rule.in_range(v)


def _obeys(obj: Any, cls: type) -> None:
    """Every number the loader let through is finite and within its rule."""
    for f in dataclasses.fields(cls):
        v = getattr(obj, f.name)
        rule = tomlconf.rule_of(f)
        if dataclasses.is_dataclass(v):
            _obeys(v, type(v))
        elif isinstance(v, dict):
            for x in v.values():
                if dataclasses.is_dataclass(x):
                    _obeys(x, type(x))
                else:
                    assert _within(rule, x)
        elif isinstance(v, tuple):
            for x in v:
                assert isinstance(x, str) or _within(rule, x)
        elif isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool)):
            assert _within(rule, v), (f.name, v)
        if rule.choices is not None and isinstance(v, str):
            assert v in rule.choices


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), TOML_VALUES, max_size=6))
def test_any_table_loads_within_its_rules_or_is_a_config_error(data: dict[str, Any]) -> None:
    try:
        doc = load(Doc, data, "doc")
    except ConfigError as exc:
        assert exc.key.startswith("doc."), exc.key
        assert "\n" not in str(exc) and len(str(exc)) < 2000
    else:
        _obeys(doc, Doc)
