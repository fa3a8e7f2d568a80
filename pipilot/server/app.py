"""The aiohttp application: the page, one websocket for control and live view, /api/status.

Background work (the live-view broadcaster and the heartbeat watchdog) belongs
to the app through `cleanup_ctx`, so it starts and stops with the server.
Every page message is rate-limited and parsed strictly (`protocol`); a bad one
gets an error reply, never a crash and never a setpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web
from aiohttp.typedefs import Handler

from pipilot.core.clock import Clock, MonotonicClock
from pipilot.faultlog import FailureLog
from pipilot.server import auth, protocol, view
from pipilot.server.assets import web_root
from pipilot.server.cockpit import Cockpit
from pipilot.server.port import VehiclePort

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    token: str = ""  # empty: no authentication (loopback only)
    heartbeat_timeout: float = 0.3
    update_hz: float = 20.0
    rate: float = 80.0  # messages a second per page, sustained
    burst: float = 40.0
    observers_open: bool = False  # pages without the token may watch (never fly)
    extra_origins: frozenset[str] = field(default_factory=frozenset)
    max_pages: int = 64  # open websockets; pages without the token get fewer


CONFIG = web.AppKey("pipilot_server_config", ServerConfig)
VEHICLE = web.AppKey("pipilot_vehicle", VehiclePort)

OUTBOX_LIMIT = 256  # replies queued for one page; a rate-limited burst stays far below
CLOSE_TIMEOUT_S = 1.0
"""A close waits for the close frame to drain: a page that never reads never drains it."""
TOKEN_RESERVE = 8
"""Websocket slots only pages with the token may use, so watchers cannot lock the pilot out."""


class Client:
    """One connected page: its socket, its rate limit and a non-flooding sender.

    Replies queue in a bounded outbox; live-view updates use a one-slot mailbox
    (the newest replaces an unsent one), so a slow page drops frames, never
    grows a queue.
    """

    def __init__(self, cid: str, ws: web.WebSocketResponse, can_pilot: bool,
                 bucket: protocol.TokenBucket) -> None:
        self.id = cid
        self.ws = ws
        self.can_pilot = can_pilot
        self.bucket = bucket
        self._outbox: deque[str] = deque()
        self._state: str | None = None
        self._wake = asyncio.Event()
        self.dropped = 0
        self.last_limit_reply = -1e9
        self.task = asyncio.get_running_loop().create_task(self._send_loop())
        self.closer: asyncio.Task[None] | None = None

    def reply(self, text: str) -> None:
        if self.closer is not None:
            return
        if len(self._outbox) >= OUTBOX_LIMIT:
            log.warning("page %s is not reading its replies; closing it", self.id)
            self.closer = asyncio.get_running_loop().create_task(self.close(1008))
            return
        self._outbox.append(text)
        self._wake.set()

    def offer_state(self, text: str) -> None:
        self._state = text
        self._wake.set()

    async def close(self, code: int, message: bytes = b"") -> None:
        """Close within CLOSE_TIMEOUT_S; cancelling aiohttp's close drops the connection."""
        with contextlib.suppress(asyncio.TimeoutError, ConnectionError, RuntimeError):
            await asyncio.wait_for(self.ws.close(code=code, message=message), CLOSE_TIMEOUT_S)

    async def _send_loop(self) -> None:
        try:
            while not self.ws.closed:
                await self._wake.wait()
                self._wake.clear()
                while self._outbox:
                    await self.ws.send_str(self._outbox.popleft())
                if self._state is not None:
                    text, self._state = self._state, None
                    await self.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            pass  # the page went away; the receive side cleans up


