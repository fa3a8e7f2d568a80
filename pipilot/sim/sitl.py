"""LibrePilot 16.09's own firmware as a simulator backend (software in the loop).

The simposix build of the firmware, with firmware-patches/0006 and later
(``tools/sitl/build.sh``), runs the flight code as a Linux program. Started
with ``-s pty -p PORT`` it creates a pseudo terminal for S.Bus, which it reads
through its own S.Bus driver and receiver code, and serves UAVTalk on
``127.0.0.1:PORT`` (UDP). ``SitlProcess`` starts it in a scratch directory
(its settings files land there), hands pipilot the pty path for the
FlightCore and ``udp:127.0.0.1:PORT`` for the TelemetrySession, and stops it
on every exit path: ``stop()``, the context manager, interpreter exit, and the
death of the pipilot process itself (the child gets SIGKILL from the kernel).

``configure(session)`` writes the rig's settings (the same values the built-in
model starts with) through telemetry, as the GCS would.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pipilot.errors import PipilotError

if TYPE_CHECKING:
    from pipilot.core.telemetry import TelemetrySession

#: Environment variable naming a built SITL binary (tools/sitl/build.sh prints it).
ENV_BINARY = "PIPILOT_SITL"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 3.0
_PR_SET_PDEATHSIG = 1
_STATS = re.compile(r"sbus stats: (.*)")
_PTY = re.compile(r"sbus pty: (\S+)")
#: Settings the rig uses (docs: /work notes on the channel map), written through telemetry.
RIG_SETTINGS = ("ManualControlSettings", "FlightModeSettings")


class SitlError(PipilotError):
    """The SITL binary cannot be started or stopped as asked."""


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_binary(path: str | os.PathLike[str]) -> Path:
    """The SITL binary at ``path``, or SitlError saying what is wrong with it."""
    p = Path(path)
    if not p.is_file():
        raise SitlError(f"SITL binary not found: {p} (build it with tools/sitl/build.sh)")
    if not os.access(p, os.X_OK):
        raise SitlError(f"SITL binary is not executable: {p}")
    return p


class SitlProcess:
    """One running simposix firmware; ``start()`` / ``stop()`` or ``with``."""

    def __init__(self, binary: str | os.PathLike[str], *, port: int | None = None,
                 start_timeout: float = START_TIMEOUT_S) -> None:
        self.binary = check_binary(binary)
        self.port = port
        self.start_timeout = start_timeout
        self.sbus_port = ""
        self.workdir: Path | None = None
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self._stats: dict[str, float] = {}
        self._stats_at = 0.0
        self._pty_ready = threading.Event()
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    @property
    def telemetry_port(self) -> str:
        """The port spec the TelemetrySession opens."""
        return f"udp:127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> SitlProcess:
        if self.proc is not None:
            return self
        if self.port is None:
            self.port = free_udp_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="pipilot-sitl-"))
        try:
            self.proc = subprocess.Popen(
                [str(self.binary), "-s", "pty", "-p", str(self.port)], cwd=self.workdir,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, bufsize=1, start_new_session=True, preexec_fn=_die_with_parent)
        except OSError as exc:
            self._cleanup_dir()
            raise SitlError(f"cannot start {self.binary}: {exc}") from None
        atexit.register(self.stop)
        self._reader = threading.Thread(target=self._read_output, name="sitl-output", daemon=True)
        self._reader.start()
        if not self._pty_ready.wait(self.start_timeout) or not self.sbus_port:
            tail = " | ".join(self.output[-5:])
            self.stop()
            raise SitlError(f"SITL did not offer its S.Bus pty within {self.start_timeout} s"
                            f" (output: {tail or 'none'})")
        return self

    def _read_output(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            m = _STATS.match(line)
            if m:
                values = {}
                for item in m.group(1).split():
                    k, _, v = item.partition("=")
                    with contextlib.suppress(ValueError):
                        values[k] = float(v)
                with self._lock:
                    self._stats, self._stats_at = values, time.monotonic()
                continue
            with self._lock:
                self.output.append(line)
                del self.output[:-200]
            m = _PTY.match(line)
            if m:
                self.sbus_port = m.group(1)
                self._pty_ready.set()
        self._pty_ready.set()

    def stats(self) -> dict[str, float]:
        """The firmware's latest S.Bus counters (bytes, frames, failsafe, lost, timeouts, ticks).

        ``frames`` counts frames the 16.09 decoder accepted into its channels;
        the firmware prints them every 200 ms.
        """
        with self._lock:
            return dict(self._stats)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        """Stop the firmware (SIGTERM, then SIGKILL) and remove its scratch directory."""
        proc, self.proc = self.proc, None
        rc = None
        if proc is not None:
            for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, STOP_TIMEOUT_S)):
                if proc.poll() is not None:
                    break
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(wait)
            rc = proc.poll()
            if proc.stdout is not None:
                proc.stdout.close()
            with contextlib.suppress(Exception):
                atexit.unregister(self.stop)
        if self._reader is not None:
            self._reader.join(timeout=1.0)
            self._reader = None
        self._cleanup_dir()
        return rc

    def _cleanup_dir(self) -> None:
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> SitlProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def configure(session: TelemetrySession, *, timeout: float = 10.0) -> None:
    """Write the rig's receiver, arming and flight-mode settings, as the GCS would.

    The values are those the built-in model starts with (``pipilot.sim.telemetry``),
    so both backends fly with the same calibration and modes.
    """
    from pipilot.sim.model import SimulatedCC3D
    from pipilot.sim.telemetry import _rig_settings

    await session.wait_connected(timeout)
    reference = SimulatedCC3D()
    for name in RIG_SETTINGS:
        values = await session.request(name)
        _rig_settings(name, values, reference)
        await session.send(name, values, ack=True)
    # The simposix build estimates attitude with the Revo StateEstimation, not the CC3D's
    # Attitude module (that one reads the CC3D's sensor chips). With no fusion algorithm the
    # simulated-sensors module publishes its airframe's attitude (firmware-patches/0008).
    revo = await session.request("RevoSettings")
    revo["FusionAlgorithm"] = "None"
    await session.send("RevoSettings", revo, ack=True)
