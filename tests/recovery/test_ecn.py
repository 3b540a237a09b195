"""ECN validation (RFC 9000 §13.4.2, A.4) and the CE congestion reaction (RFC 9002 §7.1)."""

from __future__ import annotations

from quicsilver.ackhandler import ECNState, SentPacketHandler
from quicsilver.ackhandler.sent import SentPacket
from quicsilver.protocol import ECN
from tests.recovery.helpers import APP, INITIAL, MDS, ack, make_handler, send


def state(h: SentPacketHandler) -> ECNState:
    assert h.ecn is not None
    return h.ecn.state


def send_marked(h: SentPacketHandler, n: int, now: float) -> list[SentPacket]:
    return [send(h, now, ecn=h.ecn_marking()) for _ in range(n)]


def span(pkts: list[SentPacket]) -> tuple[int, int]:
    return (pkts[0].pn, pkts[-1].pn)


def test_testing_then_unknown_then_capable() -> None:
    h = make_handler()
    assert h.ecn is not None
    assert h.ecn_marking(INITIAL) == ECN.NOT_ECT
    pkts = send_marked(h, 10, 0.0)
    assert all(p.ecn == ECN.ECT0 for p in pkts)
    assert state(h) is ECNState.UNKNOWN
    assert h.ecn_marking() == ECN.NOT_ECT  # wait for validation
    r = h.received_ack(ack(span(pkts), ecn=(10, 0, 0)), APP, 0.1)
    assert not r.ecn_ce
    assert state(h) is ECNState.CAPABLE
    assert h.ecn_marking() == ECN.ECT0


def test_capable_path_ce_is_congestion() -> None:
    h = make_handler()
    pkts = send_marked(h, 10, 0.0)
    h.received_ack(ack(span(pkts), ecn=(10, 0, 0)), APP, 0.1)
    cwnd = h.congestion.congestion_window
    more = send_marked(h, 2, 0.2)
    r = h.received_ack(ack(span(more), ecn=(11, 0, 1)), APP, 0.3)
    assert r.ecn_ce
    assert h.congestion.congestion_window == cwnd // 2
    assert state(h) is ECNState.CAPABLE


def test_missing_counts_fail_validation() -> None:
    h = make_handler()
    pkts = send_marked(h, 3, 0.0)
    h.received_ack(ack(span(pkts)), APP, 0.1)
    assert state(h) is ECNState.FAILED
    assert h.ecn_marking() == ECN.NOT_ECT


def test_more_marks_than_sent_fail_validation() -> None:
    h = make_handler()
    pkts = send_marked(h, 3, 0.0)
    h.received_ack(ack(span(pkts), ecn=(4, 0, 0)), APP, 0.1)
    assert state(h) is ECNState.FAILED


def test_bleached_marks_fail_validation() -> None:
    h = make_handler()
    pkts = send_marked(h, 3, 0.0)
    h.received_ack(ack(span(pkts), ecn=(1, 0, 0)), APP, 0.1)  # 3 ECT(0) packets, 1 mark
    assert state(h) is ECNState.FAILED


def test_decreasing_counts_fail_validation() -> None:
    h = make_handler()
    a = send_marked(h, 2, 0.0)
    h.received_ack(ack(span(a), ecn=(2, 0, 0)), APP, 0.1)
    b = send_marked(h, 1, 0.2)
    h.received_ack(ack((a[0].pn, b[0].pn), ecn=(1, 0, 0)), APP, 0.3)
    assert state(h) is ECNState.FAILED


def test_all_testing_packets_lost_fails_validation() -> None:
    h = make_handler()
    h.received_ack(ack((send(h, 0.0).pn,) * 2), APP, 0.01)  # an RTT sample
    testing = send_marked(h, 10, 1.0)
    later = [send(h, 1.5) for _ in range(3)]
    r = h.received_ack(ack(span(later)), APP, 1.6)
    assert len(r.lost) == 10
    assert state(h) is ECNState.FAILED
    assert testing[0].ecn == ECN.ECT0


def test_all_ce_mangling_fails_validation() -> None:
    h = make_handler()
    pkts = send_marked(h, 10, 0.0)
    cwnd = h.congestion.congestion_window
    r = h.received_ack(ack(span(pkts), ecn=(0, 0, 10)), APP, 0.1)
    assert not r.ecn_ce  # CE before validation is not trusted
    assert state(h) is ECNState.FAILED
    assert h.congestion.congestion_window >= cwnd


def test_disabled_ecn() -> None:
    h = make_handler(enable_ecn=False)
    assert h.ecn is None
    assert h.ecn_marking() == ECN.NOT_ECT
    p = send(h, 0.0)
    assert h.received_ack(ack((p.pn, p.pn), ecn=(0, 0, 1)), APP, 0.1).acked == [p]
    assert h.bytes_in_flight == 0
    assert p.size == MDS
