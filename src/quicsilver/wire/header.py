"""QUIC packet headers: long and short headers, Version Negotiation and Retry packets.

Implements RFC 9000 §17 (§17.2 long header, §17.2.1 Version Negotiation, §17.2.2-§17.2.5 Initial,
0-RTT, Handshake and Retry, §17.3 short header), the version-independent invariants of RFC 8999 §5
used to route a datagram before its version is known, the QUIC v2 long-header type bits of
RFC 9369 §3.2, and the Retry pseudo-packet of RFC 9001 §5.8 (the integrity tag itself is computed by
``handshake.protection``).

Builders write *unprotected* headers; header protection is applied by the handshake layer. Parsers
treat the input as hostile: a malformed header raises ``TransportError`` (PROTOCOL_VIOLATION), and
the caller drops the packet (RFC 9000 §12.2 / §17: invalid packets are discarded, not answered).
"""

from __future__ import annotations

import os
import struct
from enum import IntEnum
from typing import ClassVar, Final, NamedTuple

from quicsilver.errors import TransportError, TransportErrorCode
from quicsilver.protocol import VERSION_1, VERSION_2
from quicsilver.wire.record import Record
from quicsilver.wire.varint import append_varint, decode_varint, varint_len

__all__ = [
    "LENGTH_FIELD_SIZE",
    "MAX_CID_LENGTH",
    "RETRY_INTEGRITY_TAG_SIZE",
    "InvariantHeader",
    "LongHeader",
    "PacketType",
    "ShortHeaderInfo",
    "build_long_header",
    "build_retry_without_tag",
    "build_short_header",
    "build_version_negotiation",
    "is_long_header",
    "long_header_length",
    "long_type_bits",
    "packet_type_from_bits",
    "parse_invariant_header",
    "parse_long_header",
    "parse_retry",
    "parse_short_header",
    "parse_version_negotiation",
    "patch_long_header_length",
    "retry_pseudo_packet",
    "short_header_length",
]

Buffer = bytes | bytearray | memoryview

LENGTH_FIELD_SIZE: Final = 2  # the Length field of long headers is always written as a 2-byte varint
MAX_CID_LENGTH: Final = 20  # RFC 9000 §17.2: version 1 connection IDs are at most 20 bytes
RETRY_INTEGRITY_TAG_SIZE: Final = 16  # RFC 9001 §5.8

HEADER_FORM_BIT: Final = 0x80
FIXED_BIT: Final = 0x40
SPIN_BIT: Final = 0x20
KEY_PHASE_BIT: Final = 0x04

_U32: Final = struct.Struct("!I")
_PROTOCOL_VIOLATION: Final = TransportErrorCode.PROTOCOL_VIOLATION


class PacketType(IntEnum):
    """QUIC packet types (the long-header ones, plus 1-RTT and Version Negotiation)."""

    INITIAL = 0
    ZERO_RTT = 1
    HANDSHAKE = 2
    RETRY = 3
    ONE_RTT = 4
    VERSION_NEGOTIATION = 5


# RFC 9000 §17.2 Table 5 (v1) and RFC 9369 §3.2 (v2): the two Long Packet Type bits.
_V1_BITS: Final = {
    PacketType.INITIAL: 0,
    PacketType.ZERO_RTT: 1,
    PacketType.HANDSHAKE: 2,
    PacketType.RETRY: 3,
}
_V2_BITS: Final = {
    PacketType.INITIAL: 1,
    PacketType.ZERO_RTT: 2,
    PacketType.HANDSHAKE: 3,
    PacketType.RETRY: 0,
}
_V1_TYPES: Final = (PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE, PacketType.RETRY)
_V2_TYPES: Final = (PacketType.RETRY, PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE)


def _malformed(reason: str) -> TransportError:
    return TransportError(_PROTOCOL_VIOLATION, reason)


def long_type_bits(version: int, packet_type: PacketType) -> int:
    """The 2-bit Long Packet Type of ``packet_type`` in ``version`` (v1: RFC 9000, v2: RFC 9369 §3.2)."""
    table = _V2_BITS if version == VERSION_2 else _V1_BITS
    try:
        return table[packet_type]
    except KeyError:
        raise ValueError(f"{packet_type.name} has no long header type bits") from None


