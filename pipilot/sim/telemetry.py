"""Flight side of UAVTalk, as LibrePilot 16.09's Telemetry module behaves.

* Handshake (telemetry.c): FlightTelemetryStats.Status goes Disconnected ->
  HandshakeAck when GCSTelemetryStats.Status = HandshakeReq arrives, ->
  Connected when the ground says Connected, and back to Disconnected when the
  ground says anything else or no object arrived for 8 s. The state is
  re-evaluated every 4 s and whenever GCSTelemetryStats arrives while either
  side is not Connected; while not Connected every evaluation sends
  FlightTelemetryStats.
* Periodic objects go out at their metadata telemetry period (AttitudeState
  130 ms, AccelState/GyroState/SystemAlarms 1 s, ManualControlCommand 2 s,
  FlightTelemetryStats 5 s), on-change ones (FlightStatus) when they change.
  Metadata are objects too: readable and writable, and a new period takes
  effect at once.
* OBJ_REQ is answered with the object (all instances for 0xFFFF), OBJ_ACK with
  ACK, and requests or acked writes of objects this board does not have with
  NACK. Settings objects are stored and written through to the model.
  Answers skip the telemetry queue (uavtalk.c sends them from the receive
  path with the blocking PIOS_COM_SendBuffer): they follow the bytes already
  on the line and are never dropped, however full the queue.
* Updates wait in the telemetry queue (``QUEUE_SIZE`` events) and are encoded
  with the object's value when the line is free; bytes leave at the configured
  baud (10 bits a byte). An update that finds the queue full is dropped and
  counted as a TxFailure: at 9600 baud the default metadata already load the
  line heavily, as on the rig.
"""

from __future__ import annotations

import copy
import logging
import math
import random
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

from pipilot.sim.manual import FUNCTIONS
from pipilot.sim.objects import PARTIAL_SNAPSHOTS, SNAPSHOTS
from pipilot.uavtalk import ALL_INSTANCES, PacketParser, PacketType, encode_packet, load_definitions
from pipilot.uavtalk.linkbudget import CC3D_OBJECTS

if TYPE_CHECKING:
    from pipilot.sim.model import SimulatedCC3D, Task

log = logging.getLogger(__name__)

STATS_UPDATE_PERIOD = 4.0
CONNECTION_TIMEOUT = 8.0
ONCHANGE_CHECK = 0.020
QUEUE_SIZE = 10
TX_SERVICE_PERIOD = 0.005


def _rig_settings(name: str, values: dict[str, Any], model: SimulatedCC3D) -> None:
    """Overlay the rig's configuration (NOTES.md) on the defaults."""
    if name == "ManualControlSettings":
        cal = model.manual.settings
        for fn in FUNCTIONS:
            values["ChannelGroups"][fn] = "S.Bus" if cal.assigned(fn) else "None"
            values["ChannelNumber"][fn] = cal.channel_number[fn]
            values["ChannelMin"][fn] = cal.channel_min[fn]
            values["ChannelNeutral"][fn] = cal.channel_neutral[fn]
            values["ChannelMax"][fn] = cal.channel_max[fn]
        values["FlightModeNumber"] = 1
        values["Deadband"] = int(cal.deadband_pct)
    elif name == "FlightModeSettings":
        values["Arming"] = model.manual.modes.arming
        values["Stabilization1Settings"] = {"Roll": "Attitude", "Pitch": "Attitude",
                                            "Yaw": "AxisLock", "Thrust": "CruiseControl"}
        fmp = values["FlightModePosition"]
        if isinstance(fmp, list):
            fmp[0] = "Stabilized1"
    elif name == "HwSettings" and "TelemetrySpeed" in values:
        values["TelemetrySpeed"] = str(model.telemetry_baud)


