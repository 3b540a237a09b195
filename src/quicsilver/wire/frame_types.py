"""QUIC frame definitions: every frame of RFC 9000 §19 and DATAGRAM (RFC 9221 §4), with its encoder.

Frames are immutable value objects: compared, hashed and printed by their fields (``_Frame``), with
``Final`` attributes (read-only to mypy, and at run time in the compiled build). Each has
``wire_type`` (the frame type it is encoded with), ``append(buf)`` (write it to a bytearray) and
``length()`` (``len`` of what ``append`` writes). They are plain classes with ``__slots__`` rather
than dataclasses so that the compiled build (mypyc) turns them into native objects: the receive and
send paths build and read one or more per packet. Parsing lives in ``frame_parser``; import
everything through ``quicsilver.wire.frames``.
"""

from __future__ import annotations

from typing import ClassVar, Final

from quicsilver.wire.record import Record
from quicsilver.wire.varint import append_varint, varint_len

PATH_DATA_LEN: Final = 8  # RFC 9000 §19.17


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


STREAM_OFF_BIT: Final = 0x04
STREAM_LEN_BIT: Final = 0x02
STREAM_FIN_BIT: Final = 0x01


# --------------------------------------------------------------------------------------------------
# Frame classes


class _Frame(Record):
    """The frame classes' base: value semantics from ``Record`` (equal when of the same class with
    equal fields, in ``_fields`` order)."""

    __slots__ = ()


class PaddingFrame(_Frame):
    """A run of PADDING bytes (RFC 9000 §19.1), collapsed into one frame.

    Constructed as ``PaddingFrame(length)``; ``length()`` (like every frame) returns the encoded
    size, which for padding is the number of bytes, also available as ``size``.
    """

    __slots__ = ("size",)
    _fields: ClassVar[tuple[str, ...]] = ("size",)
    wire_type: ClassVar[int] = FrameType.PADDING

    def __init__(self, length: int = 1) -> None:
        if length < 1:
            raise ValueError(f"padding length must be positive, got {length}")
        self.size: Final = length

    def __repr__(self) -> str:
        return f"PaddingFrame(length={self.size})"

    def append(self, buf: bytearray) -> None:
        buf += bytes(self.size)

    def length(self) -> int:
        return self.size


class PingFrame(_Frame):
    """PING (RFC 9000 §19.2)."""

    __slots__ = ()
    wire_type: ClassVar[int] = FrameType.PING

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.PING)

    def length(self) -> int:
        return 1


class AckFrame(_Frame):
    """ACK / ACK_ECN (RFC 9000 §19.3).

    ``ranges`` are inclusive ``(smallest, largest)`` pairs in descending order, the first holding the
    largest acknowledged packet. ``delay`` is the raw encoded ACK Delay field (the receiver scales it
    by the peer's ack_delay_exponent). ``ecn`` is ``(ect0, ect1, ce)`` or None (type 0x02).
    """

    __slots__ = ("delay", "ecn", "ranges")
    _fields: ClassVar[tuple[str, ...]] = ("ranges", "delay", "ecn")

    def __init__(
        self, ranges: tuple[tuple[int, int], ...], delay: int = 0, ecn: tuple[int, int, int] | None = None
    ) -> None:
        self.ranges: Final = ranges
        self.delay: Final = delay
        self.ecn: Final = ecn

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


class ResetStreamFrame(_Frame):
    """RESET_STREAM (RFC 9000 §19.4)."""

    __slots__ = ("error_code", "final_size", "stream_id")
    _fields: ClassVar[tuple[str, ...]] = ("stream_id", "error_code", "final_size")
    wire_type: ClassVar[int] = FrameType.RESET_STREAM

    def __init__(self, stream_id: int, error_code: int, final_size: int) -> None:
        self.stream_id: Final = stream_id
        self.error_code: Final = error_code
        self.final_size: Final = final_size

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.RESET_STREAM)
        append_varint(buf, self.stream_id)
        append_varint(buf, self.error_code)
        append_varint(buf, self.final_size)

    def length(self) -> int:
        return 1 + varint_len(self.stream_id) + varint_len(self.error_code) + varint_len(self.final_size)


class StopSendingFrame(_Frame):
    """STOP_SENDING (RFC 9000 §19.5)."""

    __slots__ = ("error_code", "stream_id")
    _fields: ClassVar[tuple[str, ...]] = ("stream_id", "error_code")
    wire_type: ClassVar[int] = FrameType.STOP_SENDING

    def __init__(self, stream_id: int, error_code: int) -> None:
        self.stream_id: Final = stream_id
        self.error_code: Final = error_code

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.STOP_SENDING)
        append_varint(buf, self.stream_id)
        append_varint(buf, self.error_code)

    def length(self) -> int:
        return 1 + varint_len(self.stream_id) + varint_len(self.error_code)


