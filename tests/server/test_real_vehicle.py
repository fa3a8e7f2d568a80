"""The same server against the real Vehicle: lock-step FlightCore on a virtual clock."""

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from pipilot import sbus
from pipilot.core.clock import VirtualClock
from pipilot.core.config import CoreConfig
from pipilot.core.failsafe import FailsafeState
from pipilot.core.vehicle import Vehicle
from pipilot.link.transport import FrameSink
from pipilot.server.adapter import VehicleAdapter
from pipilot.server.app import ServerConfig, make_app

TOKEN = "t0ken"
AUTH = {"Authorization": f"token {TOKEN}"}


@pytest.fixture
async def rig():
    clock = VirtualClock(10.0)
    frames: list[tuple[float, bytes]] = []
    vehicle = Vehicle.create(FrameSink(lambda t, f: frames.append((t, f))), CoreConfig(), clock)
    await vehicle.start()
    adapter = VehicleAdapter(vehicle)
    client = TestClient(TestServer(make_app(adapter, ServerConfig(token=TOKEN), clock=clock)))
    await client.start_server()
    yield clock, vehicle, adapter, frames, client
    await client.close()
    await vehicle.stop()


async def recv(ws, kind, where=lambda m: True):
    async def _get():
        while True:
            m = json.loads(await ws.receive_str())
            if m["type"] == kind and where(m):
                return m
    return await asyncio.wait_for(_get(), 5.0)


def run_core(clock, vehicle, frames, dt):
    clock.advance(dt)
    vehicle.core.advance(clock.now())
    return sbus.decode(frames[-1][1])


async def until(cond):
    async def _w():
        while not cond():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(_w(), 5.0)


def control(throttle, seq=1):
    return json.dumps({"type": "control", "seq": seq, "throttle": throttle, "yaw": 0,
                       "roll": 0, "pitch": 0, "accessories": [0.5, 0, 0, 0]})


async def test_page_sticks_reach_the_frames_and_silence_fails_safe(rig):
    clock, vehicle, adapter, frames, client = rig
    idle = run_core(clock, vehicle, frames, 0.05)
    ws = await client.ws_connect("/ws", headers=AUTH)
    await ws.send_str('{"type": "take"}')
    await recv(ws, "seat", lambda m: "sticks" in m)
    await ws.send_str(control(0.6))
    await until(lambda: vehicle.mixer.sources["pilot"].setpoint.throttle == 0.6)
    frame = run_core(clock, vehicle, frames, 0.5)  # past the throttle slew
    assert vehicle.core.last_output.source == "pilot"
    assert vehicle.core.failsafe.state is FailsafeState.NORMAL
    assert frame.channels[0] > idle.channels[0]  # throttle up
    assert frame.channels[4] > idle.channels[4]  # accessory 0 up
    assert not frame.failsafe
    await ws.send_str(control(0.6, seq=2))  # fresh again after the virtual 0.5 s
    await until(lambda: vehicle.mixer.sources["pilot"].stamp == clock.now())

    # The page goes silent: the server withdraws the pilot within its 300 ms.
    clock.advance(0.31)
    await until(lambda: vehicle.mixer.sources["pilot"].stamp is None)
    run_core(clock, vehicle, frames, 0.01)
    assert vehicle.core.failsafe.state is FailsafeState.DESCENT
    stats = adapter.link_stats()
    assert stats["failsafe"] is True and stats["failsafe_state"] == "descent"
    r = await client.get("/api/status", headers=AUTH)
    body = await r.json()
    assert body["sbus"]["failsafe"] is True
    assert body["armed"] is False and body["telemetry_connected"] is False
    await ws.close()


async def test_closing_the_page_fails_safe_at_once(rig):
    clock, vehicle, _, frames, client = rig
    ws = await client.ws_connect("/ws", headers=AUTH)
    await ws.send_str('{"type": "take"}')
    await recv(ws, "seat", lambda m: "sticks" in m)
    await ws.send_str(control(0.3))
    await until(lambda: vehicle.mixer.sources["pilot"].setpoint.throttle == 0.3)
    run_core(clock, vehicle, frames, 0.05)
    assert vehicle.core.failsafe.state is FailsafeState.NORMAL
    await ws.close()
    await until(lambda: vehicle.mixer.sources["pilot"].stamp is None)
    run_core(clock, vehicle, frames, 0.007)
    assert vehicle.core.failsafe.state is FailsafeState.DESCENT


