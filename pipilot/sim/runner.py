"""Real-time mode: the model on the wall clock, attached to pty pairs.

pipilot opens ``sbus_port`` and ``telemetry_port`` (``/dev/pts/N``) exactly
as it opens the UARTs of the rig, so the code under test cannot tell the
difference. S.Bus bytes are timestamped by pipilot.link's wire reader at
100000 baud 8E2 (the end of each byte's stop bits); telemetry leaves and
arrives at the configured baud (10 bits a byte).

One thread runs the model. It keeps the model ``lag_s`` behind the wall clock
so that every byte is fed at its wire time, in order, before the model passes
that time. ``ground_truth()`` and ``with sim.lock:`` let other threads (the
web server's sim panel, the CLI) read the model safely; ``truth_snapshot()``
is the truth as of the model's latest step, for readers that must never wait
(a mission's summary, on the flight loop). ``telemetry_latency_s`` holds
every flight -> ground byte back that long after the line has carried it.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import threading
import time
import tty
from collections.abc import Callable

from pipilot.core.truth import TruthSnapshot
from pipilot.errors import LinkError
from pipilot.link.virtual import VirtualLink
from pipilot.sim.faults import LineSwitch, SimFaults
from pipilot.sim.model import SimulatedCC3D
from pipilot.sim.telemetry import FlightTelemetry, attach

log = logging.getLogger(__name__)

LOOP_S = 0.002
DEFAULT_LAG_S = 0.010


class RealtimeSim:
    """Runs a SimulatedCC3D against two pty pairs; ``start()`` / ``stop()``."""

    def __init__(self, model: SimulatedCC3D, *, telemetry_baud: int = 9600,
                 clock: Callable[[], float] = time.monotonic, lag_s: float = DEFAULT_LAG_S,
                 telemetry_latency_s: float = 0.0) -> None:
        if not (telemetry_latency_s >= 0.0 and math.isfinite(telemetry_latency_s)):
            raise ValueError("telemetry latency must be finite and >= 0, "
                             f"not {telemetry_latency_s!r}")
        self.model = model
        self.clock = clock
        self.lag_s = lag_s
        self.telemetry: FlightTelemetry = attach(model, baud=telemetry_baud)
        self.lock = threading.RLock()
        self._truth = model.truth_snapshot()
        self._sbus_in: collections.deque[tuple[bytes, list[float]]] = collections.deque()
        self._tel_in: collections.deque[tuple[float, bytes]] = collections.deque()
        #: Flight -> ground delay on top of the line's own pacing (a slow adapter).
        self.telemetry_latency_s = telemetry_latency_s
        self._tel_out: collections.deque[tuple[float, bytes]] = collections.deque()
        self._tel_rx_free = 0.0
        self._t0 = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._link: VirtualLink | None = None
        self._tel_master = self._tel_slave = -1
        self.telemetry_port = ""
        self.tx_dropped = 0
        #: The telemetry line's two directions (cut with `faults.cut_telemetry`).
        self.line = LineSwitch()
        #: Faults to inject into the simulated FC (pipilot.sim.faults), under the lock.
        self.faults = SimFaults(model, self.line, lock=self.lock)
        self.error: BaseException | None = None

    # -- life cycle ---------------------------------------------------------------
    @property
    def sbus_port(self) -> str:
        if self._link is None:
            raise LinkError("sim", "not started")
        return self._link.path

    def start(self) -> RealtimeSim:
        self._t0 = self.clock() - self.model.now
        self._tel_master, self._tel_slave = os.openpty()
        tty.setraw(self._tel_slave)
        os.set_blocking(self._tel_master, False)
        self.telemetry_port = os.ttyname(self._tel_slave)
        self._link = VirtualLink(callback=self._on_sbus, clock=self.clock)
        self._thread = threading.Thread(target=self._run, name="sim-cc3d", daemon=True)
        self._thread.start()
        log.info("simulated CC3D: S.Bus on %s, telemetry on %s", self.sbus_port,
                 self.telemetry_port)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        if self._link is not None:
            self._link.close()
            self._link = None
        for fd in (self._tel_master, self._tel_slave):
            if fd >= 0:
                os.close(fd)
        self._tel_master = self._tel_slave = -1

    def __enter__(self) -> RealtimeSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def telemetry_cut(self) -> bool:
        """A cut telemetry wire: while True, bytes in both directions are lost (the
        S.Bus line is not affected). Setting it cuts or mends both directions."""
        return self.faults.telemetry_cut

    @telemetry_cut.setter
    def telemetry_cut(self, cut: bool) -> None:
        if cut:
            self.faults.cut_telemetry()
        else:
            self.faults.restore_telemetry()

    def model_time(self) -> float:
        return self.clock() - self._t0 - self.lag_s

    def ground_truth(self) -> dict[str, object]:
        """The model's ground truth (see SimulatedCC3D.ground_truth), read under the lock."""
        with self.lock:
            out = self.model.ground_truth()
            out["flight_telemetry"] = self.telemetry.status
            return out

    def truth_snapshot(self) -> TruthSnapshot:
        """The model's truth as of its latest step (replaced whole by the model
        thread, so reading it never waits for the lock)."""
        return self._truth

    # -- threads ------------------------------------------------------------------
    def _on_sbus(self, data: bytes, end_times: list[float]) -> None:
        # wire-reader thread: hand over, the model thread feeds in time order
        self._sbus_in.append((data, end_times))

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._step()
                time.sleep(LOOP_S)
        except BaseException as exc:  # the thread must say why it died
            self.error = exc
            log.exception("simulated CC3D stopped")

    def _step(self) -> None:
        now = self.model_time()
        self._read_telemetry()
        with self.lock:
            m = self.model
            while self._sbus_in:
                data, times = self._sbus_in[0]
                k = 0
                while k < len(data) and times[k] - self._t0 <= now:
                    m.feed_sbus(data[k:k + 1], (times[k] - self._t0,))
                    k += 1
                if k < len(data):
                    self._sbus_in[0] = (data[k:], times[k:])
                    break
                self._sbus_in.popleft()
            while self._tel_in and self._tel_in[0][0] <= now:
                t, chunk = self._tel_in.popleft()
                m.advance_to(t)
                self.telemetry.feed(chunk, t)
            m.advance_to(now)
            self._truth = m.truth_snapshot()
            out = self.telemetry.pop_tx(now)
        if not self.line.down:
            out = b""
            self._tel_out.clear()
        elif self.telemetry_latency_s > 0.0:
            if out:
                self._tel_out.append((now + self.telemetry_latency_s, out))
            due = bytearray()
            while self._tel_out and self._tel_out[0][0] <= now:
                due += self._tel_out.popleft()[1]
            out = bytes(due)
        if out:
            try:
                os.write(self._tel_master, out)
            except BlockingIOError:
                self.tx_dropped += len(out)  # nobody reads the port: the line just runs
            except OSError as exc:
                raise LinkError(self.telemetry_port, f"telemetry pty: {exc}") from exc

    def _read_telemetry(self) -> None:
        while True:
            try:
                chunk = os.read(self._tel_master, 4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # EIO while no process holds the slave open
            if not chunk:
                return
            if not self.line.up:
                continue
            # the bytes take their wire time at the baud before the FC has them
            t = self.model_time() + self.lag_s
            self._tel_rx_free = max(t, self._tel_rx_free) + len(chunk) * self.telemetry.byte_time
            self._tel_in.append((self._tel_rx_free, chunk))
