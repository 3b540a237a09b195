"""Hostile-peer fuzzing of the connection core (RFC 9000 §11, §12.4; STYLE.md "one inbound entry
point"): random but well-formed frames from an authenticated peer either do nothing or close the
connection with a transport error code; never an INTERNAL_ERROR (which would mean a bug), never an
exception out of ``receive_datagram``, never a hang."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quicsilver.core.events import ConnectionTerminated
from quicsilver.errors import TransportError, TransportErrorCode
from quicsilver.protocol import EncryptionLevel
from quicsilver.wire.frames import (
    AckFrame,
    ConnectionCloseFrame,
    CryptoFrame,
    DataBlockedFrame,
    DatagramFrame,
    Frame,
    HandshakeDoneFrame,
    MaxDataFrame,
    MaxStreamDataFrame,
    MaxStreamsFrame,
    NewConnectionIdFrame,
    NewTokenFrame,
    PathChallengeFrame,
    PathResponseFrame,
    PingFrame,
    ResetStreamFrame,
    RetireConnectionIdFrame,
    StopSendingFrame,
    StreamDataBlockedFrame,
    StreamFrame,
    StreamsBlockedFrame,
)

from .sim import CLIENT_ADDR, SERVER_ADDR, Sim
from .test_connection import craft

_SIM: Sim | None = None

small = st.integers(0, 40)
stream_ids = st.integers(0, 40)
offsets = st.integers(0, 1 << 20)
big = st.integers(0, (1 << 62) - 1)

frames = st.one_of(
    st.builds(PingFrame),
    st.builds(lambda a, n: AckFrame(((a, a + n),), 0, None), small, st.integers(0, 5)),
    st.builds(ResetStreamFrame, stream_ids, big, offsets),
    st.builds(StopSendingFrame, stream_ids, big),
    st.builds(CryptoFrame, offsets, st.binary(max_size=50)),
    st.builds(NewTokenFrame, st.binary(min_size=1, max_size=20)),
    st.builds(StreamFrame, stream_ids, offsets, st.binary(max_size=100), st.booleans()),
    st.builds(MaxDataFrame, big),
    st.builds(MaxStreamDataFrame, stream_ids, big),
    st.builds(MaxStreamsFrame, st.booleans(), st.integers(0, 1 << 60)),
    st.builds(DataBlockedFrame, big),
    st.builds(StreamDataBlockedFrame, stream_ids, big),
    st.builds(StreamsBlockedFrame, st.booleans(), st.integers(0, 1 << 60)),
    st.builds(
        NewConnectionIdFrame,
        st.integers(0, 10),
        st.integers(0, 3),
        st.binary(min_size=1, max_size=20),
        st.binary(min_size=16, max_size=16),
    ),
    st.builds(RetireConnectionIdFrame, st.integers(0, 10)),
    st.builds(PathChallengeFrame, st.binary(min_size=8, max_size=8)),
    st.builds(PathResponseFrame, st.binary(min_size=8, max_size=8)),
    st.builds(HandshakeDoneFrame),
    st.builds(DatagramFrame, st.binary(max_size=30)),
    st.builds(
        lambda c, r: ConnectionCloseFrame(c, 0, r, False), st.integers(0, 0x20), st.binary(max_size=10)
    ),
)


def _valid(frame: Frame) -> bool:
    # The codec refuses to build this one (RFC 9000 §19.15 makes it a FRAME_ENCODING_ERROR).
    return not (isinstance(frame, NewConnectionIdFrame) and frame.retire_prior_to > frame.sequence)


@settings(
    max_examples=80,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(st.lists(frames, min_size=1, max_size=4), min_size=1, max_size=4), st.booleans())
def test_random_frames_from_an_authenticated_peer(packets: list[list[Frame]], to_server: bool) -> None:
    sim = Sim(seed=random.Random(len(packets)).randrange(100))
    assert sim.run_until(sim.handshake_confirmed, max_time=5)
    sender, victim = (sim.client, sim.server) if to_server else (sim.server, sim.client)
    addr = CLIENT_ADDR if to_server else SERVER_ADDR
    for pkt_frames in packets:
        pkt_frames = [f for f in pkt_frames if _valid(f)]
        if not pkt_frames:
            continue
        data = craft(sender, EncryptionLevel.ONE_RTT, pkt_frames, sim.now)
        victim.receive_datagram(data, addr, sim.now)
        # The victim keeps working (or closed cleanly): its own send path must not break either.
        victim.datagrams_to_send(sim.now)
        victim.handle_timer(sim.now)
    for ev in iter(victim.next_event, None):
        if isinstance(ev, ConnectionTerminated):
            err = ev.error
            if isinstance(err, TransportError) and not err.remote:
                assert err.code != TransportErrorCode.INTERNAL_ERROR, err
    sim.run_until(lambda: False, max_time=sim.now + 2)


initial_frames = st.one_of(
    st.builds(PingFrame),
    st.builds(lambda a, n: AckFrame(((a, a + n),), 0, None), small, st.integers(0, 5)),
    st.builds(CryptoFrame, offsets, st.binary(max_size=200)),
    st.builds(
        lambda c, r: ConnectionCloseFrame(c, 0, r, False), st.integers(0, 0x20), st.binary(max_size=10)
    ),
    st.builds(StreamFrame, stream_ids, offsets, st.binary(max_size=20), st.booleans()),
    st.builds(HandshakeDoneFrame),
)


@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(initial_frames, min_size=1, max_size=3), min_size=1, max_size=3))
def test_random_initial_packets_to_a_fresh_server(packets: list[list[Frame]]) -> None:
    """A server facing a hostile client's Initial packets: a clean close or nothing, never a bug."""
    sim = Sim(start=False)
    sim.client.connect(SERVER_ADDR, 0.0)
    sim.client.datagrams_to_send(0.0)  # the real first flight is discarded
    for pkt_frames in packets:
        data = craft(sim.client, EncryptionLevel.INITIAL, pkt_frames, 0.0)
        sim.server.receive_datagram(data, CLIENT_ADDR, 0.0)
        sim.server.datagrams_to_send(0.0)
        sim.server.handle_timer(0.0)
    for ev in iter(sim.server.next_event, None):
        if isinstance(ev, ConnectionTerminated) and isinstance(ev.error, TransportError):
            assert ev.error.code != TransportErrorCode.INTERNAL_ERROR, ev.error
