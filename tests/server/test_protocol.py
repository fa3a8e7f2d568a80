import contextlib
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipilot.core.clock import VirtualClock
from pipilot.core.setpoints import ArmRequest, Setpoint
from pipilot.errors import PipilotError
from pipilot.server import protocol as p


def control(**over):
    msg = {"type": "control", "seq": 1, "throttle": 0.5, "yaw": 0.0, "roll": -0.25,
           "pitch": 1.0, "accessories": [0, 0, -1, 1]}
    msg.update(over)
    return json.dumps(msg)


def test_control_parses():
    m = p.parse_message(control(t=12.5))
    assert isinstance(m, p.Control)
    assert m.sticks == Setpoint(throttle=0.5, roll=-0.25, pitch=1.0, yaw=0.0,
                                accessories=(0.0, 0.0, -1.0, 1.0))
    assert m.sticks.arm is ArmRequest.NONE
    assert m.seq == 1 and m.t == 12.5


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (control(throttle=1.01), "out_of_range"),
        (control(throttle=-0.01), "out_of_range"),
        (control(roll=-1.5), "out_of_range"),
        (control(yaw=True), "bad_value"),
        (control(pitch="0.1"), "bad_value"),
        (control(accessories=[0, 0, 0]), "bad_value"),
        (control(accessories=[0, 0, 0, 2]), "out_of_range"),
        (control(seq=-1), "bad_value"),
        (control(seq=1.5), "bad_value"),
        (control(extra=1), "bad_message"),
        ('{"type": "control", "seq": 1}', "bad_message"),
        ('{"type": "control", "seq": 1, "throttle": NaN, "yaw": 0, "roll": 0, "pitch": 0,'
         ' "accessories": [0,0,0,0]}', "bad_json"),
        (control(throttle=0.5).replace("0.5", "1e400"), "out_of_range"),
        (control(throttle=float("inf")), "bad_json"),
        ("not json", "bad_json"),
        ("[1, 2]", "bad_message"),
        ('{"type": "launch"}', "unknown_type"),
        ('{"type": 3}', "unknown_type"),
        ('{"type": "take", "force": "yes"}', "bad_value"),
        ('{"type": "ping"}', "bad_message"),
        ('{"type": "ping", "t": ' + "1" * 3000 + "}", "too_large"),
    ],
)
def test_bad_messages_are_refused_with_a_code(text, code):
    with pytest.raises(p.MessageError) as exc:
        p.parse_message(text)
    assert exc.value.code == code
    assert isinstance(exc.value, PipilotError), "a page's bad message is a user error"


def test_other_types():
    assert p.parse_message('{"type": "arm"}') == p.Arm(True)
    assert p.parse_message('{"type": "disarm"}') == p.Arm(False)
    assert p.parse_message('{"type": "take"}') == p.Take(False)
    assert p.parse_message('{"type": "take", "force": true}') == p.Take(True)
    assert p.parse_message('{"type": "release"}') == p.Release()
    assert p.parse_message('{"type": "heartbeat", "seq": 3}') == p.Heartbeat(3)
    assert p.parse_message('{"type": "ping", "t": 5}') == p.Ping(5.0)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=5),
    max_leaves=12,
)


@settings(deadline=None)
@given(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["control", "ping", "take", "heartbeat", "x"])},
        optional={k: json_values for k in
                  ("seq", "throttle", "yaw", "roll", "pitch", "accessories", "t", "force")},
    )
)
def test_anything_either_parses_in_range_or_is_refused(obj):
    try:
        text = json.dumps(obj)
    except ValueError:
        return
    try:
        m = p.parse_message(text)
    except p.MessageError as exc:
        assert exc.code
        return
    if isinstance(m, p.Control):
        s = m.sticks
        assert 0.0 <= s.throttle <= 1.0
        for v in (s.yaw, s.roll, s.pitch, *s.accessories):
            assert -1.0 <= v <= 1.0 and math.isfinite(v)


@settings(deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_never_escape(data):
    with contextlib.suppress(p.MessageError):
        p.parse_message(data)


def test_token_bucket_limits_rate_and_refills():
    clock = VirtualClock()
    b = p.TokenBucket(rate=10, burst=5, clock=clock)
    assert [b.allow() for _ in range(6)] == [True] * 5 + [False]
    clock.advance(0.1)
    assert b.allow() and not b.allow()
    clock.advance(10)
    assert sum(b.allow() for _ in range(20)) == 5


def test_encode_refuses_nan():
    with pytest.raises(ValueError):
        p.encode("state", x=float("nan"))
    assert json.loads(p.encode("pong", t=1.5)) == {"type": "pong", "t": 1.5}


def test_the_sticks_go_back_to_the_page_in_its_own_keys():
    m = p.parse_message(control())
    assert isinstance(m, p.Control)
    sent = json.loads(control())
    assert p.sticks_json(m.sticks) == {k: sent[k] for k in
                                       ("throttle", "yaw", "roll", "pitch", "accessories")}
