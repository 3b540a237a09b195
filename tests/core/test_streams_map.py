"""The streams map: stream IDs, limits, dispatch, scheduling, control frames (RFC 9000 §2, §4.6, §13.3)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicsilver.core.streams_map import stream_id_for
from quicsilver.errors import StreamError, StreamLimitReachedError, TransportError, TransportErrorCode
from quicsilver.protocol import Perspective
from quicsilver.wire.frames import (
    DataBlockedFrame,
    MaxDataFrame,
    MaxStreamDataFrame,
    MaxStreamsFrame,
    ResetStreamFrame,
    StopSendingFrame,
    StreamDataBlockedFrame,
    StreamFrame,
    StreamsBlockedFrame,
)
from tests.core.test_streams_support import PEER_PARAMS, Link, drain, make_map

CLIENT, SERVER = Perspective.CLIENT, Perspective.SERVER


# -- stream IDs (RFC 9000 §2.1) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("perspective", "bidi", "expected"),
    [
        (CLIENT, True, [0, 4, 8]),
        (SERVER, True, [1, 5, 9]),
        (CLIENT, False, [2, 6, 10]),
        (SERVER, False, [3, 7, 11]),
    ],
    ids=["client-bidi", "server-bidi", "client-uni", "server-uni"],
)
def test_local_stream_ids_follow_initiator_and_direction_bits(
    perspective: Perspective, bidi: bool, expected: list[int]
) -> None:
    smap, _ = make_map(perspective)
    assert [smap.open_stream(bidi) for _ in range(3)] == expected
    assert [stream_id_for(n, bidi=bidi, initiator=perspective) for n in range(3)] == expected


def test_uni_stream_has_only_a_send_part_locally() -> None:
    smap, _ = make_map(CLIENT)
    sid = smap.open_stream(bidi=False)
    assert smap.get_send_stream(sid) is not None
    assert smap.get_receive_stream(sid) is None


def test_open_stream_beyond_peer_limit_raises_and_queues_streams_blocked_once() -> None:
    params = dict(PEER_PARAMS, initial_max_streams_bidi=2)
    smap, events = make_map(CLIENT, params=params)
    smap.open_stream()
    smap.open_stream()
    assert not smap.can_open_stream()
    for _ in range(2):
        with pytest.raises(StreamLimitReachedError):
            smap.open_stream()
    assert smap.pop_control_frame(100) == StreamsBlockedFrame(True, 2)
    assert smap.pop_control_frame(100) is None
    smap.handle_frame(MaxStreamsFrame(True, 1))  # §4.6: a lower limit is ignored
    assert not smap.can_open_stream()
    smap.handle_frame(MaxStreamsFrame(True, 3))
    assert events.events[-1] == ("available", True)
    assert smap.open_stream() == 8


def test_max_streams_above_2_to_the_60_is_frame_encoding_error() -> None:
    smap, _ = make_map(CLIENT)
    with pytest.raises(TransportError) as exc:
        smap.handle_frame(MaxStreamsFrame(True, (1 << 60) + 1))
    assert exc.value.code == TransportErrorCode.FRAME_ENCODING_ERROR


# -- peer streams --------------------------------------------------------------------------------------


def test_peer_stream_opens_all_lower_streams_of_its_type() -> None:
    smap, events = make_map(SERVER)
    smap.handle_frame(StreamFrame(8, 0, b"x"))
    assert events.opened == [0, 4, 8]
    smap.handle_frame(StreamFrame(4, 0, b"y"))
    smap.handle_frame(StreamFrame(2, 0, b"u"))
    assert events.opened == [0, 4, 8, 2]
    assert smap.get_send_stream(2) is None  # the peer's uni stream is receive-only for us
    assert smap.get_send_stream(8) is not None


def test_peer_exceeding_our_limit_is_stream_limit_error() -> None:
    smap, _ = make_map(SERVER, max_incoming_streams=3, max_incoming_uni_streams=1)
    smap.handle_frame(StreamFrame(stream_id_for(2, bidi=True, initiator=CLIENT), 0, b""))
    with pytest.raises(TransportError) as exc:
        smap.handle_frame(StreamFrame(stream_id_for(3, bidi=True, initiator=CLIENT), 0, b""))
    assert exc.value.code == TransportErrorCode.STREAM_LIMIT_ERROR
    with pytest.raises(TransportError) as exc:
        smap.handle_frame(StopSendingFrame(stream_id_for(3, bidi=True, initiator=CLIENT), 0))
    assert exc.value.code == TransportErrorCode.STREAM_LIMIT_ERROR
    with pytest.raises(TransportError) as exc:
        smap.handle_frame(StreamFrame(stream_id_for(1, bidi=False, initiator=CLIENT), 0, b""))
    assert exc.value.code == TransportErrorCode.STREAM_LIMIT_ERROR


STATE_ERROR_CASES = [
    # (name, perspective, frame) — every one is a STREAM_STATE_ERROR (RFC 9000 §19.4-§19.13)
    ("stream-on-our-uni", CLIENT, StreamFrame(2, 0, b"x")),
    ("stream-on-unopened-local-bidi", CLIENT, StreamFrame(4, 0, b"x")),
    ("reset-on-our-uni", CLIENT, ResetStreamFrame(2, 0, 0)),
    ("stream-data-blocked-on-our-uni", CLIENT, StreamDataBlockedFrame(2, 0)),
    ("stop-sending-on-peer-uni", CLIENT, StopSendingFrame(3, 0)),
    ("max-stream-data-on-peer-uni", CLIENT, MaxStreamDataFrame(3, 100)),
    ("stop-sending-on-unopened-local", CLIENT, StopSendingFrame(6, 0)),
    ("max-stream-data-on-unopened-local", SERVER, MaxStreamDataFrame(5, 100)),
]


@pytest.mark.parametrize(
    ("perspective", "frame"), [c[1:] for c in STATE_ERROR_CASES], ids=[c[0] for c in STATE_ERROR_CASES]
)
def test_stream_state_errors(perspective: Perspective, frame: object) -> None:
    smap, _ = make_map(perspective)
    smap.open_stream(bidi=True)  # stream 0 (client) / 1 (server) exists
    smap.open_stream(bidi=False)  # stream 2 (client) / 3 (server) exists
    with pytest.raises(TransportError) as exc:
        smap.handle_frame(frame)  # type: ignore[arg-type]
    assert exc.value.code == TransportErrorCode.STREAM_STATE_ERROR


def test_frames_for_forgotten_streams_are_ignored() -> None:
    link = Link()
    sid = link.client.open_stream()
    send = link.client.get_send_stream(sid)
    assert send is not None
    send.write(b"ping")
    send.close()
    while link.step():
        for s in list(link.server_events.opened):
            server_send = link.server.get_send_stream(s)
            if server_send is not None and drain(link.server, s, link.now) == b"ping":
                server_send.close()
        recv = link.client.get_receive_stream(sid)
        if recv is not None:
            drain(link.client, sid, link.now)
    assert sid not in link.client and sid not in link.server
    link.server.handle_frame(StreamFrame(sid, 0, b"ping", True))  # a late duplicate
    link.server.handle_frame(StopSendingFrame(sid, 1))
    link.client.handle_frame(MaxStreamDataFrame(sid, 1 << 30))
    assert sid not in link.client and sid not in link.server


# -- scheduling ------------------------------------------------------------------------------------------


def test_round_robin_between_streams_with_data() -> None:
    smap, _ = make_map(CLIENT)
    ids = [smap.open_stream() for _ in range(3)]
    for sid in ids:
        stream = smap.get_send_stream(sid)
        assert stream is not None
        stream.write(b"x" * 3000)
    order = []
    while (frame := smap.pop_stream_frame(1000)) is not None:
        order.append(frame.stream_id)
    assert order[:6] == ids + ids
    assert order.count(ids[0]) == order.count(ids[1]) == order.count(ids[2])


def test_connection_blocked_streams_resume_on_max_data() -> None:
    params = dict(PEER_PARAMS, initial_max_data=1500)
    smap, _ = make_map(CLIENT, params=params)
    a, b = smap.open_stream(), smap.open_stream()
    for sid in (a, b):
        stream = smap.get_send_stream(sid)
        assert stream is not None
        stream.write(b"y" * 2000)
    sent = 0
    while (frame := smap.pop_stream_frame(1000)) is not None:
        sent += len(frame.data)
    assert sent == 1500
    assert smap.pop_control_frame(100) == DataBlockedFrame(1500)
    assert smap.pop_stream_frame(1000) is None
    smap.handle_frame(MaxDataFrame(10_000))
    while (frame := smap.pop_stream_frame(1000)) is not None:
        sent += len(frame.data)
    assert sent == 4000


def test_window_updates_are_packed_as_control_frames() -> None:
    smap, _ = make_map(
        SERVER,
        initial_stream_receive_window=1000,
        initial_connection_receive_window=2000,
        max_stream_receive_window=1000,
        max_connection_receive_window=2000,
    )
    smap.handle_frame(StreamFrame(0, 0, b"a" * 1000))
    smap.handle_frame(StreamFrame(4, 0, b"b" * 600))
    assert not smap.has_data()
    drain(smap, 0, 0.0)
    drain(smap, 4, 0.0)
    assert smap.has_data()
    frames = []
    while (frame := smap.pop_control_frame(100)) is not None:
        frames.append(frame)
    assert frames == [MaxStreamDataFrame(0, 2000), MaxStreamDataFrame(4, 1600), MaxDataFrame(3600)]
    assert not smap.has_data()


def test_auto_tuned_stream_window_raises_connection_window() -> None:
    mib = 1 << 20
    smap, _ = make_map(
        SERVER,
        initial_stream_receive_window=1 * mib,
        max_stream_receive_window=6 * mib,
        initial_connection_receive_window=2 * mib,
        max_connection_receive_window=12 * mib,
    )
    recv_limit = 1 * mib
    conn_limit = 2 * mib
    offset, now = 0, 0.0
    for _ in range(40):
        end = min(recv_limit, conn_limit)
        while offset < end:
            n = min(64 * 1024, end - offset)
            smap.handle_frame(StreamFrame(0, offset, b"\0" * n))
            offset += n
            now += 0.001
            drain(smap, 0, now)
        while (frame := smap.pop_control_frame(100)) is not None:
            if isinstance(frame, MaxStreamDataFrame):
                recv_limit = frame.maximum
            elif isinstance(frame, MaxDataFrame):
                conn_limit = frame.maximum
    stream = smap.get_receive_stream(0)
    assert stream is not None
    assert stream.flow.window_size == 6 * mib
    assert smap.connection_receive_flow.window_size >= 9 * mib
    assert smap.connection_receive_flow.window_size <= 12 * mib


def test_peer_writing_past_our_window_is_flow_control_error() -> None:
    smap, _ = make_map(SERVER, initial_stream_receive_window=1000, initial_connection_receive_window=1500)
    smap.handle_frame(StreamFrame(0, 0, b"a" * 1000))
    with pytest.raises(TransportError) as exc:
        smap.handle_frame(StreamFrame(0, 1000, b"b"))
    assert exc.value.code == TransportErrorCode.FLOW_CONTROL_ERROR
    with pytest.raises(TransportError) as exc:
        smap.handle_frame(StreamFrame(4, 0, b"c" * 501))
    assert exc.value.code == TransportErrorCode.FLOW_CONTROL_ERROR


# -- loss of control frames (RFC 9000 §13.3) --------------------------------------------------------------


def test_lost_max_stream_data_resent_only_if_still_current() -> None:
    smap, _ = make_map(SERVER, initial_stream_receive_window=1000, max_stream_receive_window=1000)
    smap.handle_frame(StreamFrame(0, 0, b"a" * 1000))
    drain(smap, 0, 0.0)
    first = smap.pop_control_frame(100)
    assert first == MaxStreamDataFrame(0, 2000)
    smap.on_frame_lost(first)
    assert smap.pop_control_frame(100) == first  # still the latest limit: resent
    smap.handle_frame(StreamFrame(0, 1000, b"b" * 1000))
    drain(smap, 0, 0.0)
    second = smap.pop_control_frame(100)
    assert second == MaxStreamDataFrame(0, 3000)
    smap.on_frame_lost(first)  # superseded: not resent
    assert smap.pop_control_frame(100) is None
    smap.on_frame_lost(second)
    assert smap.pop_control_frame(100) == second


def test_lost_max_data_resent_only_if_still_current() -> None:
    smap, _ = make_map(SERVER, initial_connection_receive_window=1000, max_connection_receive_window=1000)
    smap.handle_frame(StreamFrame(0, 0, b"a" * 1000))
    drain(smap, 0, 0.0)
    frames = []
    while (frame := smap.pop_control_frame(100)) is not None:
        frames.append(frame)
    (max_data,) = [f for f in frames if isinstance(f, MaxDataFrame)]
    smap.on_frame_lost(max_data)
    assert smap.pop_control_frame(100) == max_data


def test_lost_reset_stream_resent_until_acked_and_stop_sending_until_final_size() -> None:
    smap, _ = make_map(CLIENT)
    sid = smap.open_stream()
    send = smap.get_send_stream(sid)
    recv = smap.get_receive_stream(sid)
    assert send is not None and recv is not None
    send.reset(5)
    recv.cancel_read(6)
    reset = smap.pop_control_frame(100)
    stop = smap.pop_control_frame(100)
    assert reset == ResetStreamFrame(sid, 5, 0)
    assert stop == StopSendingFrame(sid, 6)
    smap.on_frame_lost(reset)
    smap.on_frame_lost(stop)
    assert smap.pop_control_frame(100) == reset
    assert smap.pop_control_frame(100) == stop
    smap.on_frame_acked(reset)
    smap.handle_frame(ResetStreamFrame(sid, 6, 0))  # the peer answers STOP_SENDING
    assert sid not in smap  # both parts done: forgotten
    smap.on_frame_lost(reset)
    smap.on_frame_lost(stop)
    assert smap.pop_control_frame(100) is None


def test_lost_blocked_frames_resent_only_while_blocked() -> None:
    params = dict(PEER_PARAMS, initial_max_stream_data_bidi_remote=10)
    smap, _ = make_map(CLIENT, params=params)
    sid = smap.open_stream()
    send = smap.get_send_stream(sid)
    assert send is not None
    send.write(b"z" * 20)
    assert smap.pop_stream_frame(1000) is not None
    blocked = smap.pop_control_frame(100)
    assert blocked == StreamDataBlockedFrame(sid, 10)
    smap.on_frame_lost(blocked)
    assert smap.pop_control_frame(100) == blocked
    smap.handle_frame(MaxStreamDataFrame(sid, 100))
    smap.on_frame_lost(blocked)
    assert smap.pop_control_frame(100) is None


def test_lost_max_streams_resent_only_if_current() -> None:
    link = Link(server_kwargs={"max_incoming_streams": 1})
    sid = link.client.open_stream()
    send = link.client.get_send_stream(sid)
    assert send is not None
    send.write(b"a")
    send.close()
    link.step()
    server_send = link.server.get_send_stream(sid)
    assert server_send is not None
    server_send.close()
    drain(link.server, sid, 0.0)
    link.step()
    drain(link.client, sid, 0.0)
    assert sid not in link.server
    frame = link.server.pop_control_frame(100)
    assert frame == MaxStreamsFrame(True, 2)
    link.server.on_frame_lost(frame)
    assert link.server.pop_control_frame(100) == frame
    link.server.on_frame_lost(MaxStreamsFrame(True, 1))
    assert link.server.pop_control_frame(100) is None


# -- end to end over the frame link ------------------------------------------------------------------------


def run_sequential_streams(count: int, max_incoming: int) -> Link:
    """The client opens `count` bidi streams one after another; the server echoes and closes each."""
    link = Link(server_kwargs={"max_incoming_streams": max_incoming})
    done = 0
    current: int | None = None
    blocked = 0
    while done < count:
        if current is None:
            try:
                current = link.client.open_stream()
            except StreamLimitReachedError:
                blocked += 1
            else:
                send = link.client.get_send_stream(current)
                assert send is not None
                send.write(f"request {done}".encode())
                send.close()
        link.step()
        for sid in link.server_events.opened:
            data = drain(link.server, sid, link.now)
            server_send = link.server.get_send_stream(sid)
            assert server_send is not None
            server_send.write(data)
            server_send.close()
        link.server_events.opened.clear()
        if current is not None:
            recv = link.client.get_receive_stream(current)
            if recv is not None and recv.readable():
                assert drain(link.client, current, link.now) == f"request {done}".encode()
            if recv is None or recv.at_eof:
                current = None
                done += 1
    return link


def test_max_streams_regranted_so_10000_sequential_streams_succeed_with_limit_100() -> None:
    link = run_sequential_streams(10_000, max_incoming=100)
    # The server re-granted credit as streams closed: the limit moved far past the initial 100.
    assert link.server._local_max_streams[0] >= 10_000
    assert len(link.server) < 100
    assert len(link.client) < 100


def test_1000_concurrent_streams_arrive_intact_at_5_percent_loss() -> None:
    rng = random.Random(1234)
    link = Link(
        client_kwargs={"max_incoming_streams": 1000},
        server_kwargs={"max_incoming_streams": 1000, "max_incoming_uni_streams": 1000},
        loss=0.05,
        reorder=True,
        seed=99,
    )
    payloads: dict[int, bytes] = {}
    for i in range(1000):
        sid = link.client.open_stream(bidi=i % 2 == 0)
        payloads[sid] = rng.randbytes(rng.randrange(0, 3000))
        send = link.client.get_send_stream(sid)
        assert send is not None
        assert send.write(payloads[sid]) == len(payloads[sid])
        send.close()
    received: dict[int, bytearray] = {}
    for _ in range(2000):
        link.step()
        for sid in link.server_events.opened:
            received.setdefault(sid, bytearray())
        for sid in received:
            recv = link.server.get_receive_stream(sid)
            if recv is not None and (recv.readable() or not recv.at_eof):
                received[sid] += recv.read(-1, link.now)
        if len(received) == 1000 and all(
            link.server.get_receive_stream(s) is None or link.server.get_receive_stream(s).at_eof  # type: ignore[union-attr]
            for s in received
        ):
            break
    assert received.keys() == payloads.keys()
    for sid, data in payloads.items():
        assert bytes(received[sid]) == data, sid


def test_blocked_reported_when_new_data_meets_an_exhausted_window() -> None:
    params = dict(PEER_PARAMS, initial_max_stream_data_bidi_remote=10)
    smap, _ = make_map(CLIENT, params=params)
    sid = smap.open_stream()
    send = smap.get_send_stream(sid)
    assert send is not None
    send.write(b"z" * 10)
    assert smap.pop_stream_frame(1000) is not None  # exactly the window: nothing held back yet
    assert smap.pop_control_frame(100) is None
    send.write(b"more")
    assert smap.pop_control_frame(100) == StreamDataBlockedFrame(sid, 10)


def test_stale_streams_blocked_is_not_sent() -> None:
    params = dict(PEER_PARAMS, initial_max_streams_uni=0)
    smap, _ = make_map(CLIENT, params=params)
    with pytest.raises(StreamLimitReachedError):
        smap.open_stream(bidi=False)
    smap.handle_frame(MaxStreamsFrame(False, 5))
    assert smap.pop_control_frame(100) is None


_stream_ids = st.integers(0, 40)
_small = st.integers(0, 3000)
random_frames = st.lists(
    st.one_of(
        st.builds(StreamFrame, _stream_ids, _small, st.binary(max_size=200).map(bytes), st.booleans()),
        st.builds(ResetStreamFrame, _stream_ids, st.integers(0, 9), _small),
        st.builds(StopSendingFrame, _stream_ids, st.integers(0, 9)),
        st.builds(MaxStreamDataFrame, _stream_ids, _small),
        st.builds(StreamDataBlockedFrame, _stream_ids, _small),
        st.builds(MaxDataFrame, _small),
        st.builds(DataBlockedFrame, _small),
        st.builds(MaxStreamsFrame, st.booleans(), st.integers(0, 20)),
        st.builds(StreamsBlockedFrame, st.booleans(), st.integers(0, 20)),
        st.tuples(st.just("read"), _stream_ids),
        st.tuples(st.just("open"), st.booleans()),
        st.tuples(st.just("pack"), st.integers(3, 1500)),
    ),
    max_size=40,
)


@settings(max_examples=150, derandomize=True)
@given(st.sampled_from([CLIENT, SERVER]), random_frames)
def test_random_frames_raise_only_transport_errors(perspective: Perspective, ops: list[object]) -> None:
    """Rule: whatever the peer sends, the map raises TransportError or nothing (never another exception)."""
    smap, _ = make_map(
        perspective,
        max_incoming_streams=4,
        max_incoming_uni_streams=3,
        initial_stream_receive_window=1000,
        initial_connection_receive_window=2500,
        params=dict(PEER_PARAMS, initial_max_streams_bidi=3, initial_max_stream_data_bidi_remote=500),
    )
    sent: list[object] = []
    for op in ops:
        try:
            if isinstance(op, tuple):
                kind, arg = op
                if kind == "read":
                    recv = smap.get_receive_stream(int(arg))
                    if recv is not None:
                        recv.read(-1, 0.0)
                elif kind == "open":
                    sid = smap.open_stream(bool(arg))
                    send = smap.get_send_stream(sid)
                    assert send is not None
                    send.write(b"w" * 700)
                    send.close()
                else:
                    while (frame := smap.pop_control_frame(int(arg))) is not None:
                        sent.append(frame)
                    while (sframe := smap.pop_stream_frame(int(arg))) is not None:
                        assert sframe.length() <= int(arg)
                        sent.append(sframe)
                    for i, f in enumerate(sent):
                        (smap.on_frame_acked if i % 2 else smap.on_frame_lost)(f)  # type: ignore[arg-type]
                    sent.clear()
            else:
                smap.handle_frame(op)  # type: ignore[arg-type]
        except TransportError:
            return
        except (StreamLimitReachedError, StreamError):
            pass


def test_reset_stream_kept_until_the_application_reads_the_reset() -> None:
    smap, events = make_map(SERVER, max_incoming_uni_streams=1)
    smap.handle_frame(StreamFrame(2, 0, b"abc"))
    smap.handle_frame(ResetStreamFrame(2, 0x99, 3))
    assert events.events[-1] == ("reset", 2, 0x99)
    assert 2 in smap  # the code must still be readable
    recv = smap.get_receive_stream(2)
    assert recv is not None
    with pytest.raises(StreamError) as exc:
        recv.read(-1, 0.0)
    assert exc.value.code == 0x99
    assert 2 not in smap
    assert smap.pop_control_frame(100) == MaxStreamsFrame(False, 2)


def test_has_data_is_false_when_every_stream_waits_for_credit() -> None:
    params = dict(PEER_PARAMS, initial_max_data=100)
    smap, _ = make_map(CLIENT, params=params)
    a, b = smap.open_stream(), smap.open_stream()
    for sid in (a, b):
        send = smap.get_send_stream(sid)
        assert send is not None
        send.write(b"x" * 80)
    assert smap.has_data()
    while smap.pop_stream_frame(1000) is not None:
        pass
    while smap.pop_control_frame(100) is not None:
        pass
    assert not smap.has_data()  # both streams wait for MAX_DATA: nothing to pack
    smap.handle_frame(MaxDataFrame(1000))
    assert smap.has_data()


def test_has_data_drops_streams_that_lost_their_credit_to_another() -> None:
    params = dict(PEER_PARAMS, initial_max_data=100)
    smap, _ = make_map(CLIENT, params=params)
    a, b = smap.open_stream(), smap.open_stream()
    for sid, n in ((a, 100), (b, 50)):
        send = smap.get_send_stream(sid)
        assert send is not None
        send.write(b"x" * n)
    frame = smap.pop_stream_frame(1000)
    assert frame is not None and frame.stream_id == a and len(frame.data) == 100
    # b is still queued but the connection credit is gone: only DATA_BLOCKED is left to send.
    assert smap.has_data()
    assert smap.pop_stream_frame(1000) is None
    assert smap.pop_control_frame(100) == DataBlockedFrame(100)
    assert not smap.has_data()
    smap.handle_frame(MaxDataFrame(150))
    frame = smap.pop_stream_frame(1000)
    assert frame is not None and frame.stream_id == b and len(frame.data) == 50


def test_reset_mid_transfer_delivers_the_code_over_a_lossy_link() -> None:
    link = Link(loss=0.1, reorder=True, seed=7, packets_per_step=4)
    sid = link.client.open_stream()
    send = link.client.get_send_stream(sid)
    assert send is not None
    payload = random.Random(2).randbytes(200_000)
    written = send.write(payload)
    got = bytearray()
    code: int | None = None
    for step in range(3000):
        link.step()
        if step == 20:
            send.reset(0x1234)
        recv = link.server.get_receive_stream(sid)
        if recv is None:
            break
        try:
            got += recv.read(-1, link.now)
        except StreamError as exc:
            code = exc.code
            break
    assert code == 0x1234
    assert ("reset", sid, 0x1234) in link.server_events.events
    assert bytes(got) == payload[: len(got)] and len(got) < written
    # The reset is acknowledged eventually; the server's credit for the final size is released.
    for _ in range(200):
        link.step()
    assert (
        link.server.connection_receive_flow.bytes_read == link.server.connection_receive_flow.highest_received
    )


def test_backpressure_writable_event_after_acknowledged_progress() -> None:
    link = Link(client_kwargs={"send_buffer_size": 10_000})
    sid = link.client.open_stream(bidi=False)
    send = link.client.get_send_stream(sid)
    assert send is not None
    payload = random.Random(4).randbytes(100_000)
    sent = send.write(payload)
    assert sent == 10_000
    received = bytearray()
    while sent < len(payload) or len(received) < len(payload):
        link.step()
        recv = link.server.get_receive_stream(sid)
        if recv is not None:
            received += recv.read(-1, link.now)
        if ("writable", sid) in link.client_events.events:
            link.client_events.events.clear()
            sent += send.write(payload[sent:])
    assert bytes(received) == payload


def test_stopped_stream_kept_until_the_application_meets_the_reset() -> None:
    smap, events = make_map(CLIENT)
    sid = smap.open_stream(bidi=False)
    send = smap.get_send_stream(sid)
    assert send is not None
    send.write(b"data")
    assert smap.pop_stream_frame(1000) is not None
    smap.handle_frame(StopSendingFrame(sid, 0x21))
    assert events.events[-1] == ("stop_sending", sid, 0x21)
    reset = smap.pop_control_frame(100)
    assert reset == ResetStreamFrame(sid, 0x21, 4)
    smap.on_frame_acked(reset)
    assert sid in smap
    with pytest.raises(StreamError) as exc:
        send.write(b"more")
    assert exc.value.code == 0x21 and exc.value.remote
    assert sid not in smap
