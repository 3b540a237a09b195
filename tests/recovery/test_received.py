"""ACK generation (RFC 9000 §13.2): when ACKs are due, what they contain, bounded ranges."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicsilver.ackhandler.received import ReceivedPacketTracker
from quicsilver.protocol import ECN, PacketNumberSpace

APP = PacketNumberSpace.APPLICATION


@pytest.mark.parametrize("space", [PacketNumberSpace.INITIAL, PacketNumberSpace.HANDSHAKE])
def test_initial_and_handshake_ack_immediately(space: PacketNumberSpace) -> None:
    t = ReceivedPacketTracker(space)
    t.received_packet(0, ECN.NOT_ECT, 1.0, True)
    assert t.ack_queued
    assert t.ack_alarm() is None
    ack = t.get_ack_frame(1.0)
    assert ack is not None
    assert ack.ranges == ((0, 0),)
    assert t.get_ack_frame(1.0) is None  # nothing new


def test_every_second_ack_eliciting_packet() -> None:
    t = ReceivedPacketTracker(APP)
    t.received_packet(0, ECN.NOT_ECT, 1.0, True)
    assert not t.ack_queued
    assert t.ack_alarm() == pytest.approx(1.025)
    assert t.get_ack_frame(1.0) is None
    t.received_packet(1, ECN.NOT_ECT, 1.001, True)
    assert t.ack_queued
    assert t.ack_alarm() is None
    ack = t.get_ack_frame(1.002)
    assert ack is not None
    assert ack.ranges == ((0, 1),)
    assert ack.delay == 1000 >> 3  # 1 ms since the largest arrived, exponent 3
    assert ack.ecn is None
    assert not t.ack_queued


def test_max_ack_delay_alarm() -> None:
    t = ReceivedPacketTracker(APP)
    t.received_packet(0, ECN.NOT_ECT, 2.0, True)
    t.received_packet(1, ECN.NOT_ECT, 2.0, False)  # non-ack-eliciting: does not count
    assert not t.ack_queued
    assert t.get_ack_frame(2.024) is None
    ack = t.get_ack_frame(2.025)
    assert ack is not None
    assert ack.ranges == ((0, 1),)
    assert ack.delay == 25_000 >> 3
    assert t.ack_alarm() is None


def test_alarm_is_not_postponed_by_later_packets() -> None:
    t = ReceivedPacketTracker(APP)
    t.received_packet(0, ECN.NOT_ECT, 1.0, True)
    t.get_ack_frame(1.0, only_if_queued=False)  # piggybacked
    t.received_packet(1, ECN.NOT_ECT, 1.010, True)
    assert t.ack_alarm() == pytest.approx(1.035)


def test_non_ack_eliciting_packets_alone_are_not_acknowledged() -> None:
    t = ReceivedPacketTracker(APP)
    for pn in range(5):
        t.received_packet(pn, ECN.NOT_ECT, 1.0, False)
    assert t.get_ack_frame(10.0) is None
    assert t.get_ack_frame(10.0, only_if_queued=False) is None


def test_gap_and_reordering_trigger_immediate_ack() -> None:
    t = ReceivedPacketTracker(APP)
    t.received_packet(0, ECN.NOT_ECT, 1.0, True)
    t.received_packet(1, ECN.NOT_ECT, 1.0, True)
    assert t.get_ack_frame(1.0) is not None
    t.received_packet(3, ECN.NOT_ECT, 1.1, True)  # 2 is missing
    assert t.ack_queued
    ack = t.get_ack_frame(1.1)
    assert ack is not None
    assert ack.ranges == ((3, 3), (0, 1))
    t.received_packet(2, ECN.NOT_ECT, 1.2, True)  # below the largest: reordered
    assert t.ack_queued
    ack = t.get_ack_frame(1.2)
    assert ack is not None
    assert ack.ranges == ((0, 3),)
    assert ack.delay == 100_000 >> 3  # measured from the largest (3), received at 1.1


def test_ce_mark_triggers_immediate_ack_and_counts() -> None:
    t = ReceivedPacketTracker(APP)
    t.received_packet(0, ECN.ECT0, 1.0, True)
    assert not t.ack_queued
    t.received_packet(1, ECN.ECT1, 1.0, False)
    t.received_packet(2, ECN.CE, 1.0, True)
    assert t.ack_queued
    ack = t.get_ack_frame(1.0)
    assert ack is not None
    assert ack.ecn == (1, 1, 1)


def test_ranges_bounded_to_32_newest_kept() -> None:
    t = ReceivedPacketTracker(APP)
    for pn in range(0, 200, 2):
        t.received_packet(pn, ECN.NOT_ECT, 1.0, True)
    ack = t.get_ack_frame(1.0)
    assert ack is not None
    assert len(ack.ranges) == 32
    assert ack.ranges[0] == (198, 198)
    assert ack.ranges[-1] == (136, 136)
    # A packet below the tracked ranges is not reported.
    t.received_packet(1, ECN.NOT_ECT, 1.0, True)
    assert len(t.ranges()) == 32
    assert t.ranges()[0] == (136, 136)


def test_duplicates_and_ignore_below() -> None:
    t = ReceivedPacketTracker(APP)
    for pn in (0, 1, 2, 5, 6, 9):
        t.received_packet(pn, ECN.NOT_ECT, 1.0, True)
    assert t.is_potentially_duplicate(5)
    assert not t.is_potentially_duplicate(4)
    assert not t.is_potentially_duplicate(10)
    t.ignore_below(6)
    assert t.ranges() == [(6, 6), (9, 9)]
    assert t.is_potentially_duplicate(3)  # below the threshold: treated as old
    t.received_packet(4, ECN.NOT_ECT, 1.0, True)
    assert t.ranges() == [(6, 6), (9, 9)]
    t.ignore_below(2)  # never moves back
    assert t.ranges() == [(6, 6), (9, 9)]
    assert t.largest_received == 9


def test_ack_delay_exponent_and_piggyback() -> None:
    t = ReceivedPacketTracker(APP, ack_delay_exponent=0, max_ack_delay=0.01)
    t.received_packet(7, ECN.NOT_ECT, 1.0, True)
    assert t.ack_alarm() is not None  # the first packet: no gap "between" ack-eliciting packets yet
    ack = t.get_ack_frame(1.004, only_if_queued=False)
    assert ack is not None
    assert ack.delay == 4000
    assert ack.ranges == ((7, 7),)


@settings(max_examples=150, derandomize=True, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=120))
def test_ranges_match_the_received_set(pns: list[int]) -> None:
    t = ReceivedPacketTracker(APP)
    for pn in pns:
        t.received_packet(pn, ECN.NOT_ECT, 1.0, True)
    got = t.ranges()
    assert 1 <= len(got) <= 32
    covered: set[int] = set()
    for i, (lo, hi) in enumerate(got):
        assert lo <= hi
        if i:
            assert lo > got[i - 1][1] + 1  # disjoint and not adjacent
        covered.update(range(lo, hi + 1))
    received = set(pns)
    assert covered <= received
    # Everything above the oldest kept range is reported.
    assert {pn for pn in received if pn >= got[0][0]} == covered
    assert max(received) == got[-1][1]
    ack = t.get_ack_frame(1.0, only_if_queued=False)
    assert ack is not None
    assert ack.ranges == tuple(reversed(got))