async def test_arm_request_becomes_the_arming_gesture(rig):
    clock, vehicle, _, frames, client = rig
    neutral = run_core(clock, vehicle, frames, 0.05)
    ws = await client.ws_connect("/ws", headers=AUTH)
    await ws.send_str('{"type": "take"}')
    await recv(ws, "seat", lambda m: "sticks" in m)
    await ws.send_str('{"type": "arm"}')
    await recv(ws, "seat", lambda m: m["arm"] == "arm")
    await until(lambda: vehicle.mixer.sources["pilot"].setpoint.arm.value == "arm")
    frame = run_core(clock, vehicle, frames, 0.1)
    assert frame.channels[1] < neutral.channels[1]  # yaw left: the rig's arming gesture
    await ws.close()


async def test_taking_control_from_a_mission_keeps_the_craft_in_the_air(rig):
    from pipilot.core.setpoints import Setpoint

    clock, vehicle, _, frames, client = rig
    for _ in range(10):  # a mission hovering at half throttle
        vehicle.mixer.publish("mission", Setpoint(throttle=0.5))
        run_core(clock, vehicle, frames, 0.05)
    assert vehicle.core.last_output.setpoint.throttle == 0.5
    ws = await client.ws_connect("/ws", headers=AUTH)
    await ws.send_str('{"type": "take"}')
    seat = await recv(ws, "seat", lambda m: "sticks" in m)
    assert seat["sticks"]["throttle"] == 0.5  # the page starts where the craft is
    run_core(clock, vehicle, frames, 0.2)  # the mission stops; the pilot's seat holds
    out = vehicle.core.last_output
    assert out.source == "pilot" and out.setpoint.throttle == 0.5
    await ws.close()


def junk_messages(rng):
    """A mix of valid, out-of-range, mistyped and malformed messages."""
    values = [0.0, 0.5, 1.0, -1.0, 1.0001, -1.5, 1e308, -1e308, "0.5", None, True, [], {}]
    kinds = ["control", "control", "control", "arm", "disarm", "take", "release", "ping",
             "heartbeat", "launch", 7]
    for _ in range(400):
        r = rng.random()
        if r < 0.1:
            yield rng.choice(["", "{", "null", "[]", '"x"', "NaN", "1e999", "\x00\xff",
                              '{"type": "control", "throttle": Infinity}'])
            continue
        msg = {"type": rng.choice(kinds)}
        for key in ("seq", "throttle", "yaw", "roll", "pitch", "t", "force"):
            if rng.random() < 0.8:
                msg[key] = rng.choice([*values, rng.uniform(-1, 1), rng.randint(0, 9)])
        if rng.random() < 0.8:
            msg["accessories"] = [rng.choice([*values, rng.uniform(-1, 1)])
                                  for _ in range(rng.choice([4, 4, 4, 3, 5]))]
        yield json.dumps(msg, allow_nan=True)


async def test_junk_never_crashes_the_server_nor_leaves_range(rig):
    import random

    clock, vehicle, _, frames, client = rig
    cal = vehicle.mixer.calibration
    ws = await client.ws_connect("/ws", headers=AUTH)
    await ws.send_str('{"type": "take"}')
    await recv(ws, "seat", lambda m: "sticks" in m)
    rng = random.Random(1234)
    for i, text in enumerate(junk_messages(rng)):
        await ws.send_str(text)
        if i % 20 == 0:
            await asyncio.sleep(0.05)  # let the server work through the batch
            clock.advance(0.05)  # the rate limit refills; the core sends frames
            vehicle.core.advance(clock.now())
    await asyncio.sleep(0.2)
    clock.advance(1.0)  # refill the rate limit
    await ws.send_str('{"type": "ping", "t": 99}')
    assert (await recv(ws, "pong"))["t"] == 99  # still serving
    run_core(clock, vehicle, frames, 0.1)
    assert len(frames) > 50
    for name, ch in cal.channel_map:
        c = cal.calibration_for(name)
        for _, f in frames:
            v = sbus.decode(f).channels[ch - 1]
            assert c.min <= v <= c.max, (name, v)
    await ws.close()