class CryptoFrame(_Frame):
    """CRYPTO (RFC 9000 §19.6)."""

    __slots__ = ("data", "offset")
    _fields: ClassVar[tuple[str, ...]] = ("offset", "data")
    wire_type: ClassVar[int] = FrameType.CRYPTO

    def __init__(self, offset: int, data: bytes) -> None:
        self.offset: Final = offset
        self.data: Final = data

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.CRYPTO)
        append_varint(buf, self.offset)
        append_varint(buf, len(self.data))
        buf += self.data

    def length(self) -> int:
        n = len(self.data)
        return 1 + varint_len(self.offset) + varint_len(n) + n


class NewTokenFrame(_Frame):
    """NEW_TOKEN (RFC 9000 §19.7); the token is never empty."""

    __slots__ = ("token",)
    _fields: ClassVar[tuple[str, ...]] = ("token",)
    wire_type: ClassVar[int] = FrameType.NEW_TOKEN

    def __init__(self, token: bytes) -> None:
        self.token: Final = token

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.NEW_TOKEN)
        append_varint(buf, len(self.token))
        buf += self.token

    def length(self) -> int:
        return 1 + varint_len(len(self.token)) + len(self.token)


class StreamFrame(_Frame):
    """STREAM (RFC 9000 §19.8). ``data`` may be a memoryview slice of the received packet.

    ``append``/``length`` take ``with_length``: the last frame of a packet may omit its Length
    field and extend to the end of the packet.
    """

    __slots__ = ("data", "fin", "offset", "stream_id")
    _fields: ClassVar[tuple[str, ...]] = ("stream_id", "offset", "data", "fin")

    def __init__(
        self, stream_id: int, offset: int, data: bytes | bytearray | memoryview, fin: bool = False
    ) -> None:
        self.stream_id: Final = stream_id
        self.offset: Final = offset
        self.data: Final = data
        self.fin: Final = fin

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


class MaxDataFrame(_Frame):
    """MAX_DATA (RFC 9000 §19.9)."""

    __slots__ = ("maximum",)
    _fields: ClassVar[tuple[str, ...]] = ("maximum",)
    wire_type: ClassVar[int] = FrameType.MAX_DATA

    def __init__(self, maximum: int) -> None:
        self.maximum: Final = maximum

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.MAX_DATA)
        append_varint(buf, self.maximum)

    def length(self) -> int:
        return 1 + varint_len(self.maximum)


class MaxStreamDataFrame(_Frame):
    """MAX_STREAM_DATA (RFC 9000 §19.10)."""

    __slots__ = ("maximum", "stream_id")
    _fields: ClassVar[tuple[str, ...]] = ("stream_id", "maximum")
    wire_type: ClassVar[int] = FrameType.MAX_STREAM_DATA

    def __init__(self, stream_id: int, maximum: int) -> None:
        self.stream_id: Final = stream_id
        self.maximum: Final = maximum

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.MAX_STREAM_DATA)
        append_varint(buf, self.stream_id)
        append_varint(buf, self.maximum)

    def length(self) -> int:
        return 1 + varint_len(self.stream_id) + varint_len(self.maximum)


class MaxStreamsFrame(_Frame):
    """MAX_STREAMS (RFC 9000 §19.11); ``bidi`` selects type 0x12 (bidirectional) or 0x13."""

    __slots__ = ("bidi", "maximum")
    _fields: ClassVar[tuple[str, ...]] = ("bidi", "maximum")

    def __init__(self, bidi: bool, maximum: int) -> None:
        self.bidi: Final = bidi
        self.maximum: Final = maximum

    @property
    def wire_type(self) -> int:
        return FrameType.MAX_STREAMS_BIDI if self.bidi else FrameType.MAX_STREAMS_UNI

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.MAX_STREAMS_BIDI if self.bidi else FrameType.MAX_STREAMS_UNI)
        append_varint(buf, self.maximum)

    def length(self) -> int:
        return 1 + varint_len(self.maximum)


class DataBlockedFrame(_Frame):
    """DATA_BLOCKED (RFC 9000 §19.12)."""

    __slots__ = ("limit",)
    _fields: ClassVar[tuple[str, ...]] = ("limit",)
    wire_type: ClassVar[int] = FrameType.DATA_BLOCKED

    def __init__(self, limit: int) -> None:
        self.limit: Final = limit

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.DATA_BLOCKED)
        append_varint(buf, self.limit)

    def length(self) -> int:
        return 1 + varint_len(self.limit)


class StreamDataBlockedFrame(_Frame):
    """STREAM_DATA_BLOCKED (RFC 9000 §19.13)."""

    __slots__ = ("limit", "stream_id")
    _fields: ClassVar[tuple[str, ...]] = ("stream_id", "limit")
    wire_type: ClassVar[int] = FrameType.STREAM_DATA_BLOCKED

    def __init__(self, stream_id: int, limit: int) -> None:
        self.stream_id: Final = stream_id
        self.limit: Final = limit

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.STREAM_DATA_BLOCKED)
        append_varint(buf, self.stream_id)
        append_varint(buf, self.limit)

    def length(self) -> int:
        return 1 + varint_len(self.stream_id) + varint_len(self.limit)