def packet_type_from_bits(version: int, bits: int) -> PacketType:
    """The packet type a 2-bit Long Packet Type means in ``version``."""
    return (_V2_TYPES if version == VERSION_2 else _V1_TYPES)[bits & 0x03]


def is_long_header(first_byte: int) -> bool:
    """RFC 8999 §5.1: the most significant bit of the first byte selects the long header form."""
    return bool(first_byte & HEADER_FORM_BIT)


# --------------------------------------------------------------------------------------------------
# RFC 8999 invariants: routing without knowing the version


class InvariantHeader(Record):
    """The version-independent fields of a packet (RFC 8999 §5). ``version`` is 0 for short headers
    (and for Version Negotiation packets); ``scid`` is empty for short headers.

    A plain slotted class rather than a frozen dataclass: one is made per long-header datagram, and
    compiled, a dataclass keeps its interpreted ``__init__`` (docs/INTERNALS.md). Read-only by
    convention; value semantics from ``Record``.
    """

    __slots__ = ("dcid", "is_long", "scid", "version")
    _fields: ClassVar[tuple[str, ...]] = ("is_long", "version", "dcid", "scid")

    def __init__(self, is_long: bool, version: int, dcid: bytes, scid: bytes) -> None:
        self.is_long = is_long
        self.version = version
        self.dcid = dcid
        self.scid = scid


def parse_invariant_header(data: Buffer, short_dcid_len: int) -> InvariantHeader:
    """Parse the RFC 8999 invariant fields at the start of ``data``.

    Long-header connection IDs may be up to 255 bytes here (other versions allow longer IDs than
    v1; a server needs them to answer with Version Negotiation, RFC 9000 §17.2). Short headers carry
    a DCID of the locally chosen length ``short_dcid_len``. Raises TransportError on truncation.
    """
    n = len(data)
    if n == 0:
        raise _malformed("empty datagram")
    first = data[0]
    if not first & HEADER_FORM_BIT:
        end = 1 + short_dcid_len
        if end > n:
            raise _malformed("short header shorter than its connection ID")
        return InvariantHeader(False, 0, bytes(data[1:end]), b"")
    if n < 7:
        raise _malformed("long header truncated")
    version = _U32.unpack_from(data, 1)[0]
    dcid_len = data[5]
    pos = 6 + dcid_len
    if pos >= n:
        raise _malformed("long header truncated in DCID")
    dcid = bytes(data[6:pos])
    scid_len = data[pos]
    end = pos + 1 + scid_len
    if end > n:
        raise _malformed("long header truncated in SCID")
    return InvariantHeader(True, version, dcid, bytes(data[pos + 1 : end]))


# --------------------------------------------------------------------------------------------------
# Long headers (RFC 9000 §17.2)


class LongHeader(Record):
    """A parsed long header (RFC 9000 §17.2).

    ``pn_offset`` is the absolute offset of the (still protected) packet number field and
    ``packet_end`` = ``pn_offset + length``, the absolute end of this packet in the datagram (a
    datagram may coalesce several packets, RFC 9000 §12.2). For Retry, ``token`` is the Retry
    Token, ``length`` and ``pn_offset`` are 0, ``packet_end`` is the end of the datagram and the
    integrity tag is its last 16 bytes. For Version Negotiation, ``token`` is empty and
    ``packet_end`` is the end of the datagram.
    """

    __slots__ = ("dcid", "length", "packet_end", "packet_type", "pn_offset", "scid", "token", "version")
    _fields: ClassVar[tuple[str, ...]] = (
        "version",
        "packet_type",
        "dcid",
        "scid",
        "token",
        "length",
        "pn_offset",
        "packet_end",
    )

    def __init__(
        self,
        version: int,
        packet_type: PacketType,
        dcid: bytes,
        scid: bytes,
        token: bytes,
        length: int,
        pn_offset: int,
        packet_end: int,
    ) -> None:
        # a plain slotted class, as InvariantHeader: one per long-header packet
        self.version = version
        self.packet_type = packet_type
        self.dcid = dcid
        self.scid = scid
        self.token = token
        self.length = length
        self.pn_offset = pn_offset
        self.packet_end = packet_end