def _apply_settings(name: str, v: dict[str, Any], model: SimulatedCC3D) -> None:
    """Write a settings object through to the model where the model uses it."""
    if name == "ManualControlSettings":
        cal = model.manual.settings
        for fn in FUNCTIONS:
            cal.channel_number[fn] = (int(v["ChannelNumber"][fn])
                                      if v["ChannelGroups"][fn] == "S.Bus" else 0)
            cal.channel_min[fn] = int(v["ChannelMin"][fn])
            cal.channel_neutral[fn] = int(v["ChannelNeutral"][fn])
            cal.channel_max[fn] = int(v["ChannelMax"][fn])
        cal.deadband_pct = float(v["Deadband"])
        for k, x in v["FailsafeChannel"].items():
            cal.failsafe[k] = float(x)
    elif name == "FlightModeSettings":
        m = model.manual.modes
        m.arming = str(v["Arming"])
        m.arming_sequence_ms = int(v["ArmingSequenceTime"])
        m.disarming_sequence_ms = int(v["DisarmingSequenceTime"])
        m.armed_timeout_ms = int(v["ArmedTimeout"])
    elif name == "StabilizationSettingsBank1":
        s = model.stabilizer.s
        s.roll_max_deg = float(v["RollMax"])
        s.pitch_max_deg = float(v["PitchMax"])
    elif name == "AttitudeSettings":
        rot = v["BoardRotation"]
        model.estimator.set_board_rotation(float(rot["Roll"]), float(rot["Pitch"]),
                                           float(rot["Yaw"]))


