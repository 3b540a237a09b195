"""QUIC frames (RFC 9000 §12.4, §19; RFC 9221 §4): the public face of the frame codecs.

Re-exports the frame classes (``frame_types``) and ``parse_frame`` (``frame_parser``), and adds
what the packet packer and the connection need around them: sizing helpers, ``is_ack_eliciting``
(RFC 9002 §2), ``is_probing_frame`` (RFC 9000 §9.1) and ``check_frame_allowed`` (RFC 9000 §12.4
Table 3).
"""

from __future__ import annotations

from typing import Final

from quicsilver.errors import TransportError, TransportErrorCode
from quicsilver.wire.frame_parser import MAX_STREAMS_LIMIT, parse_frame, parse_frames
from quicsilver.wire.frame_types import (
    AckFrame,
    ConnectionCloseFrame,
    CryptoFrame,
    DataBlockedFrame,
    DatagramFrame,
    Frame,
    FrameType,
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
from quicsilver.wire.header import PacketType
from quicsilver.wire.varint import varint_len

__all__ = [
    "MAX_STREAMS_LIMIT",
    "NOT_ACK_ELICITING_TYPES",
    "AckFrame",
    "ConnectionCloseFrame",
    "CryptoFrame",
    "DataBlockedFrame",
    "DatagramFrame",
    "Frame",
    "FrameType",
    "HandshakeDoneFrame",
    "MaxDataFrame",
    "MaxStreamDataFrame",
    "MaxStreamsFrame",
    "NewConnectionIdFrame",
    "NewTokenFrame",
    "PaddingFrame",
    "PathChallengeFrame",
    "PathResponseFrame",
    "PingFrame",
    "ResetStreamFrame",
    "RetireConnectionIdFrame",
    "StopSendingFrame",
    "StreamDataBlockedFrame",
    "StreamFrame",
    "StreamsBlockedFrame",
    "ack_frame_length",
    "check_frame_allowed",
    "crypto_frame_header_length",
    "crypto_frame_max_data_len",
    "datagram_frame_length",
    "datagram_frame_max_data_len",
    "frame_type_of",
    "is_ack_eliciting",
    "is_probing_frame",
    "parse_frame",
    "parse_frames",
    "stream_frame_header_length",
    "stream_frame_max_data_len",
]


def stream_frame_header_length(stream_id: int, offset: int, data_len: int, with_length: bool = True) -> int:
    """Bytes a STREAM frame spends before its data (type, stream ID, offset if non-zero, length)."""
    n = 1 + varint_len(stream_id)
    if offset:
        n += varint_len(offset)
    if with_length:
        n += varint_len(data_len)
    return n


def stream_frame_max_data_len(max_size: int, stream_id: int, offset: int, with_length: bool = True) -> int:
    """The most data bytes a STREAM frame of at most ``max_size`` bytes can carry (0 if none fit)."""
    header = 1 + varint_len(stream_id) + (varint_len(offset) if offset else 0)
    avail = max_size - header
    if not with_length:
        return avail if avail > 0 else 0
    return _max_len_after_length_field(avail)


def crypto_frame_header_length(offset: int, data_len: int) -> int:
    """Bytes a CRYPTO frame spends before its data."""
    return 1 + varint_len(offset) + varint_len(data_len)


def crypto_frame_max_data_len(max_size: int, offset: int) -> int:
    """The most data bytes a CRYPTO frame of at most ``max_size`` bytes can carry (0 if none fit)."""
    return _max_len_after_length_field(max_size - 1 - varint_len(offset))


def datagram_frame_length(data_len: int) -> int:
    """Encoded size of a DATAGRAM frame (with Length) carrying ``data_len`` bytes."""
    return 1 + varint_len(data_len) + data_len


def datagram_frame_max_data_len(max_size: int) -> int:
    """The largest payload a DATAGRAM frame (with Length) of at most ``max_size`` bytes carries."""
    return _max_len_after_length_field(max_size - 1)


def ack_frame_length(
    ranges: tuple[tuple[int, int], ...], delay: int, ecn: tuple[int, int, int] | None = None
) -> int:
    """Encoded size of an ACK frame with these fields, without building it."""
    return AckFrame(ranges, delay, ecn).length()


def _max_len_after_length_field(avail: int) -> int:
    """Largest n with varint_len(n) + n <= avail (0 if not even an empty field fits)."""
    if avail <= 1:
        return 0
    n = avail - 1
    if n < 0x40:
        return n
    n = avail - 2
    if n < 0x4000:
        return n if n >= 0x40 else 0x3F
    n = avail - 4
    if n < 0x40000000:
        return n if n >= 0x4000 else 0x3FFF
    n = avail - 8
    return n if n >= 0x40000000 else 0x3FFFFFFF


# --------------------------------------------------------------------------------------------------
# Classification


_NOT_ACK_ELICITING: Final = frozenset((AckFrame, PaddingFrame, ConnectionCloseFrame))
NOT_ACK_ELICITING_TYPES: frozenset[type] = _NOT_ACK_ELICITING
"""The frame classes ``is_ack_eliciting`` is False for (a set test saves a call per frame)."""
_PROBING: Final = frozenset((PaddingFrame, PathChallengeFrame, PathResponseFrame, NewConnectionIdFrame))


def is_ack_eliciting(frame: Frame) -> bool:
    """RFC 9002 §2: every frame other than ACK, PADDING and CONNECTION_CLOSE elicits an ACK."""
    return type(frame) not in _NOT_ACK_ELICITING


def is_probing_frame(frame: Frame) -> bool:
    """RFC 9000 §9.1: PATH_CHALLENGE, PATH_RESPONSE, NEW_CONNECTION_ID and PADDING are probing frames."""
    return type(frame) in _PROBING


def frame_type_of(frame: Frame) -> int:
    """The frame type ``frame`` is encoded with."""
    return frame.wire_type


# RFC 9000 §12.4 Table 3: the packet types each frame type may appear in, as bitmasks over the
# frame type (0x00..0x3f). "IH01" = Initial, Handshake, 0-RTT, 1-RTT; lower-case "ih" for
# CONNECTION_CLOSE means only type 0x1c is allowed there (§12.5). DATAGRAM: RFC 9221 §4 (0-RTT, 1-RTT).
def _mask(*types: int) -> int:
    m = 0
    for t in types:
        m |= 1 << t
    return m


_IH: Final = _mask(
    FrameType.PADDING,
    FrameType.PING,
    FrameType.ACK,
    FrameType.ACK_ECN,
    FrameType.CRYPTO,
    FrameType.CONNECTION_CLOSE,
)
_ZERO_RTT: Final = _mask(
    FrameType.PADDING,
    FrameType.PING,
    FrameType.RESET_STREAM,
    FrameType.STOP_SENDING,
    *range(0x08, 0x10),
    FrameType.MAX_DATA,
    FrameType.MAX_STREAM_DATA,
    FrameType.MAX_STREAMS_BIDI,
    FrameType.MAX_STREAMS_UNI,
    FrameType.DATA_BLOCKED,
    FrameType.STREAM_DATA_BLOCKED,
    FrameType.STREAMS_BLOCKED_BIDI,
    FrameType.STREAMS_BLOCKED_UNI,
    FrameType.NEW_CONNECTION_ID,
    FrameType.RETIRE_CONNECTION_ID,
    FrameType.PATH_CHALLENGE,
    FrameType.CONNECTION_CLOSE,
    FrameType.CONNECTION_CLOSE_APP,
    FrameType.DATAGRAM,
    FrameType.DATAGRAM_LEN,
)
_ONE_RTT: Final = _ZERO_RTT | _mask(
    FrameType.ACK,
    FrameType.ACK_ECN,
    FrameType.CRYPTO,
    FrameType.NEW_TOKEN,
    FrameType.PATH_RESPONSE,
    FrameType.HANDSHAKE_DONE,
)
_KNOWN: Final = _ONE_RTT  # 1-RTT packets may carry every frame type
_ALLOWED: Final[dict[PacketType, int]] = {
    PacketType.INITIAL: _IH,
    PacketType.HANDSHAKE: _IH,
    PacketType.ZERO_RTT: _ZERO_RTT,
    PacketType.ONE_RTT: _ONE_RTT,
}


def check_frame_allowed(frame_type: int, packet_type: PacketType) -> None:
    """Raise PROTOCOL_VIOLATION if ``frame_type`` may not appear in ``packet_type`` packets.

    RFC 9000 §12.4: "An endpoint MUST treat receipt of a frame in a packet type that is not
    permitted as a connection error of type PROTOCOL_VIOLATION." A frame type this implementation
    does not know (or the first byte of a multi-byte type) passes: ``parse_frame`` rejects it with
    FRAME_ENCODING_ERROR, the code RFC 9000 §12.4 names for unknown frame types.
    """
    if (_KNOWN >> frame_type) & 1 and not (_ALLOWED.get(packet_type, 0) >> frame_type) & 1:
        raise TransportError(
            TransportErrorCode.PROTOCOL_VIOLATION,
            f"frame type {frame_type:#x} not allowed in {packet_type.name} packets",
            frame_type=frame_type,
        )