def parse_long_header(data: Buffer, pos: int = 0, *, check_fixed_bit: bool = True) -> LongHeader:
    """Parse the long header of the packet starting at ``data[pos]`` (QUIC v1 or v2, or VN).

    ``check_fixed_bit=False`` accepts a zero Fixed Bit, for a peer that negotiated grease_quic_bit
    (RFC 9287). Raises TransportError (PROTOCOL_VIOLATION) for a truncated or malformed header, an
    unsupported version, a connection ID longer than 20 bytes, or a Length beyond the datagram.
    """
    try:
        return _parse_long_header(data, pos, check_fixed_bit)
    except TransportError as e:
        if e.code == _PROTOCOL_VIOLATION:
            raise
        raise _malformed(f"long header: {e.reason}") from None


def _parse_long_header(data: Buffer, pos: int, check_fixed_bit: bool) -> LongHeader:
    n = len(data)
    if pos + 7 > n:
        raise _malformed("long header truncated")
    first = data[pos]
    if not first & HEADER_FORM_BIT:
        raise _malformed("not a long header")
    version = _U32.unpack_from(data, pos + 1)[0]
    if version == 0:
        dcid, scid, _ = _parse_vn_body(data, pos)
        return LongHeader(0, PacketType.VERSION_NEGOTIATION, dcid, scid, b"", 0, 0, n)
    if version != VERSION_1 and version != VERSION_2:
        raise _malformed(f"unsupported version {version:#010x}")
    # RFC 9000 §17.2: "Packets containing a zero value for this bit are not valid packets in this
    # version and MUST be discarded" (unless grease_quic_bit was negotiated, RFC 9287 §3).
    if check_fixed_bit and not first & FIXED_BIT:
        raise _malformed("fixed bit is zero")
    packet_type = packet_type_from_bits(version, first >> 4)
    dcid, scid, p = _parse_cids(data, pos + 5)
    if packet_type == PacketType.RETRY:
        tag_start = n - RETRY_INTEGRITY_TAG_SIZE
        if tag_start < p:
            raise _malformed("Retry packet shorter than its integrity tag")
        return LongHeader(version, packet_type, dcid, scid, bytes(data[p:tag_start]), 0, 0, n)
    token = b""
    if packet_type == PacketType.INITIAL:
        token_len, p = decode_varint(data, p)
        token_end = p + token_len
        if token_end > n:
            raise _malformed("Initial token truncated")
        token = bytes(data[p:token_end])
        p = token_end
    length, p = decode_varint(data, p)
    packet_end = p + length
    if packet_end > n:
        raise _malformed("packet Length beyond the datagram")
    return LongHeader(version, packet_type, dcid, scid, token, length, p, packet_end)


def _parse_cids(data: Buffer, pos: int) -> tuple[bytes, bytes, int]:
    """DCID and SCID with their length bytes at ``data[pos]``, each at most 20 bytes (v1/v2)."""
    n = len(data)
    if pos >= n:
        raise _malformed("truncated DCID length")
    dcid_len = data[pos]
    # RFC 9000 §17.2: "Endpoints that receive a version 1 long header with a value larger than 20
    # MUST drop the packet."
    if dcid_len > MAX_CID_LENGTH:
        raise _malformed(f"DCID length {dcid_len} > 20")
    pos += 1
    end = pos + dcid_len
    if end >= n:
        raise _malformed("truncated DCID")
    dcid = bytes(data[pos:end])
    scid_len = data[end]
    if scid_len > MAX_CID_LENGTH:
        raise _malformed(f"SCID length {scid_len} > 20")
    pos = end + 1
    end = pos + scid_len
    if end > n:
        raise _malformed("truncated SCID")
    return dcid, bytes(data[pos:end]), end


def long_header_length(dcid_len: int, scid_len: int, token_len: int | None, pn_len: int) -> int:
    """Size of a long header up to and including the packet number (Length written in 2 bytes).

    ``token_len`` is None for packet types without a token field (0-RTT, Handshake).
    """
    n = 1 + 4 + 1 + dcid_len + 1 + scid_len + LENGTH_FIELD_SIZE + pn_len
    if token_len is not None:
        n += varint_len(token_len) + token_len
    return n


