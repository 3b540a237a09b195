"""QUIC frame definitions: every frame of RFC 9000 §19 and DATAGRAM (RFC 9221 §4), with its encoder.

Frames are frozen slotted dataclasses. Each has ``wire_type`` (the frame type it is encoded with),
``append(buf)`` (write it to a bytearray) and ``length()`` (``len`` of what ``append`` writes).
Parsing lives in ``frame_parser``; import everything through ``quicsilver.wire.frames``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

from quicsilver.wire.varint import append_varint, varint_len

PATH_DATA_LEN = 8  # RFC 9000 §19.17


class FrameType:
    """Frame type values (RFC 9000 §12.4 Table 3, RFC 9221 §4)."""

    PADDING: Final = 0x00
    PING: Final = 0x01
    ACK: Final = 0x02
    ACK_ECN: Final = 0x03
    RESET_STREAM: Final = 0x04
    STOP_SENDING: Final = 0x05
    CRYPTO: Final = 0x06
    NEW_TOKEN: Final = 0x07
    STREAM: Final = 0x08  # 0x08-0x0f: OFF 0x04, LEN 0x02, FIN 0x01
    MAX_DATA: Final = 0x10
    MAX_STREAM_DATA: Final = 0x11
    MAX_STREAMS_BIDI: Final = 0x12
    MAX_STREAMS_UNI: Final = 0x13
    DATA_BLOCKED: Final = 0x14
    STREAM_DATA_BLOCKED: Final = 0x15
    STREAMS_BLOCKED_BIDI: Final = 0x16
    STREAMS_BLOCKED_UNI: Final = 0x17
    NEW_CONNECTION_ID: Final = 0x18
    RETIRE_CONNECTION_ID: Final = 0x19
    PATH_CHALLENGE: Final = 0x1A
    PATH_RESPONSE: Final = 0x1B
    CONNECTION_CLOSE: Final = 0x1C
    CONNECTION_CLOSE_APP: Final = 0x1D
    HANDSHAKE_DONE: Final = 0x1E
    DATAGRAM: Final = 0x30  # without Length: extends to the end of the packet
    DATAGRAM_LEN: Final = 0x31


STREAM_OFF_BIT = 0x04
STREAM_LEN_BIT = 0x02
STREAM_FIN_BIT = 0x01


# --------------------------------------------------------------------------------------------------
# Frame classes


class PaddingFrame:
    """A run of PADDING bytes (RFC 9000 §19.1), collapsed into one frame.

    Constructed as ``PaddingFrame(length)``; ``length()`` (like every frame) returns the encoded
    size, which for padding is the number of bytes, also available as ``size``. Immutable.
    """

    __slots__ = ("size",)
    __match_args__ = ("size",)
    wire_type: ClassVar[int] = FrameType.PADDING
    size: int

    def __init__(self, length: int = 1) -> None:
        if length < 1:
            raise ValueError(f"padding length must be positive, got {length}")
        object.__setattr__(self, "size", length)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("PaddingFrame is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PaddingFrame) and other.size == self.size

    def __hash__(self) -> int:
        return hash((PaddingFrame, self.size))

    def __repr__(self) -> str:
        return f"PaddingFrame(length={self.size})"

    def append(self, buf: bytearray) -> None:
        buf += bytes(self.size)

    def length(self) -> int:
        return self.size


@dataclass(frozen=True, slots=True)
class PingFrame:
    """PING (RFC 9000 §19.2)."""

    wire_type: ClassVar[int] = FrameType.PING

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.PING)

    def length(self) -> int:
        return 1


@dataclass(frozen=True, slots=True)
class AckFrame:
    """ACK / ACK_ECN (RFC 9000 §19.3).

    ``ranges`` are inclusive ``(smallest, largest)`` pairs in descending order, the first holding the
    largest acknowledged packet. ``delay`` is the raw encoded ACK Delay field (the receiver scales it
    by the peer's ack_delay_exponent). ``ecn`` is ``(ect0, ect1, ce)`` or None (type 0x02).
    """

    ranges: tuple[tuple[int, int], ...]
    delay: int = 0
    ecn: tuple[int, int, int] | None = None

    @property
    def wire_type(self) -> int:
        return FrameType.ACK if self.ecn is None else FrameType.ACK_ECN

    @property
    def largest_acked(self) -> int:
        return self.ranges[0][1]

    @property
    def smallest_acked(self) -> int:
        return self.ranges[-1][0]

    def acks_packet(self, pn: int) -> bool:
        """Whether packet number ``pn`` falls in one of the ranges."""
        for smallest, largest in self.ranges:
            if pn > largest:
                return False
            if pn >= smallest:
                return True
        return False

    def append(self, buf: bytearray) -> None:
        ranges = self.ranges
        smallest, largest = ranges[0]
        buf.append(FrameType.ACK if self.ecn is None else FrameType.ACK_ECN)
        append_varint(buf, largest)
        append_varint(buf, self.delay)
        append_varint(buf, len(ranges) - 1)
        append_varint(buf, largest - smallest)
        prev_smallest = smallest
        for smallest, largest in ranges[1:]:
            # RFC 9000 §19.3.1: Gap = previous smallest - this largest - 2.
            append_varint(buf, prev_smallest - largest - 2)
            append_varint(buf, largest - smallest)
            prev_smallest = smallest
        if self.ecn is not None:
            append_varint(buf, self.ecn[0])
            append_varint(buf, self.ecn[1])
            append_varint(buf, self.ecn[2])

    def length(self) -> int:
        ranges = self.ranges
        smallest, largest = ranges[0]
        n = 1 + varint_len(largest) + varint_len(self.delay) + varint_len(len(ranges) - 1)
        n += varint_len(largest - smallest)
        prev_smallest = smallest
        for smallest, largest in ranges[1:]:
            n += varint_len(prev_smallest - largest - 2) + varint_len(largest - smallest)
            prev_smallest = smallest
        if self.ecn is not None:
            n += varint_len(self.ecn[0]) + varint_len(self.ecn[1]) + varint_len(self.ecn[2])
        return n


@dataclass(frozen=True, slots=True)
class ResetStreamFrame:
    """RESET_STREAM (RFC 9000 §19.4)."""

    stream_id: int
    error_code: int
    final_size: int
    wire_type: ClassVar[int] = FrameType.RESET_STREAM

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.RESET_STREAM)
        append_varint(buf, self.stream_id)
        append_varint(buf, self.error_code)
        append_varint(buf, self.final_size)

    def length(self) -> int:
        return 1 + varint_len(self.stream_id) + varint_len(self.error_code) + varint_len(self.final_size)


@dataclass(frozen=True, slots=True)
class StopSendingFrame:
    """STOP_SENDING (RFC 9000 §19.5)."""

    stream_id: int
    error_code: int
    wire_type: ClassVar[int] = FrameType.STOP_SENDING

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.STOP_SENDING)
        append_varint(buf, self.stream_id)
        append_varint(buf, self.error_code)

    def length(self) -> int:
        return 1 + varint_len(self.stream_id) + varint_len(self.error_code)


@dataclass(frozen=True, slots=True)
class CryptoFrame:
    """CRYPTO (RFC 9000 §19.6)."""

    offset: int
    data: bytes
    wire_type: ClassVar[int] = FrameType.CRYPTO

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.CRYPTO)
        append_varint(buf, self.offset)
        append_varint(buf, len(self.data))
        buf += self.data

    def length(self) -> int:
        n = len(self.data)
        return 1 + varint_len(self.offset) + varint_len(n) + n


@dataclass(frozen=True, slots=True)
class NewTokenFrame:
    """NEW_TOKEN (RFC 9000 §19.7); the token is never empty."""

    token: bytes
    wire_type: ClassVar[int] = FrameType.NEW_TOKEN

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.NEW_TOKEN)
        append_varint(buf, len(self.token))
        buf += self.token

    def length(self) -> int:
        return 1 + varint_len(len(self.token)) + len(self.token)


@dataclass(frozen=True, slots=True)
class StreamFrame:
    """STREAM (RFC 9000 §19.8). ``data`` may be a memoryview slice of the received packet.

    ``append``/``length`` take ``with_length``: the last frame of a packet may omit its Length
    field and extend to the end of the packet.
    """

    stream_id: int
    offset: int
    data: bytes | bytearray | memoryview
    fin: bool = False

    @property
    def wire_type(self) -> int:
        return (
            FrameType.STREAM
            | (STREAM_OFF_BIT if self.offset else 0)
            | STREAM_LEN_BIT
            | (STREAM_FIN_BIT if self.fin else 0)
        )

    def append(self, buf: bytearray, with_length: bool = True) -> None:
        offset = self.offset
        data = self.data
        ftype = FrameType.STREAM | (STREAM_FIN_BIT if self.fin else 0)
        if offset:
            ftype |= STREAM_OFF_BIT
        if with_length:
            ftype |= STREAM_LEN_BIT
        buf.append(ftype)
        # The common sizes inline (one STREAM frame per packet sent): a 1-byte stream ID, a 4-byte
        # offset, a 2-byte length.
        stream_id = self.stream_id
        if stream_id < 0x40:
            buf.append(stream_id)
        else:
            append_varint(buf, stream_id)
        if offset:
            if 0x4000 <= offset < 0x40000000:
                buf += (0x80000000 | offset).to_bytes(4, "big")
            else:
                append_varint(buf, offset)
        if with_length:
            n = len(data)
            if 0x40 <= n < 0x4000:
                buf += (0x4000 | n).to_bytes(2, "big")
            else:
                append_varint(buf, n)
        buf += data

    def length(self, with_length: bool = True) -> int:
        n = len(self.data)
        n += 1 + varint_len(self.stream_id)
        if self.offset:
            n += varint_len(self.offset)
        if with_length:
            n += varint_len(len(self.data))
        return n


@dataclass(frozen=True, slots=True)
class MaxDataFrame:
    """MAX_DATA (RFC 9000 §19.9)."""

    maximum: int
    wire_type: ClassVar[int] = FrameType.MAX_DATA

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.MAX_DATA)
        append_varint(buf, self.maximum)

    def length(self) -> int:
        return 1 + varint_len(self.maximum)


@dataclass(frozen=True, slots=True)
class MaxStreamDataFrame:
    """MAX_STREAM_DATA (RFC 9000 §19.10)."""

    stream_id: int
    maximum: int
    wire_type: ClassVar[int] = FrameType.MAX_STREAM_DATA

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.MAX_STREAM_DATA)
        append_varint(buf, self.stream_id)
        append_varint(buf, self.maximum)

    def length(self) -> int:
        return 1 + varint_len(self.stream_id) + varint_len(self.maximum)


@dataclass(frozen=True, slots=True)
class MaxStreamsFrame:
    """MAX_STREAMS (RFC 9000 §19.11); ``bidi`` selects type 0x12 (bidirectional) or 0x13."""

    bidi: bool
    maximum: int

    @property
    def wire_type(self) -> int:
        return FrameType.MAX_STREAMS_BIDI if self.bidi else FrameType.MAX_STREAMS_UNI

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.MAX_STREAMS_BIDI if self.bidi else FrameType.MAX_STREAMS_UNI)
        append_varint(buf, self.maximum)

    def length(self) -> int:
        return 1 + varint_len(self.maximum)


@dataclass(frozen=True, slots=True)
class DataBlockedFrame:
    """DATA_BLOCKED (RFC 9000 §19.12)."""

    limit: int
    wire_type: ClassVar[int] = FrameType.DATA_BLOCKED

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.DATA_BLOCKED)
        append_varint(buf, self.limit)

    def length(self) -> int:
        return 1 + varint_len(self.limit)


@dataclass(frozen=True, slots=True)
class StreamDataBlockedFrame:
    """STREAM_DATA_BLOCKED (RFC 9000 §19.13)."""

    stream_id: int
    limit: int
    wire_type: ClassVar[int] = FrameType.STREAM_DATA_BLOCKED

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.STREAM_DATA_BLOCKED)
        append_varint(buf, self.stream_id)
        append_varint(buf, self.limit)

    def length(self) -> int:
        return 1 + varint_len(self.stream_id) + varint_len(self.limit)


@dataclass(frozen=True, slots=True)
class StreamsBlockedFrame:
    """STREAMS_BLOCKED (RFC 9000 §19.14); ``bidi`` selects type 0x16 or 0x17."""

    bidi: bool
    limit: int

    @property
    def wire_type(self) -> int:
        return FrameType.STREAMS_BLOCKED_BIDI if self.bidi else FrameType.STREAMS_BLOCKED_UNI

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.STREAMS_BLOCKED_BIDI if self.bidi else FrameType.STREAMS_BLOCKED_UNI)
        append_varint(buf, self.limit)

    def length(self) -> int:
        return 1 + varint_len(self.limit)


@dataclass(frozen=True, slots=True)
class NewConnectionIdFrame:
    """NEW_CONNECTION_ID (RFC 9000 §19.15)."""

    sequence: int
    retire_prior_to: int
    connection_id: bytes
    reset_token: bytes
    wire_type: ClassVar[int] = FrameType.NEW_CONNECTION_ID

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.NEW_CONNECTION_ID)
        append_varint(buf, self.sequence)
        append_varint(buf, self.retire_prior_to)
        buf.append(len(self.connection_id))
        buf += self.connection_id
        buf += self.reset_token

    def length(self) -> int:
        return (
            1
            + varint_len(self.sequence)
            + varint_len(self.retire_prior_to)
            + 1
            + len(self.connection_id)
            + len(self.reset_token)
        )


@dataclass(frozen=True, slots=True)
class RetireConnectionIdFrame:
    """RETIRE_CONNECTION_ID (RFC 9000 §19.16)."""

    sequence: int
    wire_type: ClassVar[int] = FrameType.RETIRE_CONNECTION_ID

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.RETIRE_CONNECTION_ID)
        append_varint(buf, self.sequence)

    def length(self) -> int:
        return 1 + varint_len(self.sequence)


@dataclass(frozen=True, slots=True)
class PathChallengeFrame:
    """PATH_CHALLENGE (RFC 9000 §19.17): 8 bytes of data."""

    data: bytes
    wire_type: ClassVar[int] = FrameType.PATH_CHALLENGE

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.PATH_CHALLENGE)
        buf += self.data

    def length(self) -> int:
        return 1 + PATH_DATA_LEN


@dataclass(frozen=True, slots=True)
class PathResponseFrame:
    """PATH_RESPONSE (RFC 9000 §19.18): echoes the 8 bytes of a PATH_CHALLENGE."""

    data: bytes
    wire_type: ClassVar[int] = FrameType.PATH_RESPONSE

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.PATH_RESPONSE)
        buf += self.data

    def length(self) -> int:
        return 1 + PATH_DATA_LEN


@dataclass(frozen=True, slots=True)
class ConnectionCloseFrame:
    """CONNECTION_CLOSE (RFC 9000 §19.19).

    ``is_application`` selects type 0x1d (application close, no frame type field) over 0x1c.
    ``frame_type`` is the type of the frame that triggered the error (0x1c only; None encodes 0).
    """

    error_code: int
    frame_type: int | None = None
    reason: bytes = b""
    is_application: bool = False

    @property
    def wire_type(self) -> int:
        return FrameType.CONNECTION_CLOSE_APP if self.is_application else FrameType.CONNECTION_CLOSE

    def append(self, buf: bytearray) -> None:
        if self.is_application:
            buf.append(FrameType.CONNECTION_CLOSE_APP)
            append_varint(buf, self.error_code)
        else:
            buf.append(FrameType.CONNECTION_CLOSE)
            append_varint(buf, self.error_code)
            append_varint(buf, self.frame_type or 0)
        append_varint(buf, len(self.reason))
        buf += self.reason

    def length(self) -> int:
        n = 1 + varint_len(self.error_code) + varint_len(len(self.reason)) + len(self.reason)
        if not self.is_application:
            n += varint_len(self.frame_type or 0)
        return n


@dataclass(frozen=True, slots=True)
class HandshakeDoneFrame:
    """HANDSHAKE_DONE (RFC 9000 §19.20)."""

    wire_type: ClassVar[int] = FrameType.HANDSHAKE_DONE

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.HANDSHAKE_DONE)

    def length(self) -> int:
        return 1


@dataclass(frozen=True, slots=True)
class DatagramFrame:
    """DATAGRAM (RFC 9221 §4); always sent with a Length field (type 0x31), both types parsed."""

    data: bytes | memoryview
    wire_type: ClassVar[int] = FrameType.DATAGRAM_LEN

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.DATAGRAM_LEN)
        append_varint(buf, len(self.data))
        buf += self.data

    def length(self) -> int:
        n = len(self.data)
        return 1 + varint_len(n) + n


Frame = (
    PaddingFrame
    | PingFrame
    | AckFrame
    | ResetStreamFrame
    | StopSendingFrame
    | CryptoFrame
    | NewTokenFrame
    | StreamFrame
    | MaxDataFrame
    | MaxStreamDataFrame
    | MaxStreamsFrame
    | DataBlockedFrame
    | StreamDataBlockedFrame
    | StreamsBlockedFrame
    | NewConnectionIdFrame
    | RetireConnectionIdFrame
    | PathChallengeFrame
    | PathResponseFrame
    | ConnectionCloseFrame
    | HandshakeDoneFrame
    | DatagramFrame
)
