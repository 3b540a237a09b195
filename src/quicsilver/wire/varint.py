"""Variable-length integer encoding (RFC 9000 §16).

The two most significant bits of the first byte give the encoded length (1, 2, 4 or 8 bytes);
the remaining bits hold the value in network byte order. Values range over 0 .. 2^62 - 1.
"""

from __future__ import annotations

import struct
from typing import Final

from quicsilver.errors import TransportError, TransportErrorCode

__all__ = [
    "MAX_VARINT",
    "append_varint",
    "append_varint_2",
    "decode_varint",
    "encode_varint",
    "varint_len",
]

MAX_VARINT: Final = (1 << 62) - 1

_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")
_U64: Final = struct.Struct("!Q")

# Encoded length by the two prefix bits of the first byte (RFC 9000 §16, Table 4).
_LEN_BY_PREFIX: Final = (1, 2, 4, 8)


def varint_len(v: int) -> int:
    """The number of bytes ``v`` takes as a varint (1, 2, 4 or 8); ValueError if out of range."""
    if v < 0x40:
        if v < 0:
            raise ValueError(f"varint must be non-negative, got {v}")
        return 1
    if v < 0x4000:
        return 2
    if v < 0x40000000:
        return 4
    if v <= MAX_VARINT:
        return 8
    raise ValueError(f"varint too large: {v}")


def encode_varint(v: int) -> bytes:
    """The shortest varint encoding of ``v``; ValueError if ``v`` is outside 0 .. 2^62-1."""
    if v < 0x40:
        if v < 0:
            raise ValueError(f"varint must be non-negative, got {v}")
        return bytes((v,))
    if v < 0x4000:
        return _U16.pack(0x4000 | v)
    if v < 0x40000000:
        return _U32.pack(0x80000000 | v)
    if v <= MAX_VARINT:
        return _U64.pack(0xC000000000000000 | v)
    raise ValueError(f"varint too large: {v}")


def append_varint(buf: bytearray, v: int) -> None:
    """Append the shortest varint encoding of ``v`` to ``buf``."""
    if 0 <= v < 0x40:
        buf.append(v)
    else:
        buf += encode_varint(v)


def append_varint_2(buf: bytearray, v: int) -> None:
    """Append ``v`` (< 2^14) as a 2-byte varint, e.g. a Length field that is patched later."""
    if not 0 <= v < 0x4000:
        raise ValueError(f"value {v} does not fit a 2-byte varint")
    buf += _U16.pack(0x4000 | v)


def decode_varint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """Decode the varint at ``buf[pos]``; returns ``(value, new_pos)``.

    Raises TransportError(FRAME_ENCODING_ERROR) when the buffer ends inside the varint.
    """
    try:
        first = buf[pos]
    except IndexError:
        raise TransportError(TransportErrorCode.FRAME_ENCODING_ERROR, "truncated varint") from None
    prefix = first >> 6
    if prefix == 0:
        return first, pos + 1
    n = _LEN_BY_PREFIX[prefix]
    end = pos + n
    if end > len(buf):
        raise TransportError(TransportErrorCode.FRAME_ENCODING_ERROR, "truncated varint")
    if n == 2:
        return _U16.unpack_from(buf, pos)[0] & 0x3FFF, end
    if n == 4:
        return _U32.unpack_from(buf, pos)[0] & 0x3FFFFFFF, end
    return _U64.unpack_from(buf, pos)[0] & 0x3FFFFFFFFFFFFFFF, end
