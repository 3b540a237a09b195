"""DPLPMTUD for QUIC (RFC 8899 §5, RFC 9000 §14.3): the search, lost probes, black holes."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from quicsilver.ackhandler import SentPacket, SentPacketHandler
from quicsilver.congestion import NewRenoSender, RTTStats
from quicsilver.core.mtu_discoverer import (
    MAX_PROBES,
    MIN_SEARCH_WINDOW,
    PROBE_DELAY_RTTS,
    MTUDiscoverer,
    mtu_probe_frames,
)
from quicsilver.protocol import PacketNumberSpace, Perspective
from quicsilver.qlog.tracer import ConnectionTracer
from quicsilver.wire.frames import AckFrame, PaddingFrame, PingFrame, parse_frame

SRTT = 0.05


@dataclass
class FakeRTT:
    smoothed_rtt: float = SRTT


@dataclass
class MTUTracer(ConnectionTracer):
    updates: list[tuple[int, bool]] = field(default_factory=list)

    def updated_mtu(self, mtu: int, done: bool) -> None:
        self.updates.append((mtu, done))


def run_search(d: MTUDiscoverer, path_mtu: int, now: float, max_probes: int = 40) -> tuple[int, float]:
    """Drive probes over a path carrying ``path_mtu`` bytes until the search ends; (probes, now)."""
    probes = 0
    while not d.done:
        due = d.next_probe_time()
        assert due is not None
        now = max(now, due)
        assert d.should_send_probe(now)
        size = d.next_probe_size()
        d.on_probe_sent(size, now)
        assert not d.should_send_probe(now + 100)  # one probe in flight at a time
        probes += 1
        assert probes <= max_probes, "the search does not converge"
        now += SRTT
        if size <= path_mtu:
            d.on_probe_acked(size, now)
        else:
            d.on_probe_lost(size, now)
    return probes, now


def test_nothing_is_probed_before_start() -> None:
    d = MTUDiscoverer(FakeRTT())
    assert d.current_size == 1280
    assert not d.armed
    assert d.next_probe_time() is None
    assert not d.should_send_probe(1000.0)


def opened(d: MTUDiscoverer, now: float = 0.0) -> float:
    """Start ``d`` and lose its opening probe (of the largest size): the binary search begins."""
    d.start(now)
    top = d.next_probe_size()
    assert top == d.max_size
    d.on_probe_sent(top, now)
    d.on_probe_lost(top, now + 0.1)
    return now + 0.1


def test_first_probe_goes_out_5_rtts_after_start_with_the_largest_size() -> None:
    # As quic-go: a connection that ends within a few round trips sends no probe at all.
    rtt = FakeRTT()
    d = MTUDiscoverer(rtt)
    d.start(10.0)
    due = 10.0 + PROBE_DELAY_RTTS * rtt.smoothed_rtt
    assert PROBE_DELAY_RTTS == 5 and d.next_probe_time() == due
    assert not d.should_send_probe(due - 0.001)
    assert d.should_send_probe(due)
    assert d.next_probe_size() == 1452


def test_an_acknowledged_opening_probe_ends_the_search() -> None:
    # Most paths carry the largest size: one probe instead of a binary search.
    d = MTUDiscoverer(FakeRTT())
    d.start(0.0)
    d.on_probe_sent(1452, 0.0)
    d.on_probe_acked(1452, 0.05)
    assert d.current_size == 1452 and d.done and d.next_probe_time() is None


def test_one_lost_opening_probe_starts_the_binary_search() -> None:
    d = MTUDiscoverer(FakeRTT())
    now = opened(d)
    assert d.current_size == 1280 and not d.done
    assert d.next_probe_time() == now
    # Binary search: the middle of [1280, 1452).
    assert d.next_probe_size() == (1280 + 1452) // 2


def test_next_probe_follows_an_acknowledged_one_at_once() -> None:
    # RFC 8899 §5.2: a confirmed probe moves the search on; nothing to wait for.
    d = MTUDiscoverer(FakeRTT())
    opened(d)
    d.on_probe_sent(d.next_probe_size(), 1.0)
    assert d.next_probe_time() is None  # one probe in flight at a time
    d.on_probe_acked(1366, 1.05)
    assert d.current_size == 1366
    assert d.next_probe_time() == 1.05
    assert d.next_probe_size() == (1366 + 1452) // 2


def test_a_lost_probe_is_retried_at_once() -> None:
    d = MTUDiscoverer(FakeRTT())
    opened(d)
    size = d.next_probe_size()
    d.on_probe_sent(size, 1.0)
    d.on_probe_lost(size, 1.2)
    assert d.next_probe_time() == 1.2
    assert d.next_probe_size() == size  # the same size until MAX_PROBES of it are lost
    assert d.current_size == 1280


@pytest.mark.parametrize("path_mtu", [1280, 1290, 1350, 1400, 1420, 1451, 1452, 1500])
def test_search_converges_to_the_path_mtu(path_mtu: int) -> None:
    d = MTUDiscoverer(FakeRTT())
    d.start(0.0)
    probes, _ = run_search(d, path_mtu, 0.0)
    expected_max = min(path_mtu, 1452)
    assert d.current_size <= expected_max
    assert expected_max - d.current_size < MIN_SEARCH_WINDOW
    # log2(173) ~ 8 halvings, each costing at most MAX_PROBES probes.
    assert probes <= 8 * MAX_PROBES
    assert d.next_probe_time() is None


def test_search_up_to_a_larger_configured_limit() -> None:
    d = MTUDiscoverer(FakeRTT(), max_size=9000)
    d.start(0.0)
    run_search(d, 8192, 0.0, max_probes=60)
    assert 8192 - MIN_SEARCH_WINDOW < d.current_size <= 8192


def test_peer_max_udp_payload_size_caps_the_search() -> None:
    d = MTUDiscoverer(FakeRTT(), max_size=9000)
    d.set_peer_max_udp_payload_size(1350)
    assert d.max_size == 1350
    d.start(0.0)
    run_search(d, 9000, 0.0)
    assert 1350 - MIN_SEARCH_WINDOW < d.current_size <= 1350


def test_a_peer_limit_below_the_base_size_lowers_the_base() -> None:
    d = MTUDiscoverer(FakeRTT())
    d.set_peer_max_udp_payload_size(1250)
    assert d.current_size == d.base_size == d.max_size == 1250
    assert d.done
    d.start(0.0)
    assert d.next_probe_time() is None


def test_a_size_is_abandoned_after_three_lost_probes() -> None:
    d = MTUDiscoverer(FakeRTT())
    opened(d)
    first = d.next_probe_size()
    now = 1.0
    for _ in range(MAX_PROBES - 1):
        d.on_probe_sent(first, now)
        d.on_probe_lost(first, now + 0.1)
        now += 1.0
        # Two losses may be chance: the same size is tried again.
        assert d.next_probe_size() == first
    d.on_probe_sent(first, now)
    d.on_probe_lost(first, now + 0.1)
    smaller = d.next_probe_size()
    assert smaller == (1280 + first) // 2
    assert d.current_size == 1280
    # Acknowledging the smaller size never brings the abandoned one back.
    d.on_probe_sent(smaller, now + 1)
    d.on_probe_acked(smaller, now + 1.1)
    assert smaller < d.next_probe_size() < first


def test_an_acknowledged_probe_resets_the_loss_count() -> None:
    d = MTUDiscoverer(FakeRTT())
    opened(d)
    size = d.next_probe_size()
    d.on_probe_sent(size, 1.0)
    d.on_probe_lost(size, 1.1)
    d.on_probe_sent(size, 2.0)
    d.on_probe_acked(size, 2.1)
    nxt = d.next_probe_size()
    for i in range(MAX_PROBES - 1):
        d.on_probe_sent(nxt, 3.0 + i)
        d.on_probe_lost(nxt, 3.1 + i)
    assert d.next_probe_size() == nxt  # only two losses at this size


def test_stale_probe_results_are_ignored_after_a_reset() -> None:
    d = MTUDiscoverer(FakeRTT())
    d.start(0.0)
    size = d.next_probe_size()
    d.on_probe_sent(size, 1.0)
    d.reset(1.01)
    d.on_probe_acked(size, 1.05)
    assert d.current_size == 1280
    assert d.probe_in_flight is None


def test_tracer_sees_every_change_of_size() -> None:
    tracer = MTUTracer()
    d = MTUDiscoverer(FakeRTT(), tracer=tracer)
    d.start(0.0)
    run_search(d, 1452, 0.0)
    sizes = [mtu for mtu, _ in tracer.updates]
    assert sizes == sorted(sizes) and sizes[-1] == d.current_size
    assert tracer.updates[-1][1] is True


def converged(path_mtu: int = 1452) -> tuple[MTUDiscoverer, float]:
    d = MTUDiscoverer(FakeRTT())
    d.start(0.0)
    _, now = run_search(d, path_mtu, 0.0)
    return d, now


def test_black_hole_large_packets_lost_while_small_ones_get_through() -> None:
    d, now = converged()
    large = d.current_size
    assert large > 1400
    # The path MTU shrinks to 1300: full-size packets vanish, a small one sent after them arrives.
    for i in range(3):
        d.on_packet_lost(large, now + 0.01 * i, now + 1)
    assert d.current_size == large  # lost packets alone could be congestion
    d.on_packet_acked(200, now + 0.05, now + 1)
    assert d.current_size == 1280
    assert d.black_holes == 1
    # ... and the search runs again and finds the new, smaller path MTU.
    run_search(d, 1300, now + 1)
    assert 1300 - MIN_SEARCH_WINDOW < d.current_size <= 1300


def test_losses_with_large_packets_getting_through_are_not_a_black_hole() -> None:
    d, now = converged()
    large = d.current_size
    for i in range(10):
        t = now + i * 0.1
        d.on_packet_lost(large, t, t + 0.3)
        d.on_packet_lost(large, t + 0.01, t + 0.3)
        d.on_packet_acked(large, t + 0.02, t + 0.3)  # a later large packet arrived
        d.on_packet_acked(100, t + 0.03, t + 0.3)
    assert d.current_size == large
    assert d.black_holes == 0


def test_small_packets_sent_before_the_losses_prove_nothing() -> None:
    d, now = converged()
    large = d.current_size
    d.on_packet_acked(100, now, now + 1)
    for i in range(5):
        d.on_packet_lost(large, now + 0.1 + i * 0.01, now + 1)
    assert d.current_size == large


def test_repeated_pto_falls_back_to_the_base_size() -> None:
    d, now = converged()
    d.on_pto(1, now)
    assert d.current_size > 1280
    d.on_pto(2, now + 1)
    assert d.current_size == 1280
    assert d.black_holes == 1
    assert d.next_probe_time() == pytest.approx(now + 1 + PROBE_DELAY_RTTS * SRTT)


def test_base_size_below_quic_minimum_is_refused() -> None:
    with pytest.raises(ValueError):
        MTUDiscoverer(FakeRTT(), base_size=1199)


@pytest.mark.parametrize("payload_length", [1, 2, 100, 1400])
def test_probe_frames_fill_the_payload_exactly(payload_length: int) -> None:
    frames = mtu_probe_frames(payload_length)
    assert isinstance(frames[0], PingFrame)
    buf = bytearray()
    for frame in frames:
        frame.append(buf)
    assert len(buf) == payload_length == sum(f.length() for f in frames)
    parsed, pos = parse_frame(buf, 0)
    assert isinstance(parsed, PingFrame)
    if payload_length > 1:
        padding, end = parse_frame(buf, pos)
        assert padding == PaddingFrame(payload_length - 1) and end == payload_length


def test_probe_frames_need_a_payload() -> None:
    with pytest.raises(ValueError):
        mtu_probe_frames(0)


# -- with real recovery: lost probes are not congestion (RFC 9000 §14.4) -------------------------


def lose_first_of_five(mtu_probe: bool) -> tuple[SentPacketHandler, MTUDiscoverer]:
    rtt = RTTStats()
    handler = SentPacketHandler(rtt, NewRenoSender(rtt, 1280), Perspective.CLIENT, rng=random.Random(7))
    for space in (PacketNumberSpace.INITIAL, PacketNumberSpace.HANDSHAKE):
        handler.drop_space(space, 0.0)
    handler.set_handshake_confirmed(0.0)
    d = MTUDiscoverer(rtt)
    d.start(0.0)
    app = PacketNumberSpace.APPLICATION
    size = d.next_probe_size() if mtu_probe else 1280
    sent = []
    for i in range(5):
        pn = handler.pop_packet_number(app)
        probe = mtu_probe and i == 0
        packet_size = size if i == 0 else 1280
        handler.sent_packet(
            SentPacket(pn, app, 1.0 + i * 0.001, packet_size, True, True, [], is_mtu_probe=probe)
        )
        if probe:
            d.on_probe_sent(packet_size, 1.0)
        sent.append(pn)
    # The peer acknowledges all but the first: packet threshold loss (RFC 9002 §6.1.1).
    result = handler.received_ack(AckFrame(((sent[1], sent[-1]),), 0, None), app, 1.1)
    assert [p.pn for p in result.lost] == [sent[0]]
    for p in result.lost:
        if p.is_mtu_probe:
            d.on_probe_lost(p.size, 1.1)
        else:
            d.on_packet_lost(p.size, p.time_sent, 1.1)
    return handler, d


def test_a_lost_probe_leaves_congestion_control_alone() -> None:
    handler, d = lose_first_of_five(mtu_probe=True)
    assert not handler.congestion.in_recovery()
    assert handler.congestion.congestion_window >= 32 * 1280
    assert d.probe_in_flight is None and d.current_size == 1280
    regular, _ = lose_first_of_five(mtu_probe=False)
    assert regular.congestion.in_recovery()
    assert regular.congestion.congestion_window < handler.congestion.congestion_window