class FlightTelemetry:
    """The model's telemetry port: ``feed(data, now)`` in, ``pop_tx(now)`` out."""

    def __init__(self, model: SimulatedCC3D, *, baud: int = 9600, registry: Any = None) -> None:
        self.model = model
        self.baud = baud
        self.byte_time = 10.0 / baud
        self.registry = registry or load_definitions()
        self.parser = PacketParser(self.registry)
        self._rnd = random.Random(model.seed + 1)
        self.objects: dict[str, dict[int, dict[str, Any]]] = {}
        self.meta: dict[str, dict[str, Any]] = {}
        for name in CC3D_OBJECTS:
            if name not in self.registry:
                continue
            d = self.registry[name]
            values = d.defaults()
            _rig_settings(name, values, model)
            # the receiver module creates three more AccessoryDesired instances
            count = 4 if name == "AccessoryDesired" else 1
            self.objects[name] = {i: copy.deepcopy(values) for i in range(count)}
            self.meta[name] = self.registry[name + "Meta"].defaults()
        self.status = "Disconnected"
        self.gcs_status = "Disconnected"
        self.last_rx_object = model.now
        self._rx_objects_since_stats = 0
        self._tx = bytearray()
        self._tx_free_at = model.now  # when the line is free for the next byte
        self._queue: deque[tuple[int, int, int, str | None, bytes]] = deque()
        self.stats = {"tx_bytes": 0, "rx_bytes": 0, "tx_failures": 0, "tx_objects": 0,
                      "rx_objects": 0, "nacks_sent": 0, "acks_sent": 0}
        #: Objects the ground asked for (OBJ_REQ), by name.
        self.requests: Counter[str] = Counter()
        #: Objects whose updates find the queue full (`pipilot.sim.faults`): each is
        #: dropped and counted as a TxFailure; answers to requests still go out.
        self.dropped_updates: set[str] = set()
        self._last_onchange: dict[str, dict[str, Any]] = {}
        self._periodic_tasks: dict[str, Task] = {}
        for name in self.objects:
            self._schedule(name)
        model.add_task("telemetry:stats", STATS_UPDATE_PERIOD, self._stats_tick)
        model.add_task("telemetry:onchange", ONCHANGE_CHECK, self._onchange_tick)
        model.add_task("telemetry:tx", TX_SERVICE_PERIOD, self._service)

    # -- values ---------------------------------------------------------------
    def values(self, name: str, inst: int = 0) -> dict[str, Any]:
        """Current value of an object: live ones computed from the model now."""
        if name in SNAPSHOTS:
            return SNAPSHOTS[name](self.model)
        if name == "AccessoryDesired":
            return {"AccessoryVal": self.model.manual.cmd.accessory[inst]}
        if name in PARTIAL_SNAPSHOTS:
            return {**self.objects[name][inst], **PARTIAL_SNAPSHOTS[name](self.model)}
        if name == "FlightTelemetryStats":
            v = self.objects[name][0]
            v["Status"] = self.status
            return v
        return self.objects[name][inst]

    # -- scheduling -------------------------------------------------------------
    def _schedule(self, name: str) -> None:
        old = self._periodic_tasks.pop(name, None)
        if old is not None:
            old.cancel()
        meta = self.meta[name]
        period = meta["telemetry_period_ms"] / 1000.0
        if meta["telemetry_update_mode"] != "periodic" or period <= 0:
            return
        # the event dispatcher starts each period at a random offset to avoid bunching
        first = self.model.now + self._rnd.uniform(0.0, period)
        self._periodic_tasks[name] = self.model.add_task(
            f"telemetry:{name}", period, lambda _now: self.send_all(name), first=first)

    def _onchange_tick(self, _now: float) -> None:
        for name, meta in self.meta.items():
            if meta["telemetry_update_mode"] != "onchange" or name not in SNAPSHOTS:
                continue
            v = SNAPSHOTS[name](self.model)
            if self._last_onchange.get(name) != v:
                self._last_onchange[name] = v
                self.send_object(name)

    # -- handshake (telemetry.c updateTelemetryStats) ---------------------------
    def _stats_tick(self, now: float) -> None:
        self.update_stats(now)

    def _set_status(self, status: str, now: float) -> None:
        if status != self.status:
            log.info("flight telemetry: %s -> %s at %.3f s", self.status, status, now)
            self.status = status

    def update_stats(self, now: float) -> None:
        if self._rx_objects_since_stats > 0:
            self.last_rx_object = now
        self._rx_objects_since_stats = 0
        timeout = now - self.last_rx_object > CONNECTION_TIMEOUT
        force = True
        if self.status == "Disconnected":
            if self.gcs_status == "HandshakeReq":
                self._set_status("HandshakeAck", now)
        elif self.status == "HandshakeAck":
            if self.gcs_status == "Connected":
                self._set_status("Connected", now)
            elif self.gcs_status == "Disconnected":
                self._set_status("Disconnected", now)
        elif self.status == "Connected":
            if self.gcs_status != "Connected" or timeout:
                self._set_status("Disconnected", now)
            else:
                force = False
        else:
            self._set_status("Disconnected", now)
        if self.status == "Connected":
            self.model.telemetry_alarm = "OK"
        st = self.objects["FlightTelemetryStats"][0]
        if self.status == "Connected":
            st["TxBytes"] = self.stats["tx_bytes"] & 0xFFFFFFFF
            st["RxBytes"] = self.stats["rx_bytes"] & 0xFFFFFFFF
            st["TxFailures"] = self.stats["tx_failures"] & 0xFFFFFFFF
            st["RxFailures"] = self.parser.stats.rx_errors & 0xFFFFFFFF
            st["RxCrcErrors"] = self.parser.stats.rx_crc_errors & 0xFFFFFFFF
            st["RxSyncErrors"] = self.parser.stats.rx_sync_errors & 0xFFFFFFFF
        if force:
            self.send_object("FlightTelemetryStats")

    @property
    def connected(self) -> bool:
        return self.status == "Connected"

    # -- receive ------------------------------------------------------------------
    def feed(self, data: bytes, now: float) -> None:
        """Bytes from the ground, complete at time ``now`` (advance the model there first)."""
        self.stats["rx_bytes"] += len(data)
        for p in self.parser.feed(data):
            self._rx_objects_since_stats += 1
            self.stats["rx_objects"] += 1
            self._handle(p, now)

    def _handle(self, p: Any, now: float) -> None:
        d = p.definition
        name: str = "" if d is None else (d.parent.name if d.is_meta else d.name)
        known = name in self.objects
        t = p.type & ~0x80
        if t == PacketType.OBJ_REQ:
            self.requests[f"0x{p.object_id:08X}" if d is None else d.name] += 1
            if not known:
                self._send_nack(now, p.object_id, p.instance_id)
            elif d.is_meta:
                self._reply(now, PacketType.OBJ, d.object_id, 0, None, d.encode(self.meta[name]))
            elif p.instance_id == ALL_INSTANCES:
                for inst in self._instances(name):
                    self._reply(now, PacketType.OBJ, d.object_id, inst, name)
            elif p.instance_id in self.objects[name]:
                self._reply(now, PacketType.OBJ, d.object_id, p.instance_id, name)
            else:
                self._send_nack(now, p.object_id, p.instance_id)
        elif t in (PacketType.OBJ, PacketType.OBJ_ACK):
            bad_instance = d is not None and p.instance_id != 0 and (
                d.is_meta or d.single_instance)
            if d is None or not known or p.values is None or bad_instance:
                if t == PacketType.OBJ_ACK:
                    self._send_nack(now, p.object_id, p.instance_id)
                return
            if d.is_meta:
                self.meta[name] = p.values
                self._schedule(name)
            elif name == "GCSTelemetryStats":
                self.objects[name][0] = p.values
                self.gcs_status = p.values["Status"]
                if self.status != "Connected" or self.gcs_status != "Connected":
                    self.update_stats(now)
            elif name in SNAPSHOTS or name in PARTIAL_SNAPSHOTS or name == "AccessoryDesired":
                pass  # the firmware recomputes these; a ground write is overwritten at once
            else:
                self.objects[name][p.instance_id] = copy.deepcopy(p.values)
                if d.is_settings:
                    try:
                        _apply_settings(name, p.values, self.model)
                    except (KeyError, ValueError, TypeError) as exc:
                        log.warning("sim: %s not applied: %s", name, exc)
            if t == PacketType.OBJ_ACK:
                self._reply(now, PacketType.ACK, p.object_id, p.instance_id)
                self.stats["acks_sent"] += 1

    # -- transmit -----------------------------------------------------------------
    def _instances(self, name: str) -> list[int]:
        """Reverse order ending at instance 0, as UAVTalk sends them."""
        return sorted(self.objects[name], reverse=True)

    def send_all(self, name: str) -> None:
        """Queue every instance of ``name``."""
        for inst in self._instances(name):
            self.send_object(name, inst)

    def send_object(self, name: str, inst: int = 0) -> None:
        """Queue an update of ``name``; its value is taken when it is sent."""
        self._enqueue(PacketType.OBJ, self.registry[name].object_id, inst, name, b"")

    def _send_nack(self, now: float, oid: int, inst: int) -> None:
        self._reply(now, PacketType.NACK, oid, inst)
        self.stats["nacks_sent"] += 1

    def _reply(self, now: float, ptype: int, oid: int, inst: int, name: str | None = None,
               data: bytes = b"") -> None:
        """An answer from the receive path: onto the line now, behind the bytes on it."""
        self._write_packet(now, ptype, oid, inst, name, data)

    def _enqueue(self, ptype: int, oid: int, inst: int, name: str | None, data: bytes) -> None:
        if len(self._queue) >= QUEUE_SIZE or name in self.dropped_updates:
            self.stats["tx_failures"] += 1
            return
        self._queue.append((ptype, oid, inst, name, data))
        self._service(self.model.now)

    def _service(self, now: float) -> None:
        while self._queue and self._tx_free_at <= now:
            self._write_packet(now, *self._queue.popleft())

    def _write_packet(self, now: float, ptype: int, oid: int, inst: int, name: str | None,
                      data: bytes) -> None:
        if name is not None:
            try:
                data = self.registry[name].encode(self.values(name, inst))
            except (ValueError, KeyError) as exc:
                log.error("sim: cannot encode %s: %s", name, exc)
                return
            self.stats["tx_objects"] += 1
        pkt = encode_packet(ptype, oid, inst, data)
        self._tx_free_at = max(now, self._tx_free_at) + len(pkt) * self.byte_time
        self._tx += pkt
        self.stats["tx_bytes"] += len(pkt)

    def backlog(self, now: float) -> int:
        """Bytes queued whose transmission has not finished by ``now``."""
        return max(0, math.ceil((self._tx_free_at - now) / self.byte_time - 1e-6))

    def pop_tx(self, now: float) -> bytes:
        """Bytes whose last stop bit has been sent by ``now`` (wire pacing at the baud)."""
        self._service(now)
        n = len(self._tx) - self.backlog(now)
        if n <= 0:
            return b""
        out = bytes(self._tx[:n])
        del self._tx[:n]
        return out

    def next_tx_time(self) -> float | None:
        """When the next queued byte will be complete on the wire, if any is queued."""
        if not self._tx:
            return None
        return self._tx_free_at - (len(self._tx) - 1) * self.byte_time


def attach(model: SimulatedCC3D, *, baud: int = 9600) -> FlightTelemetry:
    model.telemetry_baud = baud
    tel = FlightTelemetry(model, baud=baud)
    model.telemetry = tel
    return tel

