"""Flow control (RFC 9000 §4) and quic-go's receive-window auto-tuning."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from quicsilver.core.flowcontrol import (
    ConnectionReceiveFlowController,
    SendFlowController,
    StreamReceiveFlowController,
)
from quicsilver.errors import TransportError, TransportErrorCode

MiB = 1 << 20


@dataclass
class FakeRTT:
    smoothed_rtt: float


def make_pair(
    stream_window: int = 1 * MiB,
    stream_max: int = 6 * MiB,
    conn_window: int = 2 * MiB,
    conn_max: int = 12 * MiB,
    srtt: float = 0.05,
) -> tuple[StreamReceiveFlowController, ConnectionReceiveFlowController, FakeRTT]:
    rtt = FakeRTT(srtt)
    conn = ConnectionReceiveFlowController(conn_window, conn_max, rtt)
    stream = StreamReceiveFlowController(0, conn, stream_window, stream_max, rtt)
    return stream, conn, rtt


def test_window_update_due_after_a_quarter_consumed() -> None:
    stream, _, _ = make_pair(stream_window=1000, stream_max=1000, conn_window=10_000, conn_max=10_000)
    stream.update_highest_received(1000)
    stream.add_bytes_read(249, now=0.0)
    assert not stream.has_window_update()
    assert stream.get_window_update() == 0
    stream.add_bytes_read(1, now=0.0)
    assert stream.has_window_update()
    assert stream.get_window_update() == 250 + 1000
    assert not stream.has_window_update()


def test_stream_window_violation_is_flow_control_error() -> None:
    stream, _, _ = make_pair(stream_window=1000, stream_max=1000, conn_window=10_000, conn_max=10_000)
    stream.update_highest_received(1000)
    with pytest.raises(TransportError) as exc:
        stream.update_highest_received(1001)
    assert exc.value.code == TransportErrorCode.FLOW_CONTROL_ERROR


def test_connection_window_violation_across_streams() -> None:
    rtt = FakeRTT(0.05)
    conn = ConnectionReceiveFlowController(1500, 1500, rtt)
    a = StreamReceiveFlowController(0, conn, 1000, 1000, rtt)
    b = StreamReceiveFlowController(4, conn, 1000, 1000, rtt)
    a.update_highest_received(1000)
    b.update_highest_received(500)
    with pytest.raises(TransportError) as exc:
        b.update_highest_received(501)
    assert exc.value.code == TransportErrorCode.FLOW_CONTROL_ERROR


def test_retransmitted_data_is_not_counted_twice() -> None:
    stream, conn, _ = make_pair(stream_window=1000, stream_max=1000, conn_window=1000, conn_max=1000)
    stream.update_highest_received(800)
    stream.update_highest_received(500)
    stream.update_highest_received(800)
    assert conn.highest_received == 800


def read_fast(
    stream: StreamReceiveFlowController, now: float, chunk: int, dt: float, rounds: int
) -> tuple[float, list[int]]:
    """The peer fills every window as soon as it opens; we read `chunk` bytes every `dt` seconds.

    Window updates (stream and connection) are sent as soon as they are due.
    """
    conn = stream._connection
    sizes = []
    for _ in range(rounds):
        conn_credit = conn.receive_window - conn.highest_received
        stream.update_highest_received(min(stream.receive_window, stream.highest_received + conn_credit))
        while stream.bytes_read < stream.highest_received:
            n = min(chunk, stream.highest_received - stream.bytes_read)
            now += dt
            stream.add_bytes_read(n, now)
            conn.get_window_update()
            if stream.get_window_update():
                sizes.append(stream.window_size)
                break
    return now, sizes


def test_window_grows_from_1mib_toward_6mib_when_consumed_fast_and_never_past_it() -> None:
    stream, conn, _ = make_pair(srtt=0.05)
    # 64 KiB every millisecond is 64 MiB/s: a window is consumed far faster than two RTTs.
    _, sizes = read_fast(stream, 0.0, 64 * 1024, 0.001, rounds=60)
    assert stream.window_size == 6 * MiB
    assert max(sizes) == 6 * MiB
    assert 2 * MiB in sizes and 4 * MiB in sizes
    assert all(s <= 6 * MiB for s in sizes)
    # The connection window followed to 1.5x the stream window, within its own maximum.
    assert conn.window_size >= int(1.5 * 6 * MiB)
    assert conn.window_size <= 12 * MiB


def test_window_does_not_grow_when_consumed_slowly() -> None:
    stream, conn, _ = make_pair(srtt=0.01)
    # 64 KiB every 100 ms: a window takes 1.6 s, much longer than 2 RTTs.
    _, sizes = read_fast(stream, 0.0, 64 * 1024, 0.1, rounds=10)
    assert sizes and all(s == 1 * MiB for s in sizes)
    assert stream.window_size == 1 * MiB
    assert conn.window_size == 2 * MiB


def test_no_tuning_without_an_rtt_sample() -> None:
    stream, _, _ = make_pair(srtt=0.0)
    read_fast(stream, 0.0, 64 * 1024, 0.0001, rounds=10)
    assert stream.window_size == 1 * MiB


def test_connection_window_pushed_to_one_and_a_half_times_stream_window_bounded_by_max() -> None:
    stream, conn, _ = make_pair(conn_window=2 * MiB, conn_max=5 * MiB, srtt=0.05)
    read_fast(stream, 0.0, 64 * 1024, 0.001, rounds=60)
    assert stream.window_size == 6 * MiB
    assert conn.window_size == 5 * MiB


def test_connection_window_auto_tunes_on_its_own() -> None:
    rtt = FakeRTT(0.05)
    conn = ConnectionReceiveFlowController(1 * MiB, 3 * MiB, rtt)
    now = 0.0
    for _ in range(20):
        conn.increment_highest_received(conn.receive_window - conn.highest_received)
        while conn.bytes_read < conn.highest_received:
            now += 0.001
            conn.add_bytes_read(64 * 1024, now)
            if conn.get_window_update():
                break
    assert conn.window_size == 3 * MiB


def test_abandon_credits_connection_up_to_final_size() -> None:
    stream, conn, _ = make_pair(stream_window=1000, stream_max=1000, conn_window=1000, conn_max=1000)
    stream.update_highest_received(300)
    stream.add_bytes_read(100, now=0.0)
    stream.abandon(final_size=600)
    # RFC 9000 §4.5: the final size counts against the connection, then all of it is released.
    assert conn.highest_received == 600
    assert conn.bytes_read == 600
    assert conn.has_window_update()
    assert conn.get_window_update() == 1600


def test_abandon_beyond_window_is_flow_control_error() -> None:
    stream, _, _ = make_pair(stream_window=1000, stream_max=1000, conn_window=10_000, conn_max=10_000)
    with pytest.raises(TransportError) as exc:
        stream.abandon(final_size=1001)
    assert exc.value.code == TransportErrorCode.FLOW_CONTROL_ERROR


def test_invalid_windows_rejected() -> None:
    with pytest.raises(ValueError):
        ConnectionReceiveFlowController(0, 10, FakeRTT(0.1))
    with pytest.raises(ValueError):
        ConnectionReceiveFlowController(11, 10, FakeRTT(0.1))


def test_send_flow_blocked_reported_once_per_limit() -> None:
    flow = SendFlowController(100)
    assert flow.newly_blocked_at() is None
    flow.add_bytes_sent(100)
    assert flow.available() == 0
    assert flow.newly_blocked_at() == 100
    assert flow.newly_blocked_at() is None
    assert not flow.update_limit(50)  # RFC 9000 §4.1: a smaller limit is ignored
    assert flow.limit == 100
    assert flow.update_limit(200)
    assert flow.newly_blocked_at() is None
    flow.add_bytes_sent(100)
    assert flow.newly_blocked_at() == 200
    assert flow.newly_blocked_at() is None