def build_long_header(
    buf: bytearray,
    version: int,
    packet_type: PacketType,
    dcid: bytes,
    scid: bytes,
    token: bytes,
    length: int,
    pn: int,
    pn_len: int,
) -> int:
    """Append an unprotected Initial, 0-RTT or Handshake header to ``buf``; return the pn offset.

    ``length`` is the Length field (packet number + payload + AEAD tag), written as a 2-byte varint
    so it can be patched later (``patch_long_header_length``); ``pn`` is truncated to ``pn_len``
    (1..4) bytes. ``token`` is written only for Initial packets. Reserved bits are 0.
    """
    if not 1 <= pn_len <= 4:
        raise ValueError(f"packet number length must be 1..4, got {pn_len}")
    if len(dcid) > MAX_CID_LENGTH or len(scid) > MAX_CID_LENGTH:
        raise ValueError("connection ID longer than 20 bytes")
    buf.append(HEADER_FORM_BIT | FIXED_BIT | long_type_bits(version, packet_type) << 4 | (pn_len - 1))
    buf += _U32.pack(version)
    buf.append(len(dcid))
    buf += dcid
    buf.append(len(scid))
    buf += scid
    if packet_type == PacketType.INITIAL:
        append_varint(buf, len(token))
        buf += token
    if not 0 <= length < 0x4000:
        raise ValueError(f"Length {length} does not fit the 2-byte Length field")
    buf += (0x4000 | length).to_bytes(2, "big")
    pn_offset = len(buf)
    buf += (pn & ((1 << (8 * pn_len)) - 1)).to_bytes(pn_len, "big")
    return pn_offset


def patch_long_header_length(buf: bytearray, pn_offset: int, length: int) -> None:
    """Rewrite the 2-byte Length field that precedes the packet number at ``pn_offset``."""
    if not 0 <= length < 0x4000:
        raise ValueError(f"Length {length} does not fit the 2-byte Length field")
    buf[pn_offset - 2] = 0x40 | length >> 8
    buf[pn_offset - 1] = length & 0xFF


# --------------------------------------------------------------------------------------------------
# Short header (RFC 9000 §17.3.1)


class ShortHeaderInfo(NamedTuple):
    """What ``parse_short_header`` returns: the DCID and the offset of the packet number field."""

    dcid: bytes
    pn_offset: int


def parse_short_header(data: Buffer, pos: int, dcid_len: int) -> ShortHeaderInfo:
    """Parse a 1-RTT header at ``data[pos]`` whose DCID has the locally chosen length ``dcid_len``.

    Raises TransportError if the first byte is not a short header or the DCID is truncated. The
    Fixed Bit is left to the caller: a peer that negotiated grease_quic_bit (RFC 9287) may clear it.
    """
    n = len(data)
    if pos >= n:
        raise _malformed("empty packet")
    if data[pos] & HEADER_FORM_BIT:
        raise _malformed("not a short header")
    pn_offset = pos + 1 + dcid_len
    if pn_offset > n:
        raise _malformed("short header truncated in DCID")
    return ShortHeaderInfo(bytes(data[pos + 1 : pn_offset]), pn_offset)


def short_header_length(dcid_len: int, pn_len: int) -> int:
    """Size of a short header including the packet number."""
    return 1 + dcid_len + pn_len


def build_short_header(
    buf: bytearray, dcid: bytes, pn: int, pn_len: int, key_phase: bool, spin: bool = False
) -> int:
    """Append an unprotected 1-RTT header to ``buf``; return the offset of the packet number.

    Reserved bits are 0 (RFC 9000 §17.3.1), the Fixed Bit is 1.
    """
    if not 1 <= pn_len <= 4:
        raise ValueError(f"packet number length must be 1..4, got {pn_len}")
    buf.append(FIXED_BIT | (SPIN_BIT if spin else 0) | (KEY_PHASE_BIT if key_phase else 0) | (pn_len - 1))
    buf += dcid
    pn_offset = len(buf)
    buf += (pn & ((1 << (8 * pn_len)) - 1)).to_bytes(pn_len, "big")
    return pn_offset


# --------------------------------------------------------------------------------------------------
# Version Negotiation (RFC 9000 §17.2.1)


