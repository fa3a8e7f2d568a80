"""The ground side of the telemetry connection handshake (sans-IO).

The firmware's Telemetry module (telemetry.c) runs the flight side: it answers
GCSTelemetryStats.Status = HandshakeReq with FlightTelemetryStats.Status =
HandshakeAck, goes Connected when the ground says Connected, and drops back to
Disconnected when the ground says otherwise or nothing has arrived from the
ground for 8 s. This machine is the ground half: feed it the flight's status,
every received packet and the time; it returns the GCS status to send (or
None) and keeps the link alive with periodic GCSTelemetryStats.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: GCSTelemetryStats.Status / FlightTelemetryStats.Status option names.
DISCONNECTED = "Disconnected"
HANDSHAKE_REQ = "HandshakeReq"
HANDSHAKE_ACK = "HandshakeAck"
CONNECTED = "Connected"


class LinkState(enum.Enum):
    STOPPED = "stopped"              # not started, or stopped
    HANDSHAKE_REQ = "handshake_req"  # asking the flight side to connect
    HANDSHAKE_ACK = "handshake_ack"  # flight acked; we said Connected, await its Connected
    CONNECTED = "connected"          # both sides agree


@dataclass(frozen=True)
class HandshakeTiming:
    """Periods and timeouts in seconds."""

    #: How often HandshakeReq / Connected is repeated while the handshake is open.
    retry_period: float = 1.0
    #: How often GCSTelemetryStats is sent once connected (the firmware drops the
    #: link after 8 s without any object from the ground).
    keepalive_period: float = 2.0
    #: Nothing received from the flight side for this long means the link is lost.
    link_timeout: float = 6.0
    #: Give up waiting for the flight's Connected and start over after this long.
    handshake_timeout: float = 5.0


class Handshake:
    """Ground-side handshake: methods return the GCS status to send now, or None."""

    def __init__(self, timing: HandshakeTiming | None = None) -> None:
        self.timing = timing or HandshakeTiming()
        self.state = LinkState.STOPPED
        self.flight_status: str | None = None
        self.connects = 0
        self.link_losses = 0
        self._since = 0.0
        self._last_rx: float | None = None
        self._last_tx = 0.0
        self._last_probe = -float("inf")

    def _set_state(self, new: LinkState, now: float, reason: str) -> None:
        if new is self.state:
            return
        log.info("telemetry link %s -> %s (%s)", self.state.value, new.value, reason)
        if new is LinkState.CONNECTED:
            self.connects += 1
        self.state = new
        self._since = now

    def _emit(self, status: str, now: float) -> str:
        self._last_tx = now
        return status

    @property
    def connected(self) -> bool:
        return self.state is LinkState.CONNECTED

    @property
    def last_rx(self) -> float | None:
        """When the latest packet from the flight side arrived (None: none since start)."""
        return self._last_rx

    def start(self, now: float) -> str:
        self.flight_status = None
        self._last_rx = None
        self._set_state(LinkState.HANDSHAKE_REQ, now, "start")
        return self._emit(HANDSHAKE_REQ, now)

    def stop(self, now: float) -> str:
        self._set_state(LinkState.STOPPED, now, "stop")
        return self._emit(DISCONNECTED, now)

    def link_down(self, now: float, reason: str) -> None:
        """The byte stream itself went away (EOF, unplugged adapter)."""
        if self.state is LinkState.STOPPED:
            return
        if self.state is LinkState.CONNECTED:
            self.link_losses += 1
        self._set_state(LinkState.HANDSHAKE_REQ, now, reason)

    def on_rx(self, now: float) -> None:
        """Any valid packet from the flight side arrived."""
        self._last_rx = now

    def on_flight_status(self, status: str, now: float) -> str | None:
        """FlightTelemetryStats.Status arrived."""
        self._last_rx = now
        self.flight_status = status
        state = self.state
        if state is LinkState.STOPPED:
            return None
        if status == HANDSHAKE_ACK:
            # Either our request was heard or our Connected was lost: say Connected.
            if state is not LinkState.HANDSHAKE_ACK:
                self._set_state(LinkState.HANDSHAKE_ACK, now, "flight acknowledged")
            return self._emit(CONNECTED, now)
        if status == CONNECTED:
            if state is LinkState.HANDSHAKE_ACK:
                self._set_state(LinkState.CONNECTED, now, "flight connected")
            # In HANDSHAKE_REQ a Connected is stale (from before our request): the
            # flight side drops it once our HandshakeReq arrives.
            return None
        # Disconnected (or anything unknown): the flight side is not with us.
        if state is not LinkState.HANDSHAKE_REQ:
            self._set_state(LinkState.HANDSHAKE_REQ, now, f"flight reports {status}")
            return self._emit(HANDSHAKE_REQ, now)
        return None

    def _last_heard(self) -> float:
        return self._last_rx if self._last_rx is not None else self._since

    def tick(self, now: float) -> str | None:
        """Timers: retries, keepalive, link and handshake timeouts."""
        t = self.timing
        state = self.state
        if state is LinkState.STOPPED:
            return None
        if state is LinkState.CONNECTED:
            last = self._last_heard()
            if now >= last + t.link_timeout:
                self.link_losses += 1
                self._set_state(LinkState.HANDSHAKE_REQ, now,
                                f"nothing received for {now - last:.1f} s")
                return self._emit(HANDSHAKE_REQ, now)
            if now >= self._last_tx + t.keepalive_period:
                return self._emit(CONNECTED, now)
            return None
        if state is LinkState.HANDSHAKE_ACK and now >= self._since + t.handshake_timeout:
            self._set_state(LinkState.HANDSHAKE_REQ, now, "flight never confirmed Connected")
            return self._emit(HANDSHAKE_REQ, now)
        if now >= self._last_tx + t.retry_period:
            return self._emit(HANDSHAKE_REQ if state is LinkState.HANDSHAKE_REQ else CONNECTED,
                              now)
        return None

    def probe_due(self, now: float) -> bool:
        """Connected but quiet for half the link timeout: ask for FlightTelemetryStats.

        The flight side only sends FlightTelemetryStats every 5 s on its own, so
        one lost packet on an otherwise idle link would look like a dead link.
        """
        if self.state is not LinkState.CONNECTED or now < self._probe_at():
            return False
        self._last_probe = now
        return True

    def _probe_at(self) -> float:
        t = self.timing
        return max(self._last_heard() + t.link_timeout / 2, self._last_probe + t.retry_period)

    def next_deadline(self) -> float | None:
        """The earliest time at which `tick` or `probe_due` will have work (None: never)."""
        t = self.timing
        if self.state is LinkState.STOPPED:
            return None
        if self.state is LinkState.CONNECTED:
            return min(self._last_heard() + t.link_timeout, self._last_tx + t.keepalive_period,
                       self._probe_at())
        due = self._last_tx + t.retry_period
        if self.state is LinkState.HANDSHAKE_ACK:
            due = min(due, self._since + t.handshake_timeout)
        return due

    def waiting_for(self) -> str:
        """What the handshake is waiting for, in words (for people watching the CLI)."""
        fs = self.flight_status or "nothing yet"
        if self.state is LinkState.HANDSHAKE_REQ:
            return ("waiting for the flight controller to answer the handshake "
                    f"(FlightTelemetryStats.Status: {fs})")
        if self.state is LinkState.HANDSHAKE_ACK:
            return f"waiting for the flight controller to confirm Connected (it says {fs})"
        if self.state is LinkState.STOPPED:
            return "not started"
        return "connected"
