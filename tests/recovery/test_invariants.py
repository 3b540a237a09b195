"""Random sends, ACKs and timer expiries never break the accounting: bytes_in_flight equals the sum of the
in-flight packets still outstanding (and is never negative), and every packet ends up acknowledged, lost
or outstanding exactly once."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from quicsilver.ackhandler import SentPacket, SentPacketHandler
from quicsilver.errors import TransportError
from quicsilver.protocol import PacketNumberSpace, Perspective
from quicsilver.qlog.tracer import ConnectionTracer
from tests.recovery.helpers import APP, HANDSHAKE, INITIAL, ack, make_handler

SPACES = (INITIAL, HANDSHAKE, APP)

op = st.one_of(
    st.tuples(
        st.just("send"),
        st.sampled_from(SPACES),
        st.integers(min_value=20, max_value=1452),
        st.booleans(),
        st.booleans(),
    ),
    st.tuples(st.just("ack"), st.sampled_from(SPACES), st.lists(st.integers(0, 40), min_size=1, max_size=12)),
    st.tuples(st.just("ack_bogus"), st.sampled_from(SPACES), st.integers(1, 5)),
    st.tuples(st.just("advance"), st.floats(min_value=0.0, max_value=0.5)),
    st.tuples(
        st.just("timer"),
    ),
    st.tuples(st.just("drop"), st.sampled_from((INITIAL, HANDSHAKE))),
    st.tuples(
        st.just("confirm"),
    ),
    st.tuples(st.just("probe"), st.sampled_from(SPACES)),
    st.tuples(st.just("received_bytes"), st.integers(0, 3000)),
)


def ranges_of(pns: set[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for pn in sorted(pns):
        if out and out[-1][1] == pn - 1:
            out[-1] = (out[-1][0], pn)
        else:
            out.append((pn, pn))
    return out


def check(h: SentPacketHandler) -> None:
    outstanding = [p for s in SPACES for p in h.outstanding(s)]
    assert h.bytes_in_flight >= 0
    assert h.bytes_in_flight == sum(p.size for p in outstanding if p.counted_in_flight)
    assert h.packets_in_flight == sum(1 for p in outstanding if p.counted_in_flight)
    assert all(p.in_flight == p.counted_in_flight for p in outstanding)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    st.sampled_from([Perspective.CLIENT, Perspective.SERVER]),
    st.lists(op, min_size=1, max_size=60),
)
def test_random_operations_keep_accounting_consistent(perspective: Perspective, ops: list[Any]) -> None:
    h = make_handler(perspective, confirmed=False, tracer=ConnectionTracer())
    now = 0.0
    sent: dict[PacketNumberSpace, list[SentPacket]] = {s: [] for s in SPACES}
    dropped: set[PacketNumberSpace] = set()
    seen: set[int] = set()  # ids of packets reported acked, lost, probed or dropped
    for o in ops:
        kind = o[0]
        if kind == "send":
            _, space, size, eliciting, padding = o
            pn = h.pop_packet_number(space)
            in_flight = eliciting or padding
            p = SentPacket(pn, space, now, size, eliciting, in_flight, [pn])
            h.sent_packet(p)
            if space not in dropped:
                sent[space].append(p)
        elif kind == "ack":
            _, space, picks = o
            candidates = sent[space]
            if not candidates:
                continue
            pns = {candidates[i % len(candidates)].pn for i in picks}
            r = h.received_ack(ack(*ranges_of(pns)), space, now)
            for p in r.acked + r.lost:
                assert id(p) not in seen
                seen.add(id(p))
            assert all(p.pn in pns for p in r.acked)
        elif kind == "ack_bogus":
            _, space, extra = o
            largest = sent[space][-1].pn if sent[space] else -1
            if space in dropped:
                continue
            try:
                h.received_ack(ack((largest + extra, largest + extra)), space, now)
            except TransportError as e:
                assert e.code == 0x0A
            else:
                raise AssertionError("ACK of an unsent packet accepted")
        elif kind == "advance":
            now += o[1]
        elif kind == "timer":
            t = h.loss_detection_timeout()
            if t is not None:
                now = max(now, t)
                res = h.on_loss_detection_timeout(now)
                for p in res.lost:
                    assert id(p) not in seen
                    seen.add(id(p))
        elif kind == "drop":
            h.drop_space(o[1], now)
            dropped.add(o[1])
            for p in sent[o[1]]:
                seen.add(id(p))
            sent[o[1]] = []
        elif kind == "confirm":
            h.set_handshake_confirmed(now)
        elif kind == "probe":
            probe = h.queue_probe_packet(o[1])
            if probe is not None:
                assert probe.ack_eliciting and id(probe) not in seen
                seen.add(id(probe))
        elif kind == "received_bytes":
            h.received_bytes(o[1], now)
        check(h)
        alarm = h.loss_detection_timeout()
        if alarm is not None:
            assert alarm >= 0
        h.send_mode(now)
    # Every packet is accounted for exactly once: outstanding, or reported (acked/lost/probed/dropped).
    outstanding = {id(p) for s in SPACES for p in h.outstanding(s)}
    assert not outstanding & seen
    for space in SPACES:
        for p in sent[space]:
            if p.ack_eliciting:
                assert id(p) in outstanding or id(p) in seen


@settings(max_examples=150, derandomize=True, deadline=None)
@given(
    st.integers(min_value=1, max_value=60),
    st.lists(st.tuples(st.integers(0, 80), st.integers(0, 10)), min_size=1, max_size=8),
)
def test_hostile_ack_frames_raise_only_protocol_violation(n_sent: int, raw: list[tuple[int, int]]) -> None:
    """Any well-formed ACK frame a peer may send either is processed or raises PROTOCOL_VIOLATION."""
    h = make_handler()
    for i in range(n_sent):
        h.sent_packet(SentPacket(h.pop_packet_number(APP), APP, i * 0.01, 1200, True, True, []))
    # Build descending, disjoint ranges from (largest, length) pairs.
    ranges: list[tuple[int, int]] = []
    for top, length in sorted(raw, reverse=True):
        if ranges and top >= ranges[-1][0] - 1:
            continue
        ranges.append((max(0, top - length), top))
    frame = ack(*ranges)
    try:
        r = h.received_ack(frame, APP, 1.0)
    except TransportError as e:
        assert e.code == 0x0A
        return
    assert all(frame.acks_packet(p.pn) for p in r.acked)
    check(h)
