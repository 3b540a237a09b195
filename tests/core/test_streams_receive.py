"""The receiving part of a stream (RFC 9000 §3.2, §4.1, §4.5)."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicsilver.core.flowcontrol import ConnectionReceiveFlowController, StreamReceiveFlowController
from quicsilver.core.receive_stream import MAX_OUT_OF_ORDER_CHUNKS, ReceiveStream, ReceiveStreamState
from quicsilver.errors import StreamError, TransportError, TransportErrorCode
from quicsilver.wire.frames import ResetStreamFrame, StopSendingFrame, StreamFrame
from tests.core.test_streams_support import FakeRTT, RecordingEvents, RecordingSender

S = ReceiveStreamState


def make_stream(
    window: int = 1 << 16, conn_window: int = 1 << 20
) -> tuple[ReceiveStream, RecordingSender, RecordingEvents, ConnectionReceiveFlowController]:
    rtt = FakeRTT()
    conn = ConnectionReceiveFlowController(conn_window, conn_window, rtt)
    flow = StreamReceiveFlowController(1, conn, window, window, rtt)
    sender = RecordingSender()
    events = RecordingEvents()
    return ReceiveStream(1, sender=sender, events=events, flow=flow), sender, events, conn


def frame(offset: int, data: bytes, fin: bool = False) -> StreamFrame:
    return StreamFrame(1, offset, data, fin)


def read_all(stream: ReceiveStream) -> bytes:
    return stream.read(-1, now=0.0)


def test_in_order_delivery_and_eof() -> None:
    stream, sender, events, _ = make_stream()
    stream.handle_stream_frame(frame(0, b"hello "))
    assert stream.readable() == 6
    stream.handle_stream_frame(frame(6, b"world", fin=True))
    assert stream.state is S.DATA_RECVD
    assert stream.read(3, now=0.0) == b"hel"
    assert read_all(stream) == b"lo world"
    assert stream.at_eof
    assert stream.state is S.DATA_READ
    assert read_all(stream) == b""
    assert sender.completed == [("recv", 1)]
    assert events.events == [("readable", 1), ("readable", 1)]


def test_readable_event_is_edge_triggered() -> None:
    stream, _, events, _ = make_stream()
    stream.handle_stream_frame(frame(0, b"a"))
    stream.handle_stream_frame(frame(1, b"b"))
    assert events.events == [("readable", 1)]
    read_all(stream)
    stream.handle_stream_frame(frame(2, b"c"))
    assert events.events == [("readable", 1), ("readable", 1)]


def test_data_accepts_memoryview_of_a_reused_buffer_by_copying() -> None:
    stream, _, _, _ = make_stream()
    packet = bytearray(b"x" * 2000)
    stream.handle_stream_frame(frame(0, memoryview(packet)[:1500]))  # type: ignore[arg-type]
    packet[:] = b"y" * 2000  # the unpacker reuses its buffer
    assert read_all(stream) == b"x" * 1500


@settings(max_examples=150, derandomize=True)
@given(
    size=st.integers(0, 5000),
    seed=st.integers(0, 2**32 - 1),
    n_pieces=st.integers(1, 40),
    duplicates=st.integers(0, 20),
)
def test_reassembly_with_random_chunking_overlap_and_duplication(
    size: int, seed: int, n_pieces: int, duplicates: int
) -> None:
    rng = random.Random(seed)
    payload = rng.randbytes(size)
    frames = []
    # Random pieces covering everything, plus random overlapping and duplicate pieces.
    cuts = sorted(rng.sample(range(1, size), min(n_pieces - 1, size - 1))) if size > 1 else []
    bounds = [0, *cuts, size]
    for a, b in itertools.pairwise(bounds):
        frames.append(frame(a, payload[a:b], fin=b == size))
    for _ in range(duplicates):
        a = rng.randrange(0, size + 1)
        b = rng.randrange(a, size + 1)
        frames.append(frame(a, payload[a:b], fin=b == size and rng.random() < 0.5))
    rng.shuffle(frames)
    stream, _, _, _ = make_stream(window=1 << 16)
    out = bytearray()
    for f in frames:
        stream.handle_stream_frame(f)
        if rng.random() < 0.3:
            out += stream.read(rng.randrange(0, 2000), now=0.0)
    out += read_all(stream)
    assert bytes(out) == payload
    assert stream.at_eof
    assert stream.state is S.DATA_READ
    assert stream.buffered_bytes == 0


def test_tiny_frames_are_coalesced() -> None:
    stream, _, _, _ = make_stream()
    # Out of order: one hole at 0, then 10,000 one-byte frames in ascending order.
    for i in range(1, 10_001):
        stream.handle_stream_frame(frame(i, bytes([i % 256])))
    assert stream.fragments <= 10_000 // 4096 + 2
    stream.handle_stream_frame(frame(0, b"\0"))
    assert read_all(stream) == bytes(i % 256 for i in range(10_001))


def test_tiny_frames_in_descending_order_are_coalesced_with_bounded_copies() -> None:
    stream, _, _, _ = make_stream(window=1 << 20)
    n = 50_000
    for i in range(n, 0, -1):
        stream.handle_stream_frame(frame(i, bytes([i % 251])))
    assert stream.fragments <= n // 4096 + 2
    stream.handle_stream_frame(frame(0, b"\0"))
    assert read_all(stream)[1:] == bytes(i % 251 for i in range(1, n + 1))


def test_a_full_6mib_window_behind_one_hole_is_accepted() -> None:
    stream, _, _, _ = make_stream(window=6 << 20, conn_window=6 << 20)
    payload = random.Random(3).randbytes(6 << 20)
    size = 1200
    for offset in range(size, len(payload), size):
        stream.handle_stream_frame(frame(offset, payload[offset : offset + size]))
    assert stream.fragments > 5000  # no coalescing of full-size frames: no copies
    stream.handle_stream_frame(frame(0, payload[:size]))
    assert stream.fragments == 0
    assert read_all(stream) == payload


def test_scattered_tiny_frames_are_an_error() -> None:
    stream, _, _, _ = make_stream(window=1 << 20)
    with pytest.raises(TransportError) as exc:
        for i in range(10_000):
            stream.handle_stream_frame(frame(2 + 2 * i, b"x"))  # a hole before every byte
    assert exc.value.code == TransportErrorCode.INTERNAL_ERROR
    assert i < MAX_OUT_OF_ORDER_CHUNKS + 100


# -- final size (RFC 9000 §4.5) ----------------------------------------------------------------------


FINAL_SIZE_CASES = [
    ("fin-changed", [frame(0, b"abc", True), frame(0, b"abcd", True)]),
    ("fin-shrunk", [frame(0, b"abc", True), frame(0, b"ab", True)]),
    ("data-beyond-final", [frame(0, b"abc", True), frame(3, b"d")]),
    ("fin-below-received", [frame(0, b"abcdef"), frame(0, b"abc", True)]),
    ("fin-then-out-of-order-beyond", [frame(5, b"", True), frame(4, b"xy")]),
]


@pytest.mark.parametrize("frames", [c[1] for c in FINAL_SIZE_CASES], ids=[c[0] for c in FINAL_SIZE_CASES])
def test_final_size_errors(frames: list[StreamFrame]) -> None:
    stream, _, _, _ = make_stream()
    with pytest.raises(TransportError) as exc:
        for f in frames:
            stream.handle_stream_frame(f)
    assert exc.value.code == TransportErrorCode.FINAL_SIZE_ERROR


@pytest.mark.parametrize(
    ("first", "reset_size"),
    [(frame(0, b"abc", True), 4), (frame(0, b"abc", True), 2), (frame(0, b"abcdef"), 3)],
    ids=["reset-larger-than-fin", "reset-smaller-than-fin", "reset-below-received"],
)
def test_reset_final_size_errors(first: StreamFrame, reset_size: int) -> None:
    stream, _, _, _ = make_stream()
    stream.handle_stream_frame(first)
    with pytest.raises(TransportError) as exc:
        stream.handle_reset_stream(ResetStreamFrame(1, 0, reset_size))
    assert exc.value.code == TransportErrorCode.FINAL_SIZE_ERROR


def test_stream_frame_after_reset_with_other_final_size() -> None:
    stream, _, _, _ = make_stream()
    stream.handle_reset_stream(ResetStreamFrame(1, 5, 10))
    stream.handle_stream_frame(frame(0, b"0123456789", True))  # consistent: ignored
    with pytest.raises(TransportError) as exc:
        stream.handle_stream_frame(frame(10, b"x"))
    assert exc.value.code == TransportErrorCode.FINAL_SIZE_ERROR


# -- flow control ------------------------------------------------------------------------------------


def test_exceeding_stream_window_is_flow_control_error() -> None:
    stream, _, _, _ = make_stream(window=100)
    stream.handle_stream_frame(frame(0, b"x" * 100))
    with pytest.raises(TransportError) as exc:
        stream.handle_stream_frame(frame(100, b"y"))
    assert exc.value.code == TransportErrorCode.FLOW_CONTROL_ERROR


def test_reset_beyond_window_is_flow_control_error() -> None:
    stream, _, _, _ = make_stream(window=100)
    with pytest.raises(TransportError) as exc:
        stream.handle_reset_stream(ResetStreamFrame(1, 0, 101))
    assert exc.value.code == TransportErrorCode.FLOW_CONTROL_ERROR


def test_reading_makes_a_window_update_due() -> None:
    stream, sender, _, _ = make_stream(window=1000)
    stream.handle_stream_frame(frame(0, b"x" * 1000))
    stream.read(249, now=0.0)
    assert sender.window_updates == []
    assert stream.window_update_frame_maximum() == 0
    stream.read(1, now=0.0)
    assert sender.window_updates == [1]
    assert stream.window_update_frame_maximum() == 1250
    assert stream.max_stream_data_is_current(1250)
    assert not stream.max_stream_data_is_current(1000)


def test_no_window_update_once_the_final_size_is_known() -> None:
    stream, sender, _, _ = make_stream(window=1000)
    stream.handle_stream_frame(frame(0, b"x" * 1000, True))
    read_all(stream)
    assert sender.window_updates == []
    assert stream.window_update_frame_maximum() == 0


# -- RESET_STREAM and STOP_SENDING ------------------------------------------------------------------------


def test_reset_delivers_the_code_and_frees_connection_credit() -> None:
    stream, sender, events, conn = make_stream()
    stream.handle_stream_frame(frame(0, b"partial"))
    stream.handle_reset_stream(ResetStreamFrame(1, 0x33, 20))
    assert events.events[-1] == ("reset", 1, 0x33)
    assert stream.state is S.RESET_RECVD
    assert stream.reset_code == 0x33
    assert stream.buffered_bytes == 0
    assert conn.highest_received == 20 and conn.bytes_read == 20
    assert sender.completed == []  # kept until the application has read the reset
    with pytest.raises(StreamError) as exc:
        stream.read(10, now=0.0)
    assert exc.value.code == 0x33 and exc.value.remote
    assert stream.state is S.RESET_READ
    assert not stream.at_eof
    assert sender.completed == [("recv", 1)]
    with pytest.raises(StreamError):
        stream.read(10, now=0.0)  # the reset is sticky
    assert sender.completed == [("recv", 1)]
    # Duplicates of the reset, or late data, change nothing.
    stream.handle_reset_stream(ResetStreamFrame(1, 0x33, 20))
    stream.handle_stream_frame(frame(7, b"more"))
    assert events.events.count(("reset", 1, 0x33)) == 1


def test_reset_after_all_data_received_is_ignored() -> None:
    stream, _, events, _ = make_stream()
    stream.handle_stream_frame(frame(0, b"done", True))
    stream.handle_reset_stream(ResetStreamFrame(1, 9, 4))
    assert stream.state is S.DATA_RECVD
    assert read_all(stream) == b"done"
    assert ("reset", 1, 9) not in events.events


def test_cancel_read_sends_stop_sending_and_completes_on_final_size() -> None:
    stream, sender, events, conn = make_stream()
    stream.handle_stream_frame(frame(0, b"abc"))
    stream.cancel_read(0x44)
    assert sender.control == [StopSendingFrame(1, 0x44)]
    assert stream.stop_sending_frame_if_current(StopSendingFrame(1, 0x44)) is not None
    assert conn.bytes_read == 3  # discarded data is credited
    with pytest.raises(StreamError) as exc:
        stream.read(1, now=0.0)
    assert exc.value.code == 0x44 and not exc.value.remote
    stream.handle_stream_frame(frame(3, b"defg"))
    assert conn.bytes_read == 7
    stream.handle_reset_stream(ResetStreamFrame(1, 0x44, 10))
    assert stream.state is S.RESET_READ
    assert conn.bytes_read == 10
    assert ("reset", 1, 0x44) not in events.events  # the application already gave up
    assert sender.completed == [("recv", 1)]
    assert stream.stop_sending_frame_if_current(StopSendingFrame(1, 0x44)) is None


def test_cancel_read_after_reset_reads_the_reset() -> None:
    stream, sender, _, _ = make_stream()
    stream.handle_reset_stream(ResetStreamFrame(1, 3, 0))
    stream.cancel_read(4)
    assert stream.state is S.RESET_READ
    assert sender.completed == [("recv", 1)]
    assert sender.control == []  # no STOP_SENDING for a stream the peer already reset


def test_cancel_read_with_fin_received_completes_at_once() -> None:
    stream, sender, _, _ = make_stream()
    stream.handle_stream_frame(frame(5, b"late", True))
    stream.cancel_read(1)
    assert stream.state is S.DATA_READ
    assert sender.completed == [("recv", 1)]


# -- the state machine -------------------------------------------------------------------------------


STATE_CASES = [
    ("new", [], S.RECV),
    ("data", [frame(0, b"ab")], S.RECV),
    ("fin-with-hole", [frame(2, b"cd", True)], S.SIZE_KNOWN),
    ("all-received", [frame(2, b"cd", True), frame(0, b"ab")], S.DATA_RECVD),
    ("reset-in-recv", [ResetStreamFrame(1, 1, 0)], S.RESET_RECVD),
    ("reset-in-size-known", [frame(2, b"cd", True), ResetStreamFrame(1, 1, 4)], S.RESET_RECVD),
    ("reset-in-data-recvd", [frame(0, b"abcd", True), ResetStreamFrame(1, 1, 4)], S.DATA_RECVD),
    ("empty-fin", [frame(0, b"", True)], S.DATA_RECVD),
]


@pytest.mark.parametrize(
    ("frames", "expected"), [c[1:] for c in STATE_CASES], ids=[c[0] for c in STATE_CASES]
)
def test_receive_state_transitions(
    frames: list[StreamFrame | ResetStreamFrame], expected: ReceiveStreamState
) -> None:
    stream, _, _, _ = make_stream()
    for f in frames:
        if isinstance(f, StreamFrame):
            stream.handle_stream_frame(f)
        else:
            stream.handle_reset_stream(f)
    assert stream.state is expected


frames_strategy = st.lists(
    st.one_of(
        st.builds(
            lambda off, n, fin: frame(off, b"z" * n, fin),
            st.integers(0, 300),
            st.integers(0, 80),
            st.booleans(),
        ),
        st.builds(lambda code, size: ResetStreamFrame(1, code, size), st.integers(0, 5), st.integers(0, 400)),
        st.builds(lambda n: ("read", n), st.integers(-1, 100)),
        st.just(("cancel", 0)),
    ),
    max_size=30,
)


@settings(max_examples=150, derandomize=True)
@given(frames_strategy)
def test_random_frame_sequences_raise_only_transport_errors(
    ops: list[StreamFrame | ResetStreamFrame | tuple[str, int]],
) -> None:
    stream, _, _, conn = make_stream(window=256, conn_window=1024)
    for op in ops:
        try:
            if isinstance(op, StreamFrame):
                stream.handle_stream_frame(op)
            elif isinstance(op, ResetStreamFrame):
                stream.handle_reset_stream(op)
            elif op[0] == "read":
                stream.read(op[1], now=0.0)
            else:
                stream.cancel_read(7)
        except TransportError as exc:
            assert exc.code in (TransportErrorCode.FINAL_SIZE_ERROR, TransportErrorCode.FLOW_CONTROL_ERROR)
            return
        except StreamError:
            assert isinstance(op, tuple) and op[0] == "read"
        # Invariants: readable data is contiguous from the read offset; credit never exceeds receipt.
        assert stream.readable() >= 0
        assert conn.bytes_read <= conn.highest_received <= conn.receive_window
        assert stream.flow.highest_received <= 256