class Hub:
    """All pages, the cockpit, and the background loops that serve them."""

    def __init__(self, vehicle: VehiclePort, config: ServerConfig,
                 clock: Clock | None = None) -> None:
        self.vehicle = vehicle
        self.config = config
        self.clock = clock or MonotonicClock()
        self.clients: dict[str, Client] = {}
        self.connecting = 0  # websocket handshakes under way (counted against max_pages)
        self.cockpit = Cockpit(vehicle, config.heartbeat_timeout, on_change=self._seat_changed,
                               on_hold=self._hold_changed)
        self._ids = itertools.count(1)
        self.view_failures = FailureLog(log, "building the live view failed", clock=self.clock)
        self.watchdog_failures = FailureLog(
            log, "pilot watchdog failed; withdrawing the pilot", clock=self.clock)
        self.message_failures = FailureLog(log, "a message from a page failed", clock=self.clock)

    def new_id(self) -> str:
        return f"p{next(self._ids)}"

    def _seat_changed(self) -> None:
        for c in self.clients.values():
            c.reply(self.seat_message(c.id))

    def _hold_changed(self, cid: str) -> None:
        """Tell the pilot's page the hold's mode and the sticks it must now show."""
        client = self.clients.get(cid)
        if client is not None:
            ck = self.cockpit
            client.reply(protocol.encode("hold", on=ck.hold_on, note=ck.hold_note,
                                         sticks=protocol.sticks_json(ck.sticks)))

    def seat_message(self, cid: str, **extra: object) -> str:
        ck = self.cockpit
        you = ck.holder == cid
        return protocol.encode(
            "seat", you=you, occupied=ck.holder is not None, state=ck.state.value,
            arm=ck.arm.value, arm_result=ck.arm_result, hold=you and ck.hold_on, **extra)

    def state_text(self) -> str:
        return protocol.encode("state", **view.build_state(self.vehicle, self.cockpit,
                                                           len(self.clients)))

    async def broadcaster(self) -> None:
        period = 1.0 / self.config.update_hz
        try:
            while True:
                await asyncio.sleep(period)
                if not self.clients:
                    continue
                try:
                    text = self.state_text()  # serialised once for every page
                except Exception as exc:
                    self.view_failures.failed(exc)
                    continue
                for c in list(self.clients.values()):
                    c.offer_state(text)
        finally:
            self.view_failures.flush()

    async def watchdog(self) -> None:
        period = min(0.02, self.config.heartbeat_timeout / 5)
        try:
            while True:
                await asyncio.sleep(period)
                try:
                    self.cockpit.check(view.armed_state(self.vehicle))
                except Exception as exc:
                    self.watchdog_failures.failed(exc)
                    self.vehicle.withdraw_pilot()
        finally:
            self.watchdog_failures.flush()

    def handle(self, client: Client, text: str) -> None:
        """One message from a page: parse, dispatch, and reply with an error when refused."""
        try:
            msg = protocol.parse_message(text)
            self._dispatch(client, msg)
        except protocol.MessageError as exc:
            client.reply(protocol.encode("error", code=exc.code, message=str(exc)))
        except Exception as exc:
            # A bug or a vehicle-side refusal must not take the server down: the
            # page hears about it, and the pilot's heartbeat rules still apply.
            self.message_failures.failed(exc)
            client.reply(protocol.encode("error", code="internal", message=str(exc)))

    def _dispatch(self, client: Client, msg: protocol.Message) -> None:
        ck = self.cockpit
        match msg:
            case protocol.Control(seq=seq, sticks=sticks, t=t, hold=hold):
                ck.control(client.id, sticks, hold)
                if t is not None:
                    client.reply(protocol.encode("ack", seq=seq, t=t))
            case protocol.Heartbeat():
                ck.heartbeat(client.id)
            case protocol.Ping(t=t):
                client.reply(protocol.encode("pong", t=t))
            case protocol.Arm(arm=arm):
                ck.request_arm(client.id, arm)
            case protocol.Take(force=force):
                if not client.can_pilot:
                    raise protocol.MessageError("read_only", "observers without the token "
                                                "cannot fly")
                sticks = ck.take(client.id, force)
                client.reply(self.seat_message(client.id, sticks=protocol.sticks_json(sticks)))
            case protocol.Release():
                ck.release(client.id)
            case protocol.Hold(on=on):
                ck.set_hold(client.id, on, view.armed_state(self.vehicle))


HUB = web.AppKey("pipilot_hub", Hub)


