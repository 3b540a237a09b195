"""SentPacketHandler: ACK processing, RTT samples, loss detection (RFC 9002 §6.1), PTO (§6.2),
persistent congestion (§7.6), anti-amplification (RFC 9000 §8.1), hostile ACKs, with exact virtual times."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from quicsilver.ackhandler import SendMode, SentPacket, SentPacketHandler
from quicsilver.congestion import NewRenoSender
from quicsilver.errors import TransportError, TransportErrorCode
from quicsilver.protocol import Perspective
from quicsilver.qlog.tracer import ConnectionTracer
from tests.recovery.helpers import APP, HANDSHAKE, INITIAL, MDS, ack, make_handler, send


def rtt_sample(h: SentPacketHandler, t0: float = 0.0, rtt: float = 0.1) -> SentPacket:
    """One packet and its ACK: smoothed_rtt = latest_rtt = rtt, rttvar = rtt / 2."""
    p = send(h, t0)
    h.received_ack(ack((p.pn, p.pn)), APP, t0 + rtt)
    return p


def alarm_of(h: SentPacketHandler) -> float:
    alarm = h.loss_detection_timeout()
    assert alarm is not None
    return alarm


def test_ack_of_unsent_packet_is_protocol_violation() -> None:
    h = make_handler()
    send(h, 0.0)
    with pytest.raises(TransportError) as e:
        h.received_ack(ack((0, 1)), APP, 0.1)
    assert e.value.code == TransportErrorCode.PROTOCOL_VIOLATION
    assert e.value.frame_type == 0x02
    h = make_handler(confirmed=False)
    with pytest.raises(TransportError):
        h.received_ack(ack((0, 0)), HANDSHAKE, 0.1)  # nothing sent there at all


def test_ack_of_skipped_packet_number_is_protocol_violation() -> None:
    h = make_handler(seed=7)
    pns = [send(h, i * 0.001).pn for i in range(600)]
    gaps = [a + 1 for a, b in itertools.pairwise(pns) if b != a + 1]
    assert gaps, "no packet number skipped in 600 packets"
    assert all(b - a <= 2 for a, b in itertools.pairwise(pns))  # never two in a row
    skipped = gaps[0]
    # Acknowledging around the skipped number is fine ...
    h.received_ack(ack((0, skipped - 1)), APP, 1.0)
    # ... acknowledging it is an optimistic ACK attack.
    with pytest.raises(TransportError) as e:
        h.received_ack(ack((skipped, skipped + 1)), APP, 1.0)
    assert e.value.code == TransportErrorCode.PROTOCOL_VIOLATION
    assert h.peek_packet_number(APP) == h.pop_packet_number(APP)


def test_rtt_sample_only_when_largest_is_newly_acked() -> None:
    h = make_handler()
    rtt_sample(h)
    assert h.rtt.latest_rtt == pytest.approx(0.1)
    assert h.rtt.smoothed_rtt == pytest.approx(0.1)
    p1, p2 = send(h, 1.0), send(h, 1.0)
    r = h.received_ack(ack((p2.pn, p2.pn)), APP, 1.08)
    assert r.rtt_updated
    assert h.rtt.latest_rtt == pytest.approx(0.08)
    r = h.received_ack(ack((p1.pn, p2.pn)), APP, 1.5)  # largest not new: no sample
    assert not r.rtt_updated
    assert [p.pn for p in r.acked] == [p1.pn]
    assert h.rtt.latest_rtt == pytest.approx(0.08)


def test_ack_delay_scaled_by_exponent_and_clamped() -> None:
    h = make_handler()
    rtt_sample(h)
    p = send(h, 2.0)
    h.received_ack(ack((p.pn, p.pn), delay=5000), APP, 2.2)  # 5000 << 3 us = 40 ms, clamped to 25 ms
    adjusted = 0.2 - 0.025
    assert h.rtt.smoothed_rtt == pytest.approx(0.875 * 0.1 + 0.125 * adjusted)


def test_handshake_ack_delay_ignored() -> None:
    h = make_handler(confirmed=False)
    p = send(h, 0.0, INITIAL)
    h.received_ack(ack((p.pn, p.pn), delay=1000), INITIAL, 0.1)
    q = send(h, 1.0, INITIAL)
    h.received_ack(ack((q.pn, q.pn), delay=1000), INITIAL, 1.2)
    assert h.rtt.smoothed_rtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.2)


def test_packet_and_time_threshold_loss() -> None:
    h = make_handler()
    rtt_sample(h)
    pkts = [send(h, 1.0 + i * 0.01) for i in range(5)]  # sent at 1.00 .. 1.04
    r = h.received_ack(ack((pkts[3].pn, pkts[3].pn)), APP, 1.1)
    # kPacketThreshold: the packet 3 below the largest acknowledged is lost, the next one is not.
    assert [p.pn for p in r.lost] == [pkts[0].pn]
    latest = 1.1 - 1.03
    srtt = 0.875 * 0.1 + 0.125 * latest
    loss_delay = 9 / 8 * max(latest, srtt)
    alarm = alarm_of(h)
    assert alarm == pytest.approx(1.01 + loss_delay)
    assert h.on_loss_detection_timeout(alarm - 1e-6).lost == []  # early: nothing
    res = h.on_loss_detection_timeout(alarm)
    assert [p.pn for p in res.lost] == [pkts[1].pn]
    assert res.probe_space is None
    assert h.loss_detection_timeout() == pytest.approx(1.02 + loss_delay)
    res = h.on_loss_detection_timeout(alarm_of(h))
    assert [p.pn for p in res.lost] == [pkts[2].pn]
    # Only the unacknowledged packet above the largest acknowledged remains: PTO armed for it.
    assert [p.pn for p in h.outstanding(APP)] == [pkts[4].pn]
    assert h.bytes_in_flight == MDS


def test_pto_instants_and_backoff() -> None:
    h = make_handler()
    rtt_sample(h)  # srtt 0.1, rttvar 0.05
    send(h, 1.0)
    pto = 0.1 + 4 * 0.05 + 0.025  # + max_ack_delay in the application space
    assert h.loss_detection_timeout() == pytest.approx(1.0 + pto)
    res = h.on_loss_detection_timeout(1.0 + pto)
    assert res.probe_space == APP and res.probe_count == 2 and res.lost == []
    assert h.pto_count == 1
    assert h.send_mode(1.0 + pto) == SendMode.PTO_APPLICATION
    assert h.loss_detection_timeout() == pytest.approx(1.0 + 2 * pto)
    # A packet number is skipped to elicit an immediate ACK of the probe.
    before = h.peek_packet_number(APP)
    a = send(h, 1.0 + pto)
    assert h.send_mode(1.0 + pto) == SendMode.PTO_APPLICATION
    send(h, 1.0 + pto)
    assert h.send_mode(1.0 + pto) == SendMode.ANY
    assert a.pn == before
    # The second PTO is twice as long, measured from the last ack-eliciting packet.
    t2 = 1.0 + pto + 2 * pto
    assert h.loss_detection_timeout() == pytest.approx(t2)
    h.on_loss_detection_timeout(t2)
    assert h.pto_count == 2
    assert h.loss_detection_timeout() == pytest.approx(1.0 + pto + 4 * pto)
    # An ACK resets the backoff.
    h.received_ack(ack((a.pn, a.pn)), APP, t2 + 0.01)
    assert h.pto_count == 0


def test_no_application_pto_before_handshake_confirmed() -> None:
    h = make_handler(Perspective.SERVER, confirmed=False, address_validated=True)
    send(h, 0.0, APP)
    assert h.loss_detection_timeout() is None
    send(h, 0.5, HANDSHAKE)
    assert h.loss_detection_timeout() == pytest.approx(0.5 + 0.999)  # initial PTO, no max_ack_delay
    res = h.on_loss_detection_timeout(0.5 + 0.999)
    assert res.probe_space == HANDSHAKE and res.probe_count == 2
    assert h.send_mode(1.5) == SendMode.PTO_HANDSHAKE
    h.drop_space(HANDSHAKE, 1.6)
    h.drop_space(INITIAL, 1.6)
    assert h.handshake_confirmed
    assert h.pto_count == 0
    # Now the application packet sent at 0.0 arms the PTO.
    assert h.loss_detection_timeout() == pytest.approx(0.0 + 0.999 + 0.025)


def test_client_anti_deadlock_pto() -> None:
    h = make_handler(Perspective.CLIENT, confirmed=False)
    p = send(h, 0.0, INITIAL)
    h.received_ack(ack((p.pn, p.pn)), INITIAL, 0.1)
    # Nothing in flight, but the server may be blocked by its amplification limit (RFC 9002 §6.2.2.1).
    assert h.bytes_in_flight == 0
    assert h.loss_detection_timeout() == pytest.approx(0.1 + 0.3)
    res = h.on_loss_detection_timeout(0.4)
    assert res.probe_space == INITIAL and res.probe_count == 1
    assert h.send_mode(0.4) == SendMode.PTO_INITIAL
    assert h.loss_detection_timeout() == pytest.approx(0.4 + 0.6)  # backed off, from now
    # After the client moved to Handshake (dropping Initial), the probe is a Handshake packet.
    h.drop_space(INITIAL, 0.5)
    assert h.loss_detection_timeout() == pytest.approx(0.5 + 0.3)
    res = h.on_loss_detection_timeout(0.8)
    assert res.probe_space == HANDSHAKE and res.probe_count == 1
    # An ACK in the Handshake space proves the server validated the address: no timer when idle.
    q = send(h, 0.9, HANDSHAKE)
    h.received_ack(ack((q.pn, q.pn)), HANDSHAKE, 1.0)
    assert h.loss_detection_timeout() is None


def test_server_anti_amplification_limit() -> None:
    h = make_handler(Perspective.SERVER, confirmed=False)
    assert h.amplification_budget() == 0
    assert h.send_mode(0.0) == SendMode.NONE
    h.received_bytes(1200, 0.0)
    assert h.amplification_budget() == 3600
    assert h.send_mode(0.0) == SendMode.ANY
    for _ in range(3):
        send(h, 0.0, INITIAL)
    assert h.amplification_budget() == 0
    assert h.send_mode(0.0) == SendMode.NONE
    assert h.loss_detection_timeout() is None  # not armed while amplification-limited
    h.received_bytes(100, 0.2)
    assert h.amplification_budget() == 300
    assert h.loss_detection_timeout() == pytest.approx(0.999)  # re-armed from the last Initial
    h.set_peer_validated_address(0.3)
    assert h.amplification_budget() is None
    assert h.send_mode(0.3) == SendMode.ANY


def test_drop_space_removes_bytes_in_flight() -> None:
    h = make_handler(confirmed=False)
    send(h, 0.0, INITIAL)
    send(h, 0.0, HANDSHAKE, size=1000)
    send(h, 0.0, APP, size=500)
    assert h.bytes_in_flight == MDS + 1000 + 500
    assert h.packets_in_flight == 3
    h.drop_space(INITIAL, 0.1)
    assert h.bytes_in_flight == 1000 + 500
    h.drop_space(HANDSHAKE, 0.1)
    assert h.bytes_in_flight == 500
    assert h.outstanding(INITIAL) == [] and h.outstanding(HANDSHAKE) == []
    h.drop_space(HANDSHAKE, 0.2)  # idempotent
    send(h, 0.3, HANDSHAKE)  # a late packet of a dropped space is ignored
    assert h.bytes_in_flight == 500
    assert h.received_ack(ack((0, 0)), INITIAL, 0.4).acked == []
    with pytest.raises(ValueError):
        h.drop_space(APP)


def test_lost_mtu_probe_is_no_congestion_signal() -> None:
    h = make_handler()
    rtt_sample(h)
    cwnd = h.congestion.congestion_window
    probe = send(h, 1.0, size=1400, mtu_probe=True)
    others = [send(h, 1.0) for _ in range(3)]
    r = h.received_ack(ack((others[0].pn, others[-1].pn)), APP, 1.1)
    assert r.lost == [probe]
    assert h.congestion.congestion_window == cwnd
    # The same with an ordinary packet halves the window.
    lost = send(h, 2.0)
    more = [send(h, 2.0) for _ in range(3)]
    r = h.received_ack(ack((more[0].pn, more[-1].pn)), APP, 2.1)
    assert r.lost == [lost]
    assert h.congestion.congestion_window == cwnd // 2


def test_persistent_congestion() -> None:
    h = make_handler()
    rtt_sample(h)  # persistent congestion duration: 3 * (0.1 + 0.2 + 0.025) = 0.975 s
    p1, _p2, _p3, p4 = send(h, 1.0), send(h, 1.5), send(h, 2.1), send(h, 2.2)
    r = h.received_ack(ack((p4.pn, p4.pn)), APP, 2.3)
    assert len(r.lost) == 3 and r.lost[0] is p1  # spanning 1.0 .. 2.1 > 0.975
    # Collapsed to the minimum window, which ends recovery; then (RFC 9002 §A.7 order: losses before
    # acknowledgments) the acknowledged packet grows it in slow start.
    assert h.congestion.congestion_window == 2 * MDS + MDS
    assert h.congestion.in_slow_start()


def test_no_persistent_congestion_when_a_packet_in_between_was_acked() -> None:
    h = make_handler()
    rtt_sample(h)
    p1, p2 = send(h, 1.0), send(h, 1.5)
    r = h.received_ack(ack((p2.pn, p2.pn)), APP, 1.6)
    assert r.lost == [p1]
    assert h.congestion.congestion_window == 16 * MDS
    _p3, p4 = send(h, 2.1), send(h, 2.2)
    r = h.received_ack(ack((p4.pn, p4.pn)), APP, 2.3)
    assert len(r.lost) == 1  # a new congestion event, but not persistent congestion
    assert h.congestion.congestion_window == 8 * MDS


def test_no_persistent_congestion_for_packets_before_first_rtt_sample() -> None:
    h = make_handler()
    p1 = send(h, 0.0)
    send(h, 1.0)
    send(h, 2.0)
    p4 = send(h, 2.5)
    p5 = send(h, 2.6)
    r = h.received_ack(ack((p4.pn, p5.pn)), APP, 2.7)  # first RTT sample now
    assert r.lost[0] is p1
    assert h.congestion.congestion_window == 16 * MDS


def test_ack_only_packets_and_ignore_below() -> None:
    h = make_handler()
    a = send(h, 0.0, ack_eliciting=False, largest_acked=41)
    b = send(h, 0.1, largest_acked=57)
    assert h.bytes_in_flight == MDS  # only the ack-eliciting one is in flight here
    assert h.loss_detection_timeout() is not None
    r = h.received_ack(ack((a.pn, b.pn)), APP, 0.2)
    assert r.ignore_below == 58
    assert r.rtt_updated
    assert h.bytes_in_flight == 0
    assert h.loss_detection_timeout() is None


def test_queue_probe_packet_takes_oldest_out_of_flight() -> None:
    h = make_handler()
    a, b = send(h, 0.0), send(h, 0.1)
    assert h.queue_probe_packet(APP) is a
    assert h.bytes_in_flight == MDS
    assert h.queue_probe_packet(APP) is b
    assert h.queue_probe_packet(APP) is None
    assert h.bytes_in_flight == 0


def test_retry_and_0rtt_rejection() -> None:
    h = make_handler(confirmed=False)
    i = send(h, 0.0, INITIAL)
    z = send(h, 0.0, APP)
    z.is_0rtt = True
    void = h.reset_for_retry(0.05)
    assert void == [i, z]
    assert h.bytes_in_flight == 0
    assert h.rtt.smoothed_rtt == pytest.approx(0.05)
    # Packet numbers continue after a Retry (RFC 9000 §17.2.5.3).
    assert h.pop_packet_number(INITIAL) == i.pn + 1
    z2 = send(h, 0.1, APP)
    z2.is_0rtt = True
    one = send(h, 0.1, APP)
    assert h.drop_0rtt_packets(0.2) == [z2]
    assert h.bytes_in_flight == MDS
    assert h.outstanding(APP) == [one]


def test_send_mode_congestion_and_pacing_limits() -> None:
    h = make_handler()
    now = 0.0
    modes = []
    for _ in range(40):
        mode = h.send_mode(now)
        modes.append(mode)
        if mode != SendMode.ANY:
            break
        send(h, now)
    # The pacer allows one burst (10 packets), then asks to wait.
    assert modes[-1] == SendMode.PACING_LIMITED
    assert len(modes) == 11
    wake = h.time_until_send(now)
    assert wake >= now + 0.001
    assert h.send_mode(wake) == SendMode.ANY
    # Fill the window: only ACKs may be sent.
    t = wake
    while h.bytes_in_flight < h.congestion.congestion_window:
        send(h, t)
        t += 0.01
    assert h.send_mode(t) == SendMode.ACK_ONLY


def test_reused_packet_number_rejected() -> None:
    h = make_handler()
    p = send(h, 0.0)
    with pytest.raises(ValueError):
        h.sent_packet(SentPacket(p.pn, APP, 0.1, 100, True, True, []))


class Recorder(ConnectionTracer):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def updated_metrics(self, rtt: Any, cwnd: int, bytes_in_flight: int, packets_in_flight: int) -> None:
        self.events.append(("metrics", cwnd, bytes_in_flight, packets_in_flight))

    def lost_packet(self, packet_type: str, pn: int, trigger: str) -> None:
        self.events.append(("lost", packet_type, pn, trigger))

    def set_loss_timer(self, timer_type: str, level: Any, time: float) -> None:
        self.events.append(("set_timer", timer_type, level, round(time, 6)))

    def loss_timer_expired(self, timer_type: str, level: Any) -> None:
        self.events.append(("expired", timer_type, level))


def test_tracer_hooks() -> None:
    tracer = Recorder()
    h = make_handler(tracer=tracer)
    p = send(h, 0.0)
    assert ("metrics", 32 * MDS, MDS, 1) in tracer.events
    assert ("set_timer", "pto", "1RTT", round(0.999 + 0.025, 6)) in tracer.events
    h.received_ack(ack((p.pn, p.pn)), APP, 0.1)
    assert tracer.events[-1] == ("metrics", 32 * MDS, 0, 0)
    pkts = [send(h, 1.0 + i * 0.01) for i in range(5)]
    h.received_ack(ack((pkts[3].pn, pkts[3].pn)), APP, 1.1)
    assert ("lost", "1RTT", pkts[0].pn, "reordering_threshold") in tracer.events
    assert any(e[:3] == ("set_timer", "ack", "1RTT") for e in tracer.events)
    h.on_loss_detection_timeout(alarm_of(h))
    assert ("expired", "ack", "1RTT") in tracer.events
    assert ("lost", "1RTT", pkts[1].pn, "time_threshold") in tracer.events


def test_ack_only_history_is_bounded() -> None:
    h = make_handler()
    for i in range(1000):
        send(h, i * 0.001, ack_eliciting=False, largest_acked=i)
    assert len(h.outstanding(APP)) == 256
    p = send(h, 1.0)
    r = h.received_ack(ack((p.pn - 10, p.pn)), APP, 1.1)
    assert len(r.acked) == 11
    assert r.ignore_below == 1000 - 1 + 1


def test_reset_path_gives_fresh_rtt_and_congestion_state() -> None:
    h = make_handler()
    rtt_sample(h, rtt=0.02)
    old = h.congestion
    pkts = [send(h, 1.0) for _ in range(5)]
    h.received_ack(ack((pkts[4].pn, pkts[4].pn)), APP, 1.02)
    assert h.packets_lost == 2 and h.bytes_lost == 2 * MDS
    assert old.congestion_window == 16 * MDS
    new = NewRenoSender(h.rtt, MDS)
    h.reset_path(new, 2.0)
    assert h.congestion is new and new.congestion_window == 32 * MDS
    assert not h.rtt.has_measurement
    # The packets still in flight stay tracked; the pending loss timer fires as before.
    assert h.bytes_in_flight == 2 * MDS
    assert alarm_of(h) == pytest.approx(1.0 + 9 / 8 * 0.02)
    res = h.on_loss_detection_timeout(2.0)
    assert res.lost == pkts[2:4]
    assert h.bytes_in_flight == 0
    assert h.loss_detection_timeout() is None


def test_too_many_tracked_packets_stops_sending() -> None:
    from quicsilver.ackhandler.sent import MAX_TRACKED_SENT_PACKETS

    h = make_handler()
    for i in range(MAX_TRACKED_SENT_PACKETS - 1):
        send(h, i * 1e-6)
    assert h.send_mode(1.0) == SendMode.ACK_ONLY  # the window is long full
    send(h, 1.0)
    assert h.send_mode(1.0) == SendMode.NONE  # not even ACKs or probes: quic-go's MaxTrackedSentPackets


def test_peer_ack_delay_exponent() -> None:
    h = make_handler()
    h.peer_ack_delay_exponent = 0
    rtt_sample(h)
    p = send(h, 2.0)
    h.received_ack(ack((p.pn, p.pn), delay=10_000), APP, 2.2)  # 10 ms at exponent 0
    assert h.rtt.smoothed_rtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.19)


def test_default_packet_number_skips_fall_once_in_each_period() -> None:
    """RFC 9000 §21.4 defence, drawn from the OS (no rng given): one skip per period, the period
    doubling from 256 up to the cap, never two numbers in a row."""
    from quicsilver.ackhandler.packet_number_generator import (
        SKIP_PACKET_INITIAL_PERIOD,
        SkippingPacketNumberGenerator,
    )

    for _ in range(50):
        gen = SkippingPacketNumberGenerator(max_period=1024)
        skipped: list[int] = []
        last = -1
        for _ in range(12_000):
            skip, pn = gen.pop()
            if skip is not None:
                skipped.append(skip)
                assert pn == skip + 1
            assert pn > last
            last = pn
        # Each skip lies 2 .. 2 + 2 * period - 1 numbers after the next number to send once the
        # previous skip was made (the skipped number + 2).
        previous_next = 0
        period = SKIP_PACKET_INITIAL_PERIOD
        for skip in skipped:
            assert previous_next + 2 <= skip < previous_next + 2 + 2 * period
            previous_next = skip + 2
            period = min(2 * period, 1024)
        assert len(skipped) >= 5
