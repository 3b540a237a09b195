"""Frame codecs (RFC 9000 §12.4, §19; RFC 9221 §4)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicsilver.errors import TransportError, TransportErrorCode
from quicsilver.wire.frames import (
    MAX_STREAMS_LIMIT,
    AckFrame,
    ConnectionCloseFrame,
    CryptoFrame,
    DatagramFrame,
    Frame,
    FrameType,
    HandshakeDoneFrame,
    MaxStreamsFrame,
    NewConnectionIdFrame,
    NewTokenFrame,
    PaddingFrame,
    PathChallengeFrame,
    PathResponseFrame,
    PingFrame,
    StreamFrame,
    StreamsBlockedFrame,
    ack_frame_length,
    check_frame_allowed,
    crypto_frame_header_length,
    crypto_frame_max_data_len,
    datagram_frame_length,
    datagram_frame_max_data_len,
    frame_type_of,
    is_ack_eliciting,
    is_probing_frame,
    parse_frame,
    parse_frames,
    stream_frame_header_length,
    stream_frame_max_data_len,
)
from quicsilver.wire.header import PacketType
from quicsilver.wire.varint import MAX_VARINT, encode_varint
from tests.wire.strategies import WIRE_SETTINGS, all_frames, non_padding_frames

FEE = TransportErrorCode.FRAME_ENCODING_ERROR
SETTINGS = settings(WIRE_SETTINGS, max_examples=250)


def encode(frame: Frame) -> bytes:
    buf = bytearray()
    frame.append(buf)
    return bytes(buf)


def parse_error(data: bytes) -> TransportError:
    with pytest.raises(TransportError) as exc:
        parse_frame(data, 0)
    return exc.value


@SETTINGS
@given(all_frames)
def test_round_trip(frame: Frame) -> None:
    data = encode(frame)
    assert len(data) == frame.length()
    assert data[0] == frame_type_of(frame)
    for view in (data, memoryview(data), bytearray(data)):
        parsed, pos = parse_frame(view, 0)
        assert pos == len(data)
        assert parsed == frame


@settings(WIRE_SETTINGS, max_examples=100)
@given(st.lists(all_frames, max_size=6), st.binary(max_size=4))
def test_concatenated_frames_parse_in_order(frames: list[Frame], prefix: bytes) -> None:
    # Adjacent PADDING frames collapse into one: merge them in the expectation too.
    expected: list[Frame] = []
    for frame in frames:
        if isinstance(frame, PaddingFrame) and expected and isinstance(expected[-1], PaddingFrame):
            expected[-1] = PaddingFrame(expected[-1].size + frame.size)
        else:
            expected.append(frame)
    buf = bytearray(prefix)
    for frame in frames:
        frame.append(buf)
    pos = len(prefix)
    got = []
    while pos < len(buf):
        frame, pos = parse_frame(memoryview(buf), pos)
        got.append(frame)
    assert got == expected


def _parse_one_by_one(buf: memoryview, pos: int) -> list[Frame] | tuple[int, int | None]:
    """The frames parse_frame finds from ``pos`` to the end, or the (code, frame_type) it raises."""
    frames: list[Frame] = []
    try:
        while pos < len(buf):
            frame, pos = parse_frame(buf, pos)
            frames.append(frame)
    except TransportError as e:
        return (e.code, e.frame_type)
    return frames


def _parse_all(buf: memoryview, pos: int) -> list[Frame] | tuple[int, int | None]:
    try:
        return parse_frames(buf, pos)
    except TransportError as e:
        return (e.code, e.frame_type)


@settings(WIRE_SETTINGS, max_examples=200)
@given(st.lists(all_frames, max_size=6), st.binary(max_size=4), st.integers(0, 12))
def test_parse_frames_equals_parse_frame_loop(frames: list[Frame], prefix: bytes, cut: int) -> None:
    buf = bytearray(prefix)
    for frame in frames:
        frame.append(buf)
    for data in (buf, buf[: max(len(prefix), len(buf) - cut)]):  # whole, and truncated
        view = memoryview(bytes(data))
        assert _parse_all(view, len(prefix)) == _parse_one_by_one(view, len(prefix))


@settings(WIRE_SETTINGS, max_examples=400)
@given(st.binary(max_size=64))
def test_parse_frames_equals_parse_frame_loop_on_random_bytes(data: bytes) -> None:
    view = memoryview(data)
    assert _parse_all(view, 0) == _parse_one_by_one(view, 0)


@SETTINGS
@given(non_padding_frames)
def test_every_truncation_is_frame_encoding_error(frame: Frame) -> None:
    data = encode(frame)
    for cut in range(len(data)):
        err = parse_error(data[:cut])
        assert err.code == FEE
        if cut:
            assert err.frame_type == data[0]


@settings(WIRE_SETTINGS, max_examples=600)
@given(st.binary(max_size=64))
def test_random_bytes_raise_only_transport_error(data: bytes) -> None:
    pos = 0
    view = memoryview(data)
    try:
        while pos < len(data):
            _, new_pos = parse_frame(view, pos)
            assert new_pos > pos
            pos = new_pos
    except TransportError as e:
        assert e.code in (FEE, TransportErrorCode.PROTOCOL_VIOLATION)


@settings(WIRE_SETTINGS, max_examples=300)
@given(st.sampled_from(range(0x40)), st.binary(max_size=40))
def test_random_bodies_after_each_type_raise_only_transport_error(ftype: int, body: bytes) -> None:
    try:
        parse_frame(bytes((ftype,)) + body, 0)
    except TransportError as e:
        assert e.code == FEE


def test_stream_frame_data_is_a_view_of_the_packet() -> None:
    packet = bytearray(encode(StreamFrame(4, 10, b"hello world", fin=True)))
    frame, _ = parse_frame(memoryview(packet), 0)
    assert isinstance(frame, StreamFrame)
    assert isinstance(frame.data, memoryview)
    packet[-1] = ord("D")  # same memory: no copy was made
    assert bytes(frame.data) == b"hello worlD"


def test_stream_frame_without_length_extends_to_packet_end() -> None:
    frame = StreamFrame(1, 0, b"abc", fin=False)
    buf = bytearray()
    frame.append(buf, with_length=False)
    assert len(buf) == frame.length(with_length=False) == 1 + 1 + 3
    assert buf[0] == FrameType.STREAM  # no OFF, LEN or FIN bits
    parsed, pos = parse_frame(bytes(buf), 0)
    assert parsed == frame and pos == len(buf)


def test_datagram_without_length_extends_to_packet_end() -> None:
    parsed, pos = parse_frame(b"\x30payload", 0)
    assert parsed == DatagramFrame(b"payload") and pos == 8
    assert encode(DatagramFrame(b"x")) == b"\x31\x01x"


def test_padding_runs_collapse() -> None:
    data = bytes(5) + b"\x01" + bytes(3)
    first, pos = parse_frame(data, 0)
    assert first == PaddingFrame(5) and pos == 5
    assert parse_frame(data, pos) == (PingFrame(), 6)
    assert parse_frame(data, 6) == (PaddingFrame(3), 9)
    assert PaddingFrame(4).length() == 4 and PaddingFrame(length=4).size == 4
    with pytest.raises(ValueError):
        PaddingFrame(0)


# ---------------------------------------------------------------------------------------------
# Field validation of RFC 9000 §19


def test_ack_wire_format() -> None:
    # RFC 9000 §19.3.1: Gap = previous smallest - largest - 2; ACK Range = largest - smallest.
    frame = AckFrame(((8, 10), (2, 5), (0, 0)), delay=7)
    assert encode(frame) == bytes([0x02, 10, 7, 2, 2, 1, 3, 0, 0])
    assert frame.largest_acked == 10 and frame.smallest_acked == 0
    assert [pn for pn in range(12) if frame.acks_packet(pn)] == [0, 2, 3, 4, 5, 8, 9, 10]
    assert ack_frame_length(frame.ranges, 7) == frame.length()
    ecn = AckFrame(((0, 0),), 0, (1, 2, 3))
    assert encode(ecn) == bytes([0x03, 0, 0, 0, 0, 1, 2, 3])


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([5, 0, 0, 6], id="first-range-below-zero"),
        pytest.param([5, 0, 1, 2, 2, 0], id="gap-below-zero"),
        pytest.param([5, 0, 1, 0, 2, 2], id="second-range-below-zero"),
    ],
)
def test_ack_range_below_zero_is_frame_encoding_error(body: list[int]) -> None:
    assert parse_error(bytes([0x02, *body])).code == FEE


def test_ack_range_count_larger_than_packet_is_rejected_early() -> None:
    data = b"\x02\x05\x00" + encode_varint(MAX_VARINT) + b"\x00"
    assert parse_error(data).code == FEE


def test_unknown_frame_type() -> None:
    err = parse_error(b"\x1f")
    assert err.code == FEE and err.frame_type == 0x1F
    err = parse_error(b"\x40\x40")
    assert err.code == FEE and err.frame_type == 0x40


def test_non_minimal_frame_type_is_protocol_violation() -> None:
    err = parse_error(b"\x40\x01")  # PING in a 2-byte encoding
    assert err.code == TransportErrorCode.PROTOCOL_VIOLATION


def test_empty_payload() -> None:
    assert parse_error(b"").code == FEE


def test_new_token_must_not_be_empty() -> None:
    assert parse_error(b"\x07\x00").code == FEE


@pytest.mark.parametrize("cid_len", [0, 21, 255])
def test_new_connection_id_length_bounds(cid_len: int) -> None:
    data = bytes([0x18, 1, 0, cid_len]) + bytes(cid_len + 16)
    assert parse_error(data).code == FEE


def test_new_connection_id_retire_prior_to_above_sequence() -> None:
    data = bytes([0x18, 1, 2, 4]) + bytes(4 + 16)
    assert parse_error(data).code == FEE
    ok = NewConnectionIdFrame(2, 2, b"abcd", bytes(16))
    assert parse_frame(encode(ok), 0)[0] == ok


@pytest.mark.parametrize("ftype", [0x12, 0x13, 0x16, 0x17])
def test_stream_count_above_2_60(ftype: int) -> None:
    assert parse_error(bytes([ftype]) + encode_varint(MAX_STREAMS_LIMIT + 1)).code == FEE
    frame, _ = parse_frame(bytes([ftype]) + encode_varint(MAX_STREAMS_LIMIT), 0)
    assert isinstance(frame, MaxStreamsFrame | StreamsBlockedFrame)
    assert frame.bidi == (ftype in (0x12, 0x16))


def test_stream_offset_plus_length_above_2_62() -> None:
    data = bytes([0x0E, 0]) + encode_varint(MAX_VARINT) + b"\x01x"
    assert parse_error(data).code == FEE
    data = bytes([0x06]) + encode_varint(MAX_VARINT) + b"\x01x"
    assert parse_error(data).code == FEE


def test_stream_length_beyond_packet() -> None:
    assert parse_error(b"\x0a\x00\x05abc").code == FEE


def test_connection_close_variants() -> None:
    transport = ConnectionCloseFrame(0x0A, 0x08, b"bad stream")
    assert encode(transport)[0] == 0x1C
    app = ConnectionCloseFrame(0x100, None, b"", is_application=True)
    assert encode(app) == b"\x1d\x41\x00\x00"
    assert parse_frame(encode(app), 0)[0] == app
    # An absent frame type is encoded as 0 (PADDING).
    assert parse_frame(encode(ConnectionCloseFrame(1)), 0)[0] == ConnectionCloseFrame(1, 0)


def test_path_frames_carry_8_bytes() -> None:
    assert encode(PathChallengeFrame(b"12345678")) == b"\x1a12345678"
    assert parse_frame(b"\x1b12345678", 0)[0] == PathResponseFrame(b"12345678")


# ---------------------------------------------------------------------------------------------
# Classification


@pytest.mark.parametrize(
    ("frame", "eliciting"),
    [
        (AckFrame(((0, 0),)), False),
        (PaddingFrame(3), False),
        (ConnectionCloseFrame(0), False),
        (ConnectionCloseFrame(0, None, b"", True), False),
        (PingFrame(), True),
        (StreamFrame(0, 0, b""), True),
        (CryptoFrame(0, b"x"), True),
        (HandshakeDoneFrame(), True),
        (DatagramFrame(b""), True),
        (NewTokenFrame(b"t"), True),
    ],
    ids=repr,
)
def test_is_ack_eliciting(frame: Frame, eliciting: bool) -> None:
    # RFC 9002 §2: all frames other than ACK, PADDING and CONNECTION_CLOSE are ack-eliciting.
    assert is_ack_eliciting(frame) is eliciting


def test_probing_frames() -> None:
    # RFC 9000 §9.1.
    assert is_probing_frame(PathChallengeFrame(bytes(8)))
    assert is_probing_frame(PathResponseFrame(bytes(8)))
    assert is_probing_frame(NewConnectionIdFrame(0, 0, b"a", bytes(16)))
    assert is_probing_frame(PaddingFrame(1))
    assert not is_probing_frame(PingFrame())
    assert not is_probing_frame(StreamFrame(0, 0, b"x"))


# ---------------------------------------------------------------------------------------------
# Size helpers for the packer


@settings(WIRE_SETTINGS, max_examples=300)
@given(
    st.integers(min_value=0, max_value=MAX_VARINT),
    st.integers(min_value=0, max_value=MAX_VARINT),
    st.integers(min_value=0, max_value=20000),
    st.booleans(),
)
def test_stream_frame_max_data_len_is_tight(
    stream_id: int, offset: int, max_size: int, with_len: bool
) -> None:
    n = stream_frame_max_data_len(max_size, stream_id, offset, with_len)
    size = stream_frame_header_length(stream_id, offset, n, with_len) + n
    assert n == 0 or size <= max_size
    assert stream_frame_header_length(stream_id, offset, n + 1, with_len) + n + 1 > max_size
    if n:
        assert StreamFrame(stream_id, offset, bytes(n)).length(with_len) == size


@settings(WIRE_SETTINGS, max_examples=300)
@given(st.integers(min_value=0, max_value=MAX_VARINT), st.integers(min_value=0, max_value=20000))
def test_crypto_and_datagram_max_data_len_are_tight(offset: int, max_size: int) -> None:
    n = crypto_frame_max_data_len(max_size, offset)
    assert n == 0 or crypto_frame_header_length(offset, n) + n <= max_size
    assert crypto_frame_header_length(offset, n + 1) + n + 1 > max_size
    d = datagram_frame_max_data_len(max_size)
    assert d == 0 or datagram_frame_length(d) <= max_size
    assert datagram_frame_length(d + 1) > max_size
    assert DatagramFrame(bytes(d)).length() == datagram_frame_length(d)


# RFC 9000 §12.4 Table 3 (and RFC 9221 §4 for DATAGRAM): which packet types may carry each frame
# type. I = Initial, H = Handshake, 0 = 0-RTT, 1 = 1-RTT.
TABLE_3 = {
    0x00: "IH01",
    0x01: "IH01",
    0x02: "IH1",
    0x03: "IH1",
    0x04: "01",
    0x05: "01",
    0x06: "IH1",
    0x07: "1",
    **dict.fromkeys(range(0x08, 0x10), "01"),
    0x10: "01",
    0x11: "01",
    0x12: "01",
    0x13: "01",
    0x14: "01",
    0x15: "01",
    0x16: "01",
    0x17: "01",
    0x18: "01",
    0x19: "01",
    0x1A: "01",
    0x1B: "1",
    0x1C: "IH01",
    0x1D: "01",  # "ih01": the application variant only in 0-RTT and 1-RTT (§12.5)
    0x1E: "1",
    0x30: "01",
    0x31: "01",
}
LETTERS = {
    PacketType.INITIAL: "I",
    PacketType.HANDSHAKE: "H",
    PacketType.ZERO_RTT: "0",
    PacketType.ONE_RTT: "1",
}


@pytest.mark.parametrize(
    ("frame_type", "allowed"), TABLE_3.items(), ids=lambda v: f"{v:#04x}" if isinstance(v, int) else v
)
def test_check_frame_allowed_table_3(frame_type: int, allowed: str) -> None:
    for packet_type, letter in LETTERS.items():
        if letter in allowed:
            check_frame_allowed(frame_type, packet_type)
        else:
            with pytest.raises(TransportError) as exc:
                check_frame_allowed(frame_type, packet_type)
            assert exc.value.code == TransportErrorCode.PROTOCOL_VIOLATION
            assert exc.value.frame_type == frame_type
    for packet_type in (PacketType.RETRY, PacketType.VERSION_NEGOTIATION):
        with pytest.raises(TransportError):
            check_frame_allowed(frame_type, packet_type)


@pytest.mark.parametrize("frame_type", [0x1F, 0x20, 0x40, 0xC0, 0x4000])
def test_unknown_frame_types_are_left_to_the_parser(frame_type: int) -> None:
    # Unknown types are FRAME_ENCODING_ERROR (from parse_frame), not PROTOCOL_VIOLATION.
    check_frame_allowed(frame_type, PacketType.INITIAL)


def test_frames_are_values() -> None:
    # Frames compare, hash and print by their fields, in declaration order, and only within a class.
    a = StreamFrame(4, 10, b"abc", fin=True)
    assert a == StreamFrame(4, 10, b"abc", True) and hash(a) == hash(StreamFrame(4, 10, b"abc", True))
    assert a != StreamFrame(4, 11, b"abc", True) and a != CryptoFrame(10, b"abc")
    assert repr(a) == "StreamFrame(stream_id=4, offset=10, data=b'abc', fin=True)"
    assert len({MaxStreamsFrame(True, 5), MaxStreamsFrame(True, 5), MaxStreamsFrame(False, 5)}) == 2
    assert PingFrame() == PingFrame() and PingFrame() != HandshakeDoneFrame()
    assert ConnectionCloseFrame(1) == ConnectionCloseFrame(1, None, b"", is_application=False)
