"""The server against a hostile or broken client: each test is a defect that was found."""

import asyncio
import json

import pytest
from aiohttp import WSServerHandshakeError

from pipilot.core.clock import MonotonicClock
from pipilot.server import app as app_module
from pipilot.server import auth, protocol
from pipilot.server.app import HUB, TOKEN_RESERVE
from pipilot.server.cockpit import SeatState
from tests.server.test_app import TOKEN, connect, control, recv_type, rig, take, until

__all__ = ["rig"]  # the fixture, shared with test_app


async def test_heartbeat_after_silence_does_not_resume_stale_sticks(rig):
    clock, fake, start = rig
    client, app = await start()
    ws, _ = await connect(client)
    await take(ws)
    await ws.send_str(control(0.6))
    await until(lambda: fake.published and fake.published[-1][1].throttle == 0.6)
    clock.advance(0.5)
    await until(lambda: fake.withdrawals)
    cockpit = app[HUB].cockpit
    assert cockpit.state is SeatState.SILENT
    published = len(fake.published)
    # A heartbeat carries no sticks: it must not bring back the 0.6 of half a second ago.
    await ws.send_str(json.dumps({"type": "heartbeat", "seq": 7}))
    assert (await recv_type(ws, "error"))["code"] == "stale_sticks"
    await ws.send_str(json.dumps({"type": "arm"}))
    assert (await recv_type(ws, "error"))["code"] == "stale_sticks"
    assert cockpit.state is SeatState.SILENT and len(fake.published) == published
    # The page's sticks as they are now do resume.
    await ws.send_str(control(0.0, seq=8))
    await until(lambda: cockpit.state is SeatState.ACTIVE)
    assert fake.published[-1][1].throttle == 0.0
    await ws.close()


async def test_tokenless_server_refuses_a_rebound_host_name(rig):
    # DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1.
    # Its Origin and Host agree, so the origin check alone let it fly.
    _, fake, start = rig
    client, _ = await start(token="")
    rebound = {"Host": f"evil.example:{client.server.port}",
               "Origin": f"http://evil.example:{client.server.port}"}
    with pytest.raises(WSServerHandshakeError) as exc:
        await client.ws_connect("/ws", headers=rebound)
    assert exc.value.status == 401
    r = await client.get("/api/status", headers={"Host": rebound["Host"]})
    assert r.status == 401
    # The machine's own names still work without a token.
    for host in ("127.0.0.1", "localhost", "[::1]"):
        r = await client.get("/api/status", headers={"Host": f"{host}:{client.server.port}"})
        assert r.status == 200, host
    ws, welcome = await connect(client, token=None)
    assert welcome["can_pilot"] is True
    await ws.close()
    assert fake.published == []


async def test_connections_are_bounded_and_token_holders_keep_a_slot(rig):
    _, _, start = rig
    client, app = await start(observers_open=True, max_pages=TOKEN_RESERVE + 3)
    watchers = [(await connect(client, token=None))[0] for _ in range(3)]
    with pytest.raises(WSServerHandshakeError) as exc:
        await client.ws_connect("/ws")
    assert exc.value.status == 503
    pilots = [(await connect(client))[0] for _ in range(TOKEN_RESERVE)]
    with pytest.raises(WSServerHandshakeError) as exc:
        await client.ws_connect("/ws", headers={"Authorization": f"token {TOKEN}"})
    assert exc.value.status == 503
    assert len(app[HUB].clients) == TOKEN_RESERVE + 3
    for ws in watchers + pilots:
        await ws.close()
    await until(lambda: not app[HUB].clients)
    ws, _ = await connect(client, token=None)  # slots come back when pages leave
    await ws.close()


@pytest.mark.parametrize("text, code", [
    ('{"type":"ping","t":1' + "0" * 400 + "}", "out_of_range"),
    ('{"type":"control","seq":1,"throttle":1' + "0" * 400
     + ',"yaw":0,"roll":0,"pitch":0,"accessories":[0,0,0,0]}', "out_of_range"),
    ("[" * 1500, "bad_json"),
])
def test_huge_numbers_and_deep_nesting_are_refused_as_bad_input(text, code):
    with pytest.raises(protocol.MessageError) as exc:
        protocol.parse_message(text)
    assert exc.value.code == code