def build_version_negotiation(dcid: bytes, scid: bytes, versions: list[int] | tuple[int, ...]) -> bytes:
    """A Version Negotiation packet listing ``versions``.

    ``dcid``/``scid`` are written as given: the server echoes the client's SCID as DCID and its
    DCID as SCID. The unused first-byte bits are random, with 0x40 set (RFC 9000 §17.2.1: servers
    SHOULD set it where QUIC is multiplexed with other protocols).
    """
    if len(dcid) > 255 or len(scid) > 255:
        raise ValueError("connection ID longer than 255 bytes")
    buf = bytearray((HEADER_FORM_BIT | FIXED_BIT | (os.urandom(1)[0] & 0x3F),))
    buf += bytes(4)
    buf.append(len(dcid))
    buf += dcid
    buf.append(len(scid))
    buf += scid
    for v in versions:
        buf += _U32.pack(v)
    return bytes(buf)


def parse_version_negotiation(data: Buffer) -> tuple[bytes, bytes, list[int]]:
    """Parse a Version Negotiation packet: ``(dcid, scid, supported_versions)``.

    Raises TransportError if it is not a VN packet or the version list is not a whole number of
    4-byte versions. Connection IDs up to 255 bytes are accepted (RFC 8999 §6).
    """
    if len(data) < 7 or not data[0] & HEADER_FORM_BIT or _U32.unpack_from(data, 1)[0] != 0:
        raise _malformed("not a Version Negotiation packet")
    dcid, scid, versions = _parse_vn_body(data, 0)
    return dcid, scid, versions


def _parse_vn_body(data: Buffer, pos: int) -> tuple[bytes, bytes, list[int]]:
    n = len(data)
    p = pos + 5
    if p >= n:
        raise _malformed("VN truncated")
    dcid_end = p + 1 + data[p]
    if dcid_end >= n:
        raise _malformed("VN truncated in DCID")
    dcid = bytes(data[p + 1 : dcid_end])
    scid_end = dcid_end + 1 + data[dcid_end]
    if scid_end > n:
        raise _malformed("VN truncated in SCID")
    scid = bytes(data[dcid_end + 1 : scid_end])
    if (n - scid_end) % 4:
        raise _malformed("VN version list is not a multiple of 4 bytes")
    versions = [_U32.unpack_from(data, p)[0] for p in range(scid_end, n, 4)]
    return dcid, scid, versions


# --------------------------------------------------------------------------------------------------
# Retry (RFC 9000 §17.2.5, RFC 9001 §5.8)


def build_retry_without_tag(
    version: int, dcid: bytes, scid: bytes, token: bytes, unused_bits: int = 0x0F
) -> bytes:
    """A Retry packet without its 16-byte integrity tag (append ``retry_integrity_tag`` of the
    pseudo-packet). ``unused_bits`` fills the 4 unused bits of the first byte (arbitrary per
    RFC 9000 §17.2.5; 0x0F reproduces the RFC 9001 A.4 example)."""
    if len(dcid) > MAX_CID_LENGTH or len(scid) > MAX_CID_LENGTH:
        raise ValueError("connection ID longer than 20 bytes")
    buf = bytearray(
        (HEADER_FORM_BIT | FIXED_BIT | long_type_bits(version, PacketType.RETRY) << 4 | (unused_bits & 0x0F),)
    )
    buf += _U32.pack(version)
    buf.append(len(dcid))
    buf += dcid
    buf.append(len(scid))
    buf += scid
    buf += token
    return bytes(buf)


def retry_pseudo_packet(odcid: bytes, retry_packet_without_tag: bytes | bytearray | memoryview) -> bytes:
    """The Retry Pseudo-Packet the integrity tag is computed over (RFC 9001 §5.8):
    ODCID Length (1 byte), Original Destination Connection ID, then the Retry packet minus its tag."""
    if len(odcid) > 255:
        raise ValueError("original DCID longer than 255 bytes")
    return bytes((len(odcid),)) + odcid + bytes(retry_packet_without_tag)


def parse_retry(data: Buffer) -> tuple[int, bytes, bytes, bytes, bytes]:
    """Parse a Retry packet: ``(version, dcid, scid, token, integrity_tag)``.

    Raises TransportError if ``data`` is not a well-formed v1/v2 Retry packet. A client must still
    discard a Retry with an empty token (RFC 9000 §17.2.5.2) and verify the tag.
    """
    header = parse_long_header(data, 0)
    if header.packet_type != PacketType.RETRY:
        raise _malformed("not a Retry packet")
    tag = bytes(data[len(data) - RETRY_INTEGRITY_TAG_SIZE :])
    return header.version, header.dcid, header.scid, header.token, tag