class StreamsBlockedFrame(_Frame):
    """STREAMS_BLOCKED (RFC 9000 §19.14); ``bidi`` selects type 0x16 or 0x17."""

    __slots__ = ("bidi", "limit")
    _fields: ClassVar[tuple[str, ...]] = ("bidi", "limit")

    def __init__(self, bidi: bool, limit: int) -> None:
        self.bidi: Final = bidi
        self.limit: Final = limit

    @property
    def wire_type(self) -> int:
        return FrameType.STREAMS_BLOCKED_BIDI if self.bidi else FrameType.STREAMS_BLOCKED_UNI

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.STREAMS_BLOCKED_BIDI if self.bidi else FrameType.STREAMS_BLOCKED_UNI)
        append_varint(buf, self.limit)

    def length(self) -> int:
        return 1 + varint_len(self.limit)


class NewConnectionIdFrame(_Frame):
    """NEW_CONNECTION_ID (RFC 9000 §19.15)."""

    __slots__ = ("connection_id", "reset_token", "retire_prior_to", "sequence")
    _fields: ClassVar[tuple[str, ...]] = ("sequence", "retire_prior_to", "connection_id", "reset_token")
    wire_type: ClassVar[int] = FrameType.NEW_CONNECTION_ID

    def __init__(self, sequence: int, retire_prior_to: int, connection_id: bytes, reset_token: bytes) -> None:
        self.sequence: Final = sequence
        self.retire_prior_to: Final = retire_prior_to
        self.connection_id: Final = connection_id
        self.reset_token: Final = reset_token

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


class RetireConnectionIdFrame(_Frame):
    """RETIRE_CONNECTION_ID (RFC 9000 §19.16)."""

    __slots__ = ("sequence",)
    _fields: ClassVar[tuple[str, ...]] = ("sequence",)
    wire_type: ClassVar[int] = FrameType.RETIRE_CONNECTION_ID

    def __init__(self, sequence: int) -> None:
        self.sequence: Final = sequence

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.RETIRE_CONNECTION_ID)
        append_varint(buf, self.sequence)

    def length(self) -> int:
        return 1 + varint_len(self.sequence)


class PathChallengeFrame(_Frame):
    """PATH_CHALLENGE (RFC 9000 §19.17): 8 bytes of data."""

    __slots__ = ("data",)
    _fields: ClassVar[tuple[str, ...]] = ("data",)
    wire_type: ClassVar[int] = FrameType.PATH_CHALLENGE

    def __init__(self, data: bytes) -> None:
        self.data: Final = data

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.PATH_CHALLENGE)
        buf += self.data

    def length(self) -> int:
        return 1 + PATH_DATA_LEN


class PathResponseFrame(_Frame):
    """PATH_RESPONSE (RFC 9000 §19.18): echoes the 8 bytes of a PATH_CHALLENGE."""

    __slots__ = ("data",)
    _fields: ClassVar[tuple[str, ...]] = ("data",)
    wire_type: ClassVar[int] = FrameType.PATH_RESPONSE

    def __init__(self, data: bytes) -> None:
        self.data: Final = data

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.PATH_RESPONSE)
        buf += self.data

    def length(self) -> int:
        return 1 + PATH_DATA_LEN


class ConnectionCloseFrame(_Frame):
    """CONNECTION_CLOSE (RFC 9000 §19.19).

    ``is_application`` selects type 0x1d (application close, no frame type field) over 0x1c.
    ``frame_type`` is the type of the frame that triggered the error (0x1c only; None encodes 0).
    """

    __slots__ = ("error_code", "frame_type", "is_application", "reason")
    _fields: ClassVar[tuple[str, ...]] = ("error_code", "frame_type", "reason", "is_application")

    def __init__(
        self,
        error_code: int,
        frame_type: int | None = None,
        reason: bytes = b"",
        is_application: bool = False,
    ) -> None:
        self.error_code: Final = error_code
        self.frame_type: Final = frame_type
        self.reason: Final = reason
        self.is_application: Final = is_application

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


class HandshakeDoneFrame(_Frame):
    """HANDSHAKE_DONE (RFC 9000 §19.20)."""

    __slots__ = ()
    wire_type: ClassVar[int] = FrameType.HANDSHAKE_DONE

    def append(self, buf: bytearray) -> None:
        buf.append(FrameType.HANDSHAKE_DONE)

    def length(self) -> int:
        return 1


class DatagramFrame(_Frame):
    """DATAGRAM (RFC 9221 §4); always sent with a Length field (type 0x31), both types parsed."""

    __slots__ = ("data",)
    _fields: ClassVar[tuple[str, ...]] = ("data",)
    wire_type: ClassVar[int] = FrameType.DATAGRAM_LEN

    def __init__(self, data: bytes | memoryview) -> None:
        self.data: Final = data

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
