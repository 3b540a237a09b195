"""Hypothesis strategies producing valid values of every wire codec (shared by the wire tests)."""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

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
    PaddingFrame,
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
from quicsilver.wire.varint import MAX_VARINT

# Deterministic runs; no "explain" phase (it imports libcst, whose DeprecationWarning would turn a
# readable failure into an INTERNALERROR under filterwarnings=error).
WIRE_SETTINGS = settings(
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow],
)

varints = st.one_of(
    st.integers(min_value=0, max_value=63),
    st.integers(min_value=0, max_value=16383),
    st.integers(min_value=0, max_value=MAX_VARINT),
)
small_bytes = st.binary(max_size=64)
cids = st.binary(min_size=1, max_size=20)


@st.composite
def ack_ranges(draw: st.DrawFn) -> tuple[tuple[int, int], ...]:
    """Descending, disjoint, non-adjacent inclusive (smallest, largest) ranges."""
    largest = draw(st.integers(min_value=0, max_value=MAX_VARINT))
    count = draw(st.integers(min_value=1, max_value=8))
    ranges = []
    for _ in range(count):
        length = draw(st.integers(min_value=0, max_value=min(largest, 1000)))
        smallest = largest - length
        ranges.append((smallest, largest))
        if smallest < 2:
            break
        gap = draw(st.integers(min_value=0, max_value=min(smallest - 2, 1000)))
        largest = smallest - gap - 2
    return tuple(ranges)


ecn_counts = st.none() | st.tuples(varints, varints, varints)


@st.composite
def stream_frames(draw: st.DrawFn) -> StreamFrame:
    data = draw(small_bytes)
    offset = draw(st.integers(min_value=0, max_value=MAX_VARINT - len(data)))
    return StreamFrame(draw(varints), offset, data, draw(st.booleans()))


@st.composite
def crypto_frames(draw: st.DrawFn) -> CryptoFrame:
    data = draw(small_bytes)
    return CryptoFrame(draw(st.integers(min_value=0, max_value=MAX_VARINT - len(data))), data)


@st.composite
def new_connection_id_frames(draw: st.DrawFn) -> NewConnectionIdFrame:
    sequence = draw(varints)
    retire = draw(st.integers(min_value=0, max_value=sequence))
    return NewConnectionIdFrame(sequence, retire, draw(cids), draw(st.binary(min_size=16, max_size=16)))


stream_counts = st.integers(min_value=0, max_value=1 << 60)
path_data = st.binary(min_size=8, max_size=8)

# Every frame type except PADDING (whose prefixes are themselves valid padding).
non_padding_frames: st.SearchStrategy[Frame] = st.one_of(
    st.just(PingFrame()),
    st.builds(AckFrame, ack_ranges(), varints, ecn_counts),
    st.builds(ResetStreamFrame, varints, varints, varints),
    st.builds(StopSendingFrame, varints, varints),
    crypto_frames(),
    st.builds(NewTokenFrame, st.binary(min_size=1, max_size=64)),
    stream_frames(),
    st.builds(MaxDataFrame, varints),
    st.builds(MaxStreamDataFrame, varints, varints),
    st.builds(MaxStreamsFrame, st.booleans(), stream_counts),
    st.builds(DataBlockedFrame, varints),
    st.builds(StreamDataBlockedFrame, varints, varints),
    st.builds(StreamsBlockedFrame, st.booleans(), stream_counts),
    new_connection_id_frames(),
    st.builds(RetireConnectionIdFrame, varints),
    st.builds(PathChallengeFrame, path_data),
    st.builds(PathResponseFrame, path_data),
    st.builds(ConnectionCloseFrame, varints, varints, small_bytes, st.just(False)),
    st.builds(ConnectionCloseFrame, varints, st.none(), small_bytes, st.just(True)),
    st.just(HandshakeDoneFrame()),
    st.builds(DatagramFrame, small_bytes),
)
all_frames: st.SearchStrategy[Frame] = non_padding_frames | st.builds(
    PaddingFrame, st.integers(min_value=1, max_value=1500)
)