async def test_huge_number_gets_an_error_reply_not_an_internal_failure(rig):
    _, fake, start = rig
    client, _ = await start()
    ws, _ = await connect(client)
    await take(ws)
    huge = control(0.5).replace('"throttle": 0.5', '"throttle": 1' + "0" * 400)
    assert "0" * 400 in huge
    await ws.send_str(huge)
    assert (await recv_type(ws, "error"))["code"] == "out_of_range"
    assert all(p[1].throttle <= 1.0 for p in fake.published)
    await ws.close()


async def test_undecodable_token_bytes_are_a_wrong_token_not_a_server_error(rig):
    _, _, start = rig
    client, _ = await start()
    # Header bytes that are not UTF-8 reach the handler as surrogates; comparing
    # them with the token raised UnicodeEncodeError (a 500) before.
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Authorization: token \xff\xfe\r\nConnection: close\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.read(), 5.0)
    writer.close()
    assert head.startswith(b"HTTP/1.1 401"), head[:40]


class StuckSocket:
    """A websocket whose peer never reads: sends and the close frame never drain."""

    closed = False

    def __init__(self):
        self.close_calls = 0
        self.aborted = False

    async def send_str(self, text):
        await asyncio.Event().wait()

    async def close(self, *, code=1000, message=b""):
        self.close_calls += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.aborted = True  # aiohttp drops the transport when its close is cancelled
            raise


async def test_page_that_never_reads_is_closed_once_and_in_bounded_time(monkeypatch):
    monkeypatch.setattr(app_module, "CLOSE_TIMEOUT_S", 0.05)
    ws = StuckSocket()
    client = app_module.Client("p1", ws, False, protocol.TokenBucket(80, 40, MonotonicClock()))
    for _ in range(app_module.OUTBOX_LIMIT + 200):
        client.reply("x" * 100)
    for _ in range(1000):  # until the close gave up waiting (bounded: 10 s)
        if ws.aborted:
            break
        await asyncio.sleep(0.01)
    assert len(client._outbox) <= app_module.OUTBOX_LIMIT
    assert ws.close_calls == 1  # not one close task per further reply
    assert ws.aborted  # the close did not wait for ever on a drain that never comes
    client.task.cancel()


async def test_server_shutdown_is_not_held_up_by_a_page_that_never_reads(rig, monkeypatch):
    monkeypatch.setattr(app_module, "CLOSE_TIMEOUT_S", 0.05)
    _, _, start = rig
    client, app = await start()
    hub = app[HUB]
    ws = StuckSocket()
    stuck = app_module.Client("stuck", ws, False, protocol.TokenBucket(80, 40, hub.clock))
    hub.clients[stuck.id] = stuck
    await asyncio.wait_for(client.close(), 5.0)
    assert ws.aborted
    stuck.task.cancel()


def test_empty_token_variable_does_not_disable_authentication(tmp_path):
    # PIPILOT_TOKEN=$UNSET in a unit file gave every local page the controls;
    # only an explicit --token '' disables authentication.
    tok, where = auth.resolve_token(None, None, {"PIPILOT_TOKEN": ""}, tmp_path / "token")
    assert tok and "generated" in where
    assert auth.resolve_token(None, "cfg", {"PIPILOT_TOKEN": ""}, tmp_path / "t2")[0] == "cfg"
    assert auth.resolve_token("", None, {"PIPILOT_TOKEN": "env"}, tmp_path / "t3")[0] == ""


@pytest.mark.parametrize("table, key", [
    # at 50 ms the page (keepalive every 50 ms) could not keep the seat: the
    # pilot source flapped between published and withdrawn
    ({"heartbeat_timeout_ms": 50}, "server.heartbeat_timeout_ms"),
    ({"heartbeat_timeout_ms": 100}, "server.heartbeat_timeout_ms"),
    # an integer too large for a float raised OverflowError, not a ConfigError
    ({"rate": 10 ** 400}, "server.rate"),
])
def test_server_table_refuses_unflyable_and_huge_values(table, key):
    import argparse

    from pipilot.core.config import from_dict
    from pipilot.errors import ConfigError
    from pipilot.server.settings import server_config

    args = argparse.Namespace(http_host=None, http_port=None, token="t")
    with pytest.raises(ConfigError) as exc:
        server_config(args, from_dict({"server": table}).server)
    assert exc.value.key == key
