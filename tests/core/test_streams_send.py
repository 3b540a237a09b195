"""The sending part of a stream (RFC 9000 §3.1, §3.5, §4.1, §13.3)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicsilver.core.flowcontrol import SendFlowController
from quicsilver.core.send_stream import RangeSet, SendStream, SendStreamState
from quicsilver.errors import StreamError
from quicsilver.wire.frames import DataBlockedFrame, ResetStreamFrame, StreamDataBlockedFrame, StreamFrame
from tests.core.test_streams_support import RecordingEvents, RecordingSender

S = SendStreamState


def make_stream(
    window: int = 1 << 20, conn_window: int = 1 << 20, buffer: int = 1 << 16, stream_id: int = 4
) -> tuple[SendStream, RecordingSender, RecordingEvents, SendFlowController]:
    sender = RecordingSender()
    events = RecordingEvents()
    conn = SendFlowController(conn_window)
    stream = SendStream(
        stream_id,
        sender=sender,
        events=events,
        connection_flow=conn,
        send_window=window,
        send_buffer_size=buffer,
    )
    return stream, sender, events, conn


def pop_all(stream: SendStream, max_size: int = 1200) -> list[StreamFrame]:
    frames = []
    while (frame := stream.pop_stream_frame(max_size)) is not None:
        frames.append(frame)
    return frames


def assemble(frames: list[StreamFrame]) -> bytes:
    buf = bytearray()
    for frame in sorted(frames, key=lambda f: f.offset):
        end = frame.offset + len(frame.data)
        if end > len(buf):
            buf.extend(b"\0" * (end - len(buf)))
        buf[frame.offset : end] = frame.data
    return bytes(buf)


# -- RangeSet ---------------------------------------------------------------------------------------


@settings(max_examples=100, derandomize=True)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 60), st.integers(0, 20)), max_size=30))
def test_rangeset_matches_a_set_model(ops: list[tuple[bool, int, int]]) -> None:
    ranges = RangeSet()
    model: set[int] = set()
    for add, start, length in ops:
        if add:
            ranges.add(start, start + length)
            model.update(range(start, start + length))
        else:
            ranges.subtract(start, start + length)
            model.difference_update(range(start, start + length))
        covered = {i for s, e in ranges for i in range(s, e)}
        assert covered == model
        pairs = list(ranges)
        assert all(s < e for s, e in pairs)
        assert all(pairs[i][1] < pairs[i + 1][0] for i in range(len(pairs) - 1))  # merged, sorted
        gaps = ranges.gaps(10, 50)
        assert {i for s, e in gaps for i in range(s, e)} == set(range(10, 50)) - model


# -- the state machine, table-driven ------------------------------------------------------------------


def act(stream: SendStream, action: str, log: list[StreamFrame]) -> None:
    if action == "write":
        stream.write(b"hello")
    elif action == "close":
        stream.close()
    elif action == "send":
        log.extend(pop_all(stream))
    elif action == "ack":
        for frame in log:
            stream.on_frame_acked(frame)
    elif action == "reset":
        stream.reset(7)
    elif action == "ack_reset":
        stream.on_reset_acked()
    elif action == "stop_sending":
        stream.handle_stop_sending(9)
    else:
        raise AssertionError(action)


STATE_CASES = [
    ("new", [], S.READY),
    ("write-only", ["write"], S.READY),
    ("send", ["write", "send"], S.SEND),
    ("send-fin", ["write", "close", "send"], S.DATA_SENT),
    ("fin-in-two-steps", ["write", "send", "close", "send"], S.DATA_SENT),
    ("empty-fin", ["close", "send"], S.DATA_SENT),
    ("all-acked", ["write", "close", "send", "ack"], S.DATA_RECVD),
    ("acked-no-fin", ["write", "send", "ack"], S.SEND),
    ("reset-ready", ["reset"], S.RESET_SENT),
    ("reset-send", ["write", "send", "reset"], S.RESET_SENT),
    ("reset-data-sent", ["write", "close", "send", "reset"], S.RESET_SENT),
    ("reset-acked", ["write", "send", "reset", "ack_reset"], S.RESET_RECVD),
    ("reset-after-data-recvd-ignored", ["write", "close", "send", "ack", "reset"], S.DATA_RECVD),
    ("stop-sending", ["write", "send", "stop_sending"], S.RESET_SENT),
    ("stop-sending-after-reset", ["reset", "stop_sending"], S.RESET_SENT),
    ("ack-reset-without-reset", ["write", "send", "ack_reset"], S.SEND),
]


@pytest.mark.parametrize(
    ("actions", "expected"), [c[1:] for c in STATE_CASES], ids=[c[0] for c in STATE_CASES]
)
def test_send_state_transitions(actions: list[str], expected: SendStreamState) -> None:
    stream, _, _, _ = make_stream()
    log: list[StreamFrame] = []
    for action in actions:
        act(stream, action, log)
    assert stream.state is expected


@settings(max_examples=300, derandomize=True)
@given(
    st.lists(
        st.sampled_from(["write", "close", "send", "ack", "reset", "ack_reset", "stop_sending", "lose"]),
        max_size=25,
    )
)
def test_random_operation_sequences_keep_invariants(actions: list[str]) -> None:
    stream, sender, _, _ = make_stream(window=12, conn_window=30, buffer=8)
    log: list[StreamFrame] = []
    written = bytearray()
    for action in actions:
        if action == "lose":
            for frame in log:
                stream.on_frame_lost(frame)
            continue
        if action == "write" and stream.reset_code is not None:
            with pytest.raises(StreamError):
                stream.write(b"x")
            continue
        try:
            before = stream.unsent_bytes
            if action == "write":
                n = stream.write(b"hello")
                written += b"hello"[:n]
                assert stream.unsent_bytes == before + n <= 8
            else:
                act(stream, action, log)
        except ValueError:
            assert action == "write"  # write after close()
        for frame in log:
            assert frame.offset + len(frame.data) <= 12  # never past the stream window
    # Everything sent is a prefix of what was written, at the right offsets.
    for frame in log:
        assert bytes(frame.data) == bytes(written[frame.offset : frame.offset + len(frame.data)])
    resets = [f for f in sender.control if isinstance(f, ResetStreamFrame)]
    if stream.reset_code is not None:
        assert resets and resets[0].final_size == max((f.offset + len(f.data) for f in log), default=0)


# -- writing and backpressure -------------------------------------------------------------------------


def test_write_accepts_up_to_buffer_space_and_signals_writable() -> None:
    stream, sender, events, _ = make_stream(buffer=1000)
    assert stream.write(b"a" * 600) == 600
    assert stream.write(b"b" * 600) == 400
    assert stream.write(b"c") == 0
    assert stream.writable() == 0
    assert sender.has_data == [4, 4]
    frames = pop_all(stream, 500)
    assert assemble(frames) == b"a" * 600 + b"b" * 400
    assert ("writable", 4) in events.events
    assert stream.writable() == 1000


def test_write_after_close_is_an_error() -> None:
    stream, _, _, _ = make_stream()
    stream.close()
    with pytest.raises(ValueError):
        stream.write(b"x")


def test_write_after_reset_raises_stream_error_with_code() -> None:
    stream, _, _, _ = make_stream()
    stream.reset(0x42)
    with pytest.raises(StreamError) as exc:
        stream.write(b"x")
    assert exc.value.code == 0x42
    assert not exc.value.remote


@pytest.mark.parametrize("max_size", [3, 4, 5, 10, 63, 64, 65, 66, 100, 1200, 16384, 16390])
@pytest.mark.parametrize("stream_id", [0, 4, 1 << 20])
def test_frames_fit_max_size_including_header(max_size: int, stream_id: int) -> None:
    stream, _, _, _ = make_stream(buffer=1 << 17, stream_id=stream_id)
    payload = bytes(random.Random(max_size).randbytes(40_000))
    stream.write(payload)
    stream.close()
    frames = pop_all(stream, max_size)
    for frame in frames:
        assert frame.length() <= max_size
    sent = assemble(frames)
    assert sent == payload[: len(sent)]
    if max_size >= 16:  # room for the largest header here and some data: everything goes out
        assert sent == payload
        assert frames[-1].fin


def test_empty_fin_only_frame_after_all_data_sent() -> None:
    stream, _, _, _ = make_stream()
    stream.write(b"abc")
    (frame,) = pop_all(stream)
    assert not frame.fin
    stream.close()
    (fin,) = pop_all(stream)
    assert fin == StreamFrame(4, 3, b"", True)


# -- flow control -------------------------------------------------------------------------------------


def test_stream_flow_control_limits_and_blocked_once_per_limit() -> None:
    stream, sender, _, _ = make_stream(window=100)
    stream.write(b"x" * 300)
    frames = pop_all(stream)
    assert sum(len(f.data) for f in frames) == 100
    assert not stream.can_send_now()
    assert sender.control == [StreamDataBlockedFrame(4, 100)]
    assert stream.pop_stream_frame(1200) is None
    assert sender.control == [StreamDataBlockedFrame(4, 100)]  # once per limit
    assert stream.is_blocked_at(100)
    stream.update_send_window(50)  # smaller limits are ignored
    assert stream.pop_stream_frame(1200) is None
    stream.update_send_window(250)
    assert not stream.is_blocked_at(100)
    frames = pop_all(stream)
    assert sum(len(f.data) for f in frames) == 150
    assert sender.control[-1] == StreamDataBlockedFrame(4, 250)


def test_connection_flow_control_limits_and_data_blocked() -> None:
    stream, sender, _, conn = make_stream(conn_window=50)
    stream.write(b"y" * 80)
    frames = pop_all(stream)
    assert sum(len(f.data) for f in frames) == 50
    assert stream.blocked_by_connection()
    assert sender.control == [DataBlockedFrame(50)]
    conn.update_limit(80)
    assert stream.can_send_now()
    assert sum(len(f.data) for f in pop_all(stream)) == 30


def test_fin_is_sent_even_at_the_flow_control_limit() -> None:
    stream, _, _, _ = make_stream(window=5)
    stream.write(b"12345")
    stream.close()
    (frame,) = pop_all(stream)
    assert frame == StreamFrame(4, 0, b"12345", True)


# -- acknowledgement, loss, retransmission ------------------------------------------------------------


def test_retransmission_of_lost_ranges_gives_identical_bytes_before_new_data() -> None:
    rng = random.Random(5)
    payload = rng.randbytes(20_000)
    stream, _, _, _ = make_stream(buffer=1 << 16)
    stream.write(payload[:10_000])
    first = pop_all(stream, 700)
    lost = first[1::3]
    for frame in first:
        if frame in lost:
            stream.on_frame_lost(frame)
        else:
            stream.on_frame_acked(frame)
    stream.write(payload[10_000:])
    stream.close()
    second = pop_all(stream, 1000)
    # The lost ranges come first, in offset order, before any new data.
    n_retx = sum(1 for f in second if f.offset < 10_000)
    assert all(f.offset < 10_000 for f in second[:n_retx])
    assert all(f.offset >= 10_000 for f in second[n_retx:])
    retransmitted = assemble([f for f in second if f.offset < 10_000])
    for frame in lost:
        end = frame.offset + len(frame.data)
        assert retransmitted[frame.offset : end] == payload[frame.offset : end]
    everything = [f for f in first if f not in lost] + second
    assert assemble(everything) == payload


def test_partially_acked_lost_range_only_resends_the_gap() -> None:
    stream, _, _, _ = make_stream()
    stream.write(bytes(range(200)))
    big = stream.pop_stream_frame(300)
    assert big is not None and len(big.data) == 200
    # A retransmission of the middle was acknowledged before the original was declared lost.
    stream.on_frame_acked(StreamFrame(4, 50, big.data[50:100], False))
    stream.on_frame_lost(big)
    frames = pop_all(stream)
    assert [(f.offset, len(f.data)) for f in frames] == [(0, 50), (100, 100)]
    assert assemble([*frames, StreamFrame(4, 50, big.data[50:100])]) == bytes(range(200))


def test_lost_fin_is_retransmitted_alone() -> None:
    stream, _, _, _ = make_stream()
    stream.write(b"data")
    data_frame = stream.pop_stream_frame(1200)
    stream.close()
    fin_frame = stream.pop_stream_frame(1200)
    assert data_frame is not None and fin_frame is not None and fin_frame.fin
    stream.on_frame_acked(data_frame)
    stream.on_frame_lost(fin_frame)
    assert pop_all(stream) == [StreamFrame(4, 4, b"", True)]


def test_send_buffer_memory_released_as_data_is_acked() -> None:
    stream, _, _, _ = make_stream(buffer=1 << 20)
    stream.write(b"z" * 100_000)
    frames = pop_all(stream, 1000)
    assert stream.buffered_bytes == 100_000
    # Acknowledging out of order frees nothing until the prefix is contiguous.
    for frame in frames[50:]:
        stream.on_frame_acked(frame)
    assert stream.buffered_bytes == 100_000
    for i, frame in enumerate(frames[:49]):
        stream.on_frame_acked(frame)
        assert stream.buffered_bytes == 100_000 - sum(len(f.data) for f in frames[: i + 1])
    # The last hole closes: the whole acknowledged prefix goes at once.
    stream.on_frame_acked(frames[49])
    assert stream.buffered_bytes == 0


def test_all_data_acked_completes_the_send_side() -> None:
    stream, sender, _, _ = make_stream()
    stream.write(b"abc")
    stream.close()
    (frame,) = pop_all(stream)
    stream.on_frame_acked(frame)
    stream.on_frame_acked(frame)  # duplicate acks are harmless
    assert stream.state is S.DATA_RECVD
    assert sender.completed == [("send", 4)]


# -- reset and STOP_SENDING ---------------------------------------------------------------------------


def test_reset_sends_reset_stream_with_final_size_and_stops_retransmission() -> None:
    stream, sender, _, _ = make_stream()
    stream.write(b"q" * 5000)
    frames = [stream.pop_stream_frame(1000) for _ in range(3)]  # the rest stays buffered
    assert all(f is not None for f in frames)
    sent = sum(len(f.data) for f in frames if f is not None)
    stream.reset(0x10)
    (reset,) = [f for f in sender.control if isinstance(f, ResetStreamFrame)]
    # RFC 9000 §4.5: the final size is the number of bytes sent.
    assert reset == ResetStreamFrame(4, 0x10, sent)
    assert stream.buffered_bytes == 0
    for frame in frames:
        assert frame is not None
        stream.on_frame_lost(frame)
    assert stream.pop_stream_frame(1200) is None
    assert not stream.has_data()
    # A lost RESET_STREAM is resent until acknowledged.
    assert stream.reset_frame_if_current(reset) == reset
    stream.on_reset_acked()
    assert stream.state is S.RESET_RECVD
    assert stream.reset_frame_if_current(reset) is None
    assert sender.completed == [("send", 4)]


def test_stop_sending_resets_with_its_code_and_tells_the_application() -> None:
    stream, sender, events, _ = make_stream()
    stream.write(b"abc")
    pop_all(stream)
    stream.handle_stop_sending(0x77)
    assert stream.state is S.RESET_SENT
    assert sender.control[-1] == ResetStreamFrame(4, 0x77, 3)
    assert events.events[-1] == ("stop_sending", 4, 0x77)
    with pytest.raises(StreamError) as exc:
        stream.write(b"more")
    assert exc.value.code == 0x77 and exc.value.remote
    # A second STOP_SENDING changes nothing.
    stream.handle_stop_sending(0x78)
    assert len([f for f in sender.control if isinstance(f, ResetStreamFrame)]) == 1


def test_stop_sending_after_all_data_acked_is_ignored() -> None:
    stream, sender, events, _ = make_stream()
    stream.write(b"abc")
    stream.close()
    for frame in pop_all(stream):
        stream.on_frame_acked(frame)
    stream.handle_stop_sending(1)
    assert stream.state is S.DATA_RECVD
    assert not [f for f in sender.control if isinstance(f, ResetStreamFrame)]
    assert not events.events


@pytest.mark.parametrize("observe", ["write", "close", "reset"])
def test_peer_caused_reset_completes_only_once_the_application_met_it(observe: str) -> None:
    stream, sender, _, _ = make_stream()
    stream.write(b"abc")
    pop_all(stream)
    stream.handle_stop_sending(5)
    stream.on_reset_acked()
    assert stream.state is S.RESET_RECVD
    assert not stream.completed and sender.completed == []
    if observe == "write":
        with pytest.raises(StreamError) as exc:
            stream.write(b"x")
        assert exc.value.code == 5 and exc.value.remote
    elif observe == "close":
        stream.close()
    else:
        stream.reset(9)
    assert stream.completed and sender.completed == [("send", 4)]
    with pytest.raises(StreamError):
        stream.write(b"x")
    assert sender.completed == [("send", 4)]


def test_peer_caused_reset_met_before_its_ack() -> None:
    stream, sender, _, _ = make_stream()
    stream.handle_stop_sending(5)
    with pytest.raises(StreamError):
        stream.write(b"x")
    assert sender.completed == []
    stream.on_reset_acked()
    assert sender.completed == [("send", 4)]


@pytest.mark.parametrize("seed", range(40))
def test_chunked_buffer_round_trips_writes_frames_acks_and_losses(seed: int) -> None:
    """Short writes (copied into the tail) and long ones (chunks, kept without a copy when bytes),
    frames spanning chunks, acknowledgements out of order releasing chunks, losses re-cut from the
    remaining chunks: the receiver assembles exactly what was written."""
    rng = random.Random(seed)
    writes = [rng.choice((rng.randint(1, 300), rng.randint(1, 12000))) for _ in range(rng.randint(1, 12))]
    frame_sizes = [rng.randint(30, 1500) for _ in range(rng.randint(1, 8))]
    stream, _, _, _ = make_stream(buffer=1 << 20)
    payload = bytearray()
    for i, size in enumerate(writes):
        data = bytes(rng.getrandbits(8) for _ in range(size))
        kind = i % 3
        written = stream.write(data if kind == 0 else bytearray(data) if kind == 1 else memoryview(data))
        assert written == size
        payload += data
    stream.close()
    delivered: list[StreamFrame] = []
    outstanding: list[StreamFrame] = []
    turn = 0
    while stream.has_data() or outstanding:
        frame = stream.pop_stream_frame(frame_sizes[turn % len(frame_sizes)])
        turn += 1
        if frame is not None:
            outstanding.append(frame)
        if outstanding and (frame is None or rng.random() < 0.5):
            victim = outstanding.pop(rng.randrange(len(outstanding)))
            if rng.random() < 0.2:
                stream.on_frame_lost(victim)
            else:
                delivered.append(victim)
                stream.on_frame_acked(victim)
    assert assemble(delivered) == bytes(payload)
    assert stream.state is S.DATA_RECVD
    assert stream.buffered_bytes == 0
