"""Flight-side UAVTalk: handshake, connection timeout, periods, requests, ACK/NACK, settings."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipilot.errors import PipilotError
from pipilot.sim import LockstepSim
from pipilot.sim.lockstep import LockstepTimeout
from pipilot.sim.manual import Armed
from pipilot.uavtalk import ALL_INSTANCES, PacketType, encode_packet
from pipilot.uavtalk.session import TelemetryNack, TelemetryTimeout


def test_handshake_connects_within_a_few_seconds() -> None:
    sim = LockstepSim(seed=1)
    assert sim.wait_connected() < 0.5
    sim.run(0.2)  # the ground's Connected takes its wire time to reach the FC
    assert sim.telemetry.connected
    assert sim.flight_telemetry.status == "Connected"
    sim.run(2.0)
    stats = sim.telemetry.latest("SystemAlarms")
    assert stats is not None and stats[0]["Alarm"]["Telemetry"] == "OK"


def test_without_a_ground_station_the_flight_side_waits_disconnected() -> None:
    sim = LockstepSim(seed=1, handshake=False)
    sim.run(12.0)
    assert sim.flight_telemetry.status == "Disconnected"
    got = sim.telemetry.latest("FlightTelemetryStats")
    assert got is not None and got[0]["Status"] == "Disconnected"
    # the flight side re-sends its stats at each 4 s evaluation while not connected
    assert sim.telemetry.received["FlightTelemetryStats"] >= 3


def test_waiting_for_a_handshake_nobody_starts_is_a_clear_error() -> None:
    sim = LockstepSim(seed=1, handshake=False)
    with pytest.raises(LockstepTimeout, match=r"not connected after 0\.5 s") as info:
        sim.wait_connected(timeout=0.5)
    assert isinstance(info.value, PipilotError) and isinstance(info.value, TimeoutError)
    assert sim.clock.now() >= 0.5   # virtual time: it waited the whole budget


def test_handshake_steps_follow_the_firmware() -> None:
    sim = LockstepSim(seed=1, handshake=False)
    g = sim.telemetry
    sim.run(0.3)
    v = g.registry["GCSTelemetryStats"].defaults()
    v["Status"] = "HandshakeReq"
    g.engine.send("GCSTelemetryStats", v, ack=False)
    sim.run(0.3)
    assert sim.flight_telemetry.status == "HandshakeAck"
    got = g.latest("FlightTelemetryStats")
    assert got is not None and got[0]["Status"] == "HandshakeAck"
    v["Status"] = "Connected"
    g.engine.send("GCSTelemetryStats", v, ack=False)
    sim.run(0.3)
    assert sim.flight_telemetry.status == "Connected"


def test_connection_times_out_after_8_s_of_silence() -> None:
    sim = LockstepSim(seed=1)
    sim.run(1.0)
    assert sim.flight_telemetry.connected
    g = sim.telemetry
    g.wire.up = False  # nothing from the ground reaches the flight side any more
    t_quiet = sim.now
    while sim.flight_telemetry.connected:
        sim.run(0.1)
        assert sim.now - t_quiet < 16.5
    # more than 8 s since the 4 s stats evaluation that last saw an object arrive
    assert 8.0 < sim.now - t_quiet <= 16.1


def test_keepalive_holds_the_connection() -> None:
    sim = LockstepSim(seed=1)
    sim.wait_connected()
    for _ in range(17):  # more than two of the flight side's 8 s connection timeouts
        sim.run(1.0)
        assert sim.flight_telemetry.connected
    # connected throughout: not dropped and made again between two looks
    assert sim.telemetry.stats["connects"] == 1


def test_periodic_objects_arrive_at_their_metadata_periods() -> None:
    sim = LockstepSim(seed=2)
    sim.run(2.0)
    before = dict(sim.telemetry.received)
    sim.run(10.0)
    n = {k: sim.telemetry.received.get(k, 0) - before.get(k, 0) for k in sim.telemetry.received}
    assert 70 <= n["AttitudeState"] <= 80  # 130 ms
    assert 9 <= n["AccelState"] <= 11  # 1 s
    assert 9 <= n["GyroState"] <= 11
    assert 9 <= n["SystemAlarms"] <= 11
    assert 4 <= n["ManualControlCommand"] <= 6  # 2 s
    got = sim.telemetry.latest("AttitudeState")
    assert got is not None and got[1] < 0.2


def test_flight_status_is_sent_when_it_changes() -> None:
    sim = LockstepSim(seed=2)
    sim.run(1.0)
    sim.set_sticks(yaw=-1.0)
    sim.run(1.3)
    got = sim.telemetry.latest("FlightStatus")
    assert sim.model.manual.armed is Armed.ARMED
    assert got is not None and got[0]["Armed"] == "Armed" and got[1] < 0.3


def test_requests_are_answered_and_unknown_objects_nacked() -> None:
    sim = LockstepSim(seed=3)
    sim.run(1.0)
    g = sim.telemetry
    g.engine.request("ManualControlSettings")
    sim.run(1.0)
    got = g.latest("ManualControlSettings")
    assert got is not None
    assert got[0]["ChannelNumber"]["Yaw"] == 2 and got[0]["ChannelGroups"]["Roll"] == "S.Bus"
    g.wire.write(encode_packet(PacketType.OBJ_REQ, 0x12345678, 0), sim.now)
    sim.run(0.5)
    assert sim.flight_telemetry.stats["nacks_sent"] == 1
    # an unknown object sent with a request for an ACK is refused, not a crash
    g.wire.write(encode_packet(PacketType.OBJ_ACK, 0x3CEA5B0E, 7, bytes(60)), sim.now)
    sim.run(0.5)
    assert sim.flight_telemetry.stats["nacks_sent"] == 2
    # through the engine: an object this board does not have is a TelemetryNack
    with pytest.raises(TelemetryNack, match="Waypoint"):
        asyncio.run(g.request("Waypoint"))
    assert sim.flight_telemetry.stats["nacks_sent"] == 3
    assert sim.telemetry.connected


def test_settings_write_with_ack_changes_behaviour() -> None:
    sim = LockstepSim(seed=3)
    sim.run(1.0)
    g = sim.telemetry
    v = asyncio.run(g.request("FlightModeSettings"))
    v["ArmingSequenceTime"] = 250
    asyncio.run(g.send("FlightModeSettings", v))
    assert sim.flight_telemetry.stats["acks_sent"] == 1
    assert sim.model.manual.modes.arming_sequence_ms == 250
    sim.set_sticks(yaw=-1.0)
    sim.run(0.4)
    assert sim.model.manual.armed is Armed.ARMED


def test_metadata_period_can_be_changed() -> None:
    sim = LockstepSim(seed=3)
    sim.run(1.0)
    g = sim.telemetry
    asyncio.run(g.set_update_period("AccelState", 200))
    assert sim.flight_telemetry.meta["AccelState"]["telemetry_period_ms"] == 200
    meta = asyncio.run(g.request("AccelStateMeta"))
    assert meta["telemetry_period_ms"] == 200 and meta["telemetry_update_mode"] == "periodic"
    sim.run(0.5)
    before = g.received.get("AccelState", 0)
    sim.run(4.0)
    assert 17 <= g.received["AccelState"] - before <= 22


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=8))
# a header the garbage opened swallowed the good packet into a frame whose CRC-8
# matched by chance (1 in 256, as in the firmware): it was NACKed for its instance
@example([b"\x00" * 9, b"\xe0", b"\xa4", b"\xe0"])
def test_garbage_from_the_ground_never_breaks_the_flight_side(chunks: list[bytes]) -> None:
    sim = LockstepSim(seed=5, handshake=False)
    fs = sim.flight_telemetry.registry["FlightModeSettings"]
    good = encode_packet(PacketType.OBJ_ACK, fs.object_id, 0, fs.encode(fs.defaults()))
    for c in chunks:
        sim.telemetry.wire.write(c + good[: len(c) % len(good)], sim.now)
        sim.run(0.05)
    # a frame the garbage began ends within the largest object's length: past that
    # many idle bytes the next packet is parsed on its own
    idle = sim.flight_telemetry.registry.largest + 16
    sim.telemetry.wire.write(b"\x00" * idle + good, sim.now)
    sim.run(1.0)
    assert sim.flight_telemetry.stats["acks_sent"] >= 1  # it still answers after the garbage


def test_model_level_telemetry_bytes_in_and_out() -> None:
    from pipilot.sim import SimulatedCC3D
    from pipilot.uavtalk import PacketParser

    model = SimulatedCC3D(seed=6)
    parser = PacketParser(model._telemetry().registry)
    fs = parser.registry["FlightStatus"]
    model.feed_telemetry(encode_packet(PacketType.OBJ_REQ, fs.object_id, 0), 0.1)
    got = []
    for _ in range(100):
        model.step(0.01)
        got += parser.feed(model.read_telemetry())
    flight_status = [p for p in got if p.name == "FlightStatus"]
    assert flight_status and flight_status[0].values["Armed"] == "Disarmed"
    # 9600 baud: 10 bits a byte, so one second carries at most 960 bytes
    assert parser.stats.rx_bytes <= 960 + 64


def test_cutting_the_lockstep_link_loses_the_connection_and_restoring_it_reconnects() -> None:
    sim = LockstepSim(seed=7)
    sim.run(1.0)
    assert sim.telemetry.connected
    sim.telemetry.wire.up = sim.telemetry.wire.down = False
    seen = sim.telemetry.objects_received
    sim.run(16.5)
    assert sim.telemetry.objects_received == seen
    assert sim.flight_telemetry.status == "Disconnected"  # its 8 s timeout fired
    assert not sim.telemetry.connected                      # and the ground's 6 s one
    assert sim.telemetry.stats["link_losses"] == 1
    assert "waiting for the flight controller" in sim.telemetry.waiting_for()
    sim.telemetry.wire.up = sim.telemetry.wire.down = True
    sim.run(3.0)
    assert sim.telemetry.connected and sim.flight_telemetry.connected
    assert sim.telemetry.stats["connects"] == 2


def test_multi_instance_objects_come_in_reverse_order_and_bad_instances_are_nacked() -> None:
    from pipilot.sim import SimulatedCC3D
    from pipilot.sim.telemetry import attach
    from pipilot.uavtalk import ALL_INSTANCES, PacketParser

    model = SimulatedCC3D(seed=8)
    tel = attach(model)
    parser = PacketParser(tel.registry)
    acc = tel.registry["AccessoryDesired"]
    model.advance_to(0.5)
    tel.pop_tx(0.5)
    tel.feed(encode_packet(PacketType.OBJ_REQ, acc.object_id, ALL_INSTANCES), 0.5)
    fms = tel.registry["FlightModeSettings"]
    tel.feed(encode_packet(PacketType.OBJ_ACK, fms.object_id, 3, fms.encode(fms.defaults())), 0.5)
    model.advance_to(1.5)
    got = [p for p in parser.feed(tel.pop_tx(1.5))
           if p.object_id in (acc.object_id, fms.object_id)]
    insts = [p.instance_id for p in got if p.type == PacketType.OBJ]
    assert insts[:4] == [3, 2, 1, 0]
    assert any(p.type == PacketType.NACK and p.object_id == fms.object_id for p in got)


def test_accel_state_is_raw_on_stock_and_low_passed_when_patched() -> None:
    """Stock 16.09 publishes the latest sensor sample (vibration and all);
    firmware-patches/0005 publishes the AccelTau-filtered value."""
    import numpy as np

    from pipilot.sim.model import SimulatedCC3D
    from pipilot.sim.objects import accel_state

    spread = {}
    for fw in ("stock", "patched"):
        m = SimulatedCC3D(seed=3, firmware=fw)
        xs = []
        for _ in range(400):
            m.quad.thrust = m.params.mass * 9.80665    # motors running: full vibration
            m.advance_to(m.now + 0.01)
            xs.append(accel_state(m)["x"])
        spread[fw] = float(np.std(xs))
    assert spread["stock"] > 0.1            # the sim's 0.15 m/s^2 sample noise
    assert spread["patched"] < spread["stock"] / 4


def test_answers_skip_a_full_telemetry_queue() -> None:
    """uavtalk.c answers from the receive path: a full queue drops updates, not ACKs."""
    from pipilot.sim import SimulatedCC3D
    from pipilot.sim.telemetry import QUEUE_SIZE, attach
    from pipilot.uavtalk import PacketParser

    model = SimulatedCC3D(seed=8)
    tel = attach(model)
    parser = PacketParser(tel.registry)
    model.advance_to(0.5)
    tel.pop_tx(0.5)
    for _ in range(QUEUE_SIZE + 5):
        tel.send_object("AttitudeState")
    assert tel.stats["tx_failures"] >= 5
    fms = tel.registry["FlightModeSettings"]
    tel.feed(encode_packet(PacketType.OBJ_ACK, fms.object_id, 0, fms.encode(fms.defaults())), 0.5)
    status = tel.registry["FlightStatus"]
    tel.feed(encode_packet(PacketType.OBJ_REQ, status.object_id, 0), 0.5)
    tel.feed(encode_packet(PacketType.OBJ_REQ, 0x12345678, 0), 0.5)
    # at 9600 baud the answers are on the line within the packet in flight plus their own bytes
    got = parser.feed(tel.pop_tx(0.5 + 0.15))
    kinds = [(p.type, p.object_id) for p in got]
    assert (PacketType.ACK, fms.object_id) in kinds
    assert (PacketType.OBJ, status.object_id) in kinds
    assert (PacketType.NACK, 0x12345678) in kinds
    assert kinds.index((PacketType.ACK, fms.object_id)) <= 1  # only the packet in flight before it


def test_the_engine_reads_every_instance_and_a_missing_one_is_refused() -> None:
    sim = LockstepSim(seed=8)
    sim.run(1.0)
    g = sim.telemetry
    got = asyncio.run(g.request("AccessoryDesired", ALL_INSTANCES))
    assert sorted(got) == [0, 1, 2, 3]
    assert all("AccessoryVal" in v for v in got.values())
    with pytest.raises(TelemetryNack, match=r"AccessoryDesired\[7\]"):
        asyncio.run(g.request("AccessoryDesired", 7))


def test_a_lost_answer_is_retried_and_a_dead_line_times_out() -> None:
    sim = LockstepSim(seed=9)
    sim.run(1.0)
    g = sim.telemetry
    g.wire.down = False                  # the answer to the first try is lost
    t0 = sim.now

    def restore(_now: float) -> None:
        g.wire.down = True

    sim.model.add_task("restore", 0.5, restore)
    assert asyncio.run(g.request("SystemSettings")) is not None
    assert g.stats["tx_retries"] == 1 and 1.0 <= sim.now - t0 < 2.0
    g.wire.up = False                    # now nothing gets through at all
    t0 = sim.now
    with pytest.raises(TelemetryTimeout, match="SystemSettings"):
        asyncio.run(g.request("SystemSettings"))
    assert g.stats["tx_failures"] == 1
    assert 3.0 <= sim.now - t0 < 3.1     # three tries, one ACK timeout each


def test_stopping_the_ground_side_disconnects_the_flight_side_at_once() -> None:
    sim = LockstepSim(seed=10)
    sim.run(1.0)
    assert sim.flight_telemetry.connected
    sim.telemetry.stop()
    sim.run(0.3)
    assert sim.flight_telemetry.status == "Disconnected"
    assert not sim.telemetry.connected and sim.telemetry.engine.next_deadline() is None
    sim.telemetry.start()
    sim.run(1.0)
    assert sim.telemetry.connected and sim.flight_telemetry.connected