@contextlib.asynccontextmanager
async def _background(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    tasks = [asyncio.create_task(hub.broadcaster(), name="web-broadcaster"),
             asyncio.create_task(hub.watchdog(), name="web-watchdog")]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await _close_pages(app)


async def _close_pages(app: web.Application) -> None:
    """Free the seat and close every page with 1001 (going away).

    Runs on shutdown, before aiohttp waits for the request handlers: a
    websocket's handler ends only when its page is closed."""
    hub = app[HUB]
    for c in list(hub.clients.values()):
        hub.cockpit.release(c.id, "server stopping")
    # all at once and bounded: a page that does not read must not hold up the shutdown
    await asyncio.gather(*(c.close(1001, b"server stopping")
                           for c in list(hub.clients.values())))


def allowed(request: web.Request) -> tuple[bool, bool]:
    """(may connect, may fly) for this request."""
    cfg = request.app[CONFIG]
    if not cfg.token and not auth.host_is_loopback(request):
        return False, False  # a rebound name reaching the token-less loopback server
    ok = auth.token_matches(auth.given_token(request), cfg.token)
    return ok or cfg.observers_open, ok


async def index(request: web.Request) -> web.StreamResponse:
    cfg = request.app[CONFIG]
    if "token" in request.query:
        if not auth.token_matches(request.query["token"], cfg.token):
            return web.Response(status=403, text="invalid token\n")
        # Log in like Jupyter: keep the token in a cookie, drop it from the URL.
        resp = web.HTTPFound("/")
        resp.set_cookie(auth.cookie_name(request), request.query["token"], httponly=True,
                        samesite="Strict", path="/")
        raise resp
    return web.FileResponse(web_root() / "index.html", headers={"Cache-Control": "no-store"})


async def api_status(request: web.Request) -> web.Response:
    if not allowed(request)[0]:
        return web.json_response({"error": "token required"}, status=401)
    hub = request.app[HUB]
    return web.json_response(view.status(hub.vehicle, hub.cockpit))


async def websocket(request: web.Request) -> web.StreamResponse:
    cfg = request.app[CONFIG]
    if not auth.same_origin(request, cfg.extra_origins):
        log.warning("refused cross-origin websocket from %s", request.headers.get("Origin"))
        return web.Response(status=403, text="cross-origin websocket refused\n")
    may_connect, may_fly = allowed(request)
    if not may_connect:
        return web.Response(status=401, text="token required\n")
    hub = request.app[HUB]
    limit = cfg.max_pages if may_fly else cfg.max_pages - TOKEN_RESERVE
    if len(hub.clients) + hub.connecting >= limit:
        log.warning("refused a page: %d pages connected", len(hub.clients))
        return web.Response(status=503, text="too many pages connected\n")
    ws = web.WebSocketResponse(heartbeat=None, max_msg_size=64 * 1024)
    hub.connecting += 1
    try:
        await ws.prepare(request)
    finally:
        hub.connecting -= 1
    client = Client(hub.new_id(), ws, may_fly,
                    protocol.TokenBucket(cfg.rate, cfg.burst, hub.clock))
    hub.clients[client.id] = client
    client.reply(protocol.encode(
        "welcome", client=client.id, can_pilot=may_fly,
        heartbeat_ms=round(cfg.heartbeat_timeout * 1000), update_hz=cfg.update_hz,
        sim=hub.vehicle.sim_truth() is not None,
        hold_available=hub.vehicle.hold_status() is not None))
    client.reply(hub.seat_message(client.id))
    log.info("page %s connected (%s)", client.id, "pilot-capable" if may_fly else "observer")
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                if client.bucket.allow():
                    hub.handle(client, msg.data)
                else:
                    _rate_limited(hub, client)
            elif msg.type is WSMsgType.BINARY:
                client.reply(protocol.encode("error", code="bad_message",
                                             message="binary messages are not accepted"))
            else:
                break
    finally:
        del hub.clients[client.id]
        hub.cockpit.release(client.id, "page closed")
        client.task.cancel()
        log.info("page %s disconnected", client.id)
    return ws


def _rate_limited(hub: Hub, client: Client) -> None:
    client.dropped += 1
    now = hub.clock.now()
    if now - client.last_limit_reply >= 1.0:  # one complaint a second, not one per message
        client.last_limit_reply = now
        client.reply(protocol.encode("error", code="rate_limited",
                                     message=f"over {hub.config.rate:g} messages/s; dropped"))


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    resp = await handler(request)
    if not isinstance(resp, web.WebSocketResponse):
        # No framing (a hidden hold-to-arm button is a real risk); scripts only from here.
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
            "img-src 'self' data:",
        )
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    return resp


def make_app(vehicle: VehiclePort, config: ServerConfig, clock: Clock | None = None
             ) -> web.Application:
    """The whole web server for `vehicle`; refuses an unsafe configuration."""
    auth.check_bind(config.host, config.token)
    app = web.Application(middlewares=[_headers])
    app[CONFIG] = config
    app[VEHICLE] = vehicle
    app[HUB] = Hub(vehicle, config, clock)
    app.cleanup_ctx.append(_background)
    app.on_shutdown.append(_close_pages)
    app.router.add_get("/", index)
    app.router.add_get("/ws", websocket)
    app.router.add_get("/api/status", api_status)
    app.router.add_static("/static/", web_root(), follow_symlinks=False)
    return app
