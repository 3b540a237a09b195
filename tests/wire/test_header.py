"""Packet headers (RFC 9000 §17, RFC 8999 §5-6, RFC 9001 §5.8 and A.2-A.5, RFC 9369 §3.2 and A)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicsilver.errors import TransportError, TransportErrorCode
from quicsilver.protocol import VERSION_1, VERSION_2
from quicsilver.wire.header import (
    LENGTH_FIELD_SIZE,
    InvariantHeader,
    PacketType,
    build_long_header,
    build_retry_without_tag,
    build_short_header,
    build_version_negotiation,
    is_long_header,
    long_header_length,
    long_type_bits,
    packet_type_from_bits,
    parse_invariant_header,
    parse_long_header,
    parse_retry,
    parse_short_header,
    parse_version_negotiation,
    patch_long_header_length,
    retry_pseudo_packet,
    short_header_length,
)
from tests.wire.strategies import WIRE_SETTINGS

CLIENT_DCID = bytes.fromhex("8394c8f03e515708")
SERVER_SCID = bytes.fromhex("f067a5502a4262b5")
PV = TransportErrorCode.PROTOCOL_VIOLATION


def header_error(fn: object, *args: object) -> TransportError:
    with pytest.raises(TransportError) as exc:
        fn(*args)  # type: ignore[operator]
    assert exc.value.code == PV
    return exc.value


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        # RFC 9000 §17.2 Table 5.
        (
            VERSION_1,
            {PacketType.INITIAL: 0, PacketType.ZERO_RTT: 1, PacketType.HANDSHAKE: 2, PacketType.RETRY: 3},
        ),
        # RFC 9369 §3.2.
        (
            VERSION_2,
            {PacketType.INITIAL: 1, PacketType.ZERO_RTT: 2, PacketType.HANDSHAKE: 3, PacketType.RETRY: 0},
        ),
    ],
    ids=["v1", "v2"],
)
def test_long_type_bits(version: int, expected: dict[PacketType, int]) -> None:
    for packet_type, bits in expected.items():
        assert long_type_bits(version, packet_type) == bits
        assert packet_type_from_bits(version, bits) == packet_type
    with pytest.raises(ValueError):
        long_type_bits(version, PacketType.ONE_RTT)


# Unprotected headers from RFC 9001 Appendix A.2/A.3 and RFC 9369 Appendix A.2/A.3.
RFC_LONG_HEADERS = [
    pytest.param(
        VERSION_1,
        CLIENT_DCID,
        b"",
        1182,
        2,
        4,
        "c300000001088394c8f03e5157080000449e00000002",
        id="rfc9001-A.2",
    ),
    pytest.param(
        VERSION_1, b"", SERVER_SCID, 117, 1, 2, "c1000000010008f067a5502a4262b50040750001", id="rfc9001-A.3"
    ),
    pytest.param(
        VERSION_2,
        CLIENT_DCID,
        b"",
        1182,
        2,
        4,
        "d36b3343cf088394c8f03e5157080000449e00000002",
        id="rfc9369-A.2",
    ),
    pytest.param(
        VERSION_2, b"", SERVER_SCID, 117, 1, 2, "d16b3343cf0008f067a5502a4262b50040750001", id="rfc9369-A.3"
    ),
]


@pytest.mark.parametrize(("version", "dcid", "scid", "length", "pn", "pn_len", "expected"), RFC_LONG_HEADERS)
def test_rfc_initial_headers(
    version: int, dcid: bytes, scid: bytes, length: int, pn: int, pn_len: int, expected: str
) -> None:
    buf = bytearray()
    pn_offset = build_long_header(buf, version, PacketType.INITIAL, dcid, scid, b"", length, pn, pn_len)
    assert buf.hex() == expected
    assert pn_offset == len(buf) - pn_len
    assert long_header_length(len(dcid), len(scid), 0, pn_len) == len(buf)
    datagram = bytes(buf) + bytes(length - pn_len) + b"coalesced"
    header = parse_long_header(datagram, 0)
    assert (header.version, header.packet_type, header.dcid, header.scid, header.token) == (
        version,
        PacketType.INITIAL,
        dcid,
        scid,
        b"",
    )
    assert header.length == length
    assert header.pn_offset == pn_offset
    assert header.packet_end == pn_offset + length == len(datagram) - len(b"coalesced")


def test_rfc9001_a5_chacha20_short_header() -> None:
    buf = bytearray()
    pn_offset = build_short_header(buf, b"", 654360564, 3, key_phase=False)
    assert buf.hex() == "4200bff4"
    assert pn_offset == 1
    assert short_header_length(0, 3) == 4
    assert parse_short_header(bytes(buf), 0, 0) == (b"", 1)


@pytest.mark.parametrize(
    ("version", "packet"),
    [
        pytest.param(
            VERSION_1,
            "ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba",
            id="rfc9001-A.4",
        ),
        pytest.param(
            VERSION_2,
            "cf6b3343cf0008f067a5502a4262b5746f6b656ec8646ce8bfe33952d955543665dcc7b6",
            id="rfc9369-A.4",
        ),
    ],
)
def test_rfc_retry(version: int, packet: str) -> None:
    data = bytes.fromhex(packet)
    assert build_retry_without_tag(version, b"", SERVER_SCID, b"token") == data[:-16]
    assert parse_retry(data) == (version, b"", SERVER_SCID, b"token", data[-16:])
    header = parse_long_header(data, 0)
    assert header.packet_type == PacketType.RETRY
    assert (header.length, header.pn_offset, header.packet_end) == (0, 0, len(data))
    # RFC 9001 §5.8: ODCID Length, ODCID, then the Retry packet without its tag.
    assert retry_pseudo_packet(CLIENT_DCID, data[:-16]) == b"\x08" + CLIENT_DCID + data[:-16]


def test_retry_shorter_than_tag() -> None:
    packet = build_retry_without_tag(VERSION_1, b"", b"abc", b"")
    header_error(parse_retry, packet + bytes(15))
    header_error(parse_retry, bytes(build_long_header_initial()))


def build_long_header_initial() -> bytearray:
    buf = bytearray()
    build_long_header(buf, VERSION_1, PacketType.INITIAL, b"d", b"s", b"", 1, 0, 1)
    return buf


@settings(WIRE_SETTINGS, max_examples=150)
@given(
    st.sampled_from([VERSION_1, VERSION_2]),
    st.sampled_from([PacketType.INITIAL, PacketType.ZERO_RTT, PacketType.HANDSHAKE]),
    st.binary(max_size=20),
    st.binary(max_size=20),
    st.binary(max_size=80),
    st.integers(min_value=1, max_value=4),
    st.integers(min_value=0, max_value=2**62 - 1),
    st.integers(min_value=0, max_value=60),
)
def test_long_header_round_trip_and_truncations(
    version: int,
    packet_type: PacketType,
    dcid: bytes,
    scid: bytes,
    token: bytes,
    pn_len: int,
    pn: int,
    payload_len: int,
) -> None:
    buf = bytearray()
    length = pn_len + payload_len
    pn_offset = build_long_header(buf, version, packet_type, dcid, scid, token, length, pn, pn_len)
    token_len = len(token) if packet_type == PacketType.INITIAL else None
    assert long_header_length(len(dcid), len(scid), token_len, pn_len) == len(buf)
    assert int.from_bytes(buf[pn_offset:], "big") == pn & ((1 << (8 * pn_len)) - 1)
    assert buf[0] & 0x03 == pn_len - 1 and buf[0] & 0x0C == 0  # reserved bits 0
    datagram = bytes(buf) + bytes(payload_len)
    header = parse_long_header(memoryview(datagram), 0)
    assert header.version == version and header.packet_type == packet_type
    assert header.dcid == dcid and header.scid == scid
    assert header.token == (token if packet_type == PacketType.INITIAL else b"")
    assert header.pn_offset == pn_offset and header.packet_end == len(datagram)
    assert parse_invariant_header(datagram, 8) == InvariantHeader(True, version, dcid, scid)
    for cut in range(len(datagram)):
        header_error(parse_long_header, datagram[:cut], 0)


def test_coalesced_packets_are_found_by_offset() -> None:
    buf = bytearray()
    build_long_header(buf, VERSION_1, PacketType.INITIAL, b"abcd", b"", b"", 5, 0, 1)
    buf += bytes(4)
    second = len(buf)
    build_long_header(buf, VERSION_1, PacketType.HANDSHAKE, b"abcd", b"", b"", 3, 7, 2)
    buf += bytes(1)
    first = parse_long_header(buf, 0)
    assert first.packet_end == second
    header = parse_long_header(buf, first.packet_end)
    assert header.packet_type == PacketType.HANDSHAKE
    assert header.packet_end == len(buf)


def test_patch_length() -> None:
    buf = bytearray()
    pn_offset = build_long_header(buf, VERSION_1, PacketType.HANDSHAKE, b"ab", b"cd", b"", 0, 1, 1)
    patch_long_header_length(buf, pn_offset, 1000)
    assert buf[pn_offset - LENGTH_FIELD_SIZE : pn_offset] == b"\x43\xe8"
    with pytest.raises(ValueError):
        patch_long_header_length(buf, pn_offset, 0x4000)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(
            b"\xc0\x00\x00\x00\x01\x15" + bytes(21) + b"\x00\x00\x01\x00", "DCID", id="dcid-21-bytes"
        ),
        pytest.param(
            b"\xc0\x00\x00\x00\x01\x00\x15" + bytes(21) + b"\x00\x01\x00", "SCID", id="scid-21-bytes"
        ),
        pytest.param(b"\xc0\x1a\x2a\x3a\x4a\x00\x00\x00\x01\x00", "unsupported", id="unknown-version"),
        pytest.param(b"\x80\x00\x00\x00\x01\x00\x00\x00\x01\x00", "fixed bit", id="fixed-bit-zero"),
        pytest.param(b"\x40\x00\x00\x00\x01\x00\x00\x00\x01\x00", "not a long", id="short-header"),
        pytest.param(b"\xc0\x00\x00\x00\x01\x00\x00\x05\x00", "token", id="token-beyond-datagram"),
        pytest.param(b"\xe0\x00\x00\x00\x01\x00\x00\x05\x00", "Length", id="length-beyond-datagram"),
    ],
)
def test_malformed_long_headers(data: bytes, reason: str) -> None:
    assert reason in header_error(parse_long_header, data, 0).reason


def test_fixed_bit_zero_allowed_with_grease_quic_bit() -> None:
    # RFC 9287: a peer that advertised grease_quic_bit may send the Fixed Bit as 0.
    header = parse_long_header(b"\x80\x00\x00\x00\x01\x00\x00\x00\x01\x00", 0, check_fixed_bit=False)
    assert header.packet_type == PacketType.INITIAL and header.length == 1


def test_invariant_header() -> None:
    assert is_long_header(0xC0) and not is_long_header(0x40)
    assert parse_invariant_header(b"\x41abcdpayload", 4) == InvariantHeader(False, 0, b"abcd", b"")
    # RFC 8999 §5.1: connection IDs of other versions may be up to 255 bytes.
    data = b"\xc0\x1a\x2a\x3a\x4a" + b"\xff" + bytes(255) + b"\x10" + bytes(16)
    assert parse_invariant_header(data, 8) == InvariantHeader(True, 0x1A2A3A4A, bytes(255), bytes(16))
    for cut in range(len(b"\x41abcd")):
        header_error(parse_invariant_header, b"\x41abcd"[:cut], 4)
    for cut in range(7):
        header_error(parse_invariant_header, data[:cut], 8)
    header_error(parse_invariant_header, data[:-1], 8)


def test_short_header_round_trip() -> None:
    buf = bytearray(b"prefix")
    pn_offset = build_short_header(buf, b"cid!", 0x1234, 2, key_phase=True, spin=True)
    assert buf[6] == 0x40 | 0x20 | 0x04 | 0x01
    assert parse_short_header(buf, 6, 4) == (b"cid!", pn_offset)
    assert parse_short_header(buf, 6, 4).pn_offset == 11
    header_error(parse_short_header, b"\xc0abc", 0, 2)
    header_error(parse_short_header, b"\x40abc", 0, 4)
    header_error(parse_short_header, b"", 0, 0)


def test_version_negotiation() -> None:
    versions = [VERSION_1, VERSION_2, 0x1A2A3A4A]
    packet = build_version_negotiation(b"client-scid", b"dcid", versions)
    assert packet[0] & 0xC0 == 0xC0  # RFC 9000 §17.2.1: form bit, and 0x40 SHOULD be set
    assert packet[1:5] == bytes(4)
    assert parse_version_negotiation(packet) == (b"client-scid", b"dcid", versions)
    header = parse_long_header(packet, 0)
    assert header.packet_type == PacketType.VERSION_NEGOTIATION and header.version == 0
    assert parse_invariant_header(packet, 4).version == 0
    header_error(parse_version_negotiation, packet[:-1])  # not a whole number of versions
    header_error(parse_version_negotiation, b"\xc0\x00\x00\x00\x01\x00\x00")  # not version 0
    for cut in range(len(packet) - 12):
        with pytest.raises(TransportError):
            parse_version_negotiation(packet[:cut])


def test_version_negotiation_first_byte_is_random() -> None:
    first_bytes = {build_version_negotiation(b"", b"", [VERSION_1])[0] for _ in range(64)}
    assert len(first_bytes) > 1


HEADER_PARSERS = [
    pytest.param(lambda d: parse_long_header(d, 0), id="long"),
    pytest.param(lambda d: parse_long_header(d, 0, check_fixed_bit=False), id="long-greased"),
    pytest.param(lambda d: parse_invariant_header(d, 8), id="invariant"),
    pytest.param(lambda d: parse_short_header(d, 0, 8), id="short"),
    pytest.param(parse_version_negotiation, id="vn"),
    pytest.param(parse_retry, id="retry"),
]


@pytest.mark.parametrize("parser", HEADER_PARSERS)
@settings(WIRE_SETTINGS, max_examples=200)
@given(
    prefix=st.sampled_from(
        [b"\xc0\x00\x00\x00\x01", b"\xd0\x6b\x33\x43\xcf", b"\xf0\x00\x00\x00\x01", b"\x80" + bytes(4), b""]
    ),
    data=st.binary(max_size=60),
)
def test_random_bytes_raise_only_transport_error(parser: object, prefix: bytes, data: bytes) -> None:
    try:
        parser(prefix + data)  # type: ignore[operator]
    except TransportError as e:
        assert e.code == PV


@settings(WIRE_SETTINGS, max_examples=150)
@given(
    st.sampled_from([VERSION_1, VERSION_2]),
    st.binary(max_size=20),
    st.binary(max_size=20),
    st.binary(max_size=100),
    st.binary(min_size=16, max_size=16),
    st.integers(min_value=0, max_value=15),
)
def test_retry_round_trip(
    version: int, dcid: bytes, scid: bytes, token: bytes, tag: bytes, unused: int
) -> None:
    packet = build_retry_without_tag(version, dcid, scid, token, unused_bits=unused) + tag
    assert packet[0] & 0x0F == unused
    assert parse_retry(packet) == (version, dcid, scid, token, tag)
    assert parse_invariant_header(packet, 0) == InvariantHeader(True, version, dcid, scid)
    header_error(parse_retry, packet[: len(packet) - len(token) - 1])  # cut into the tag + SCID


@settings(WIRE_SETTINGS, max_examples=150)
@given(
    st.binary(max_size=255),
    st.binary(max_size=255),
    st.lists(st.integers(min_value=0, max_value=2**32 - 1), max_size=10),
)
def test_version_negotiation_round_trip(dcid: bytes, scid: bytes, versions: list[int]) -> None:
    packet = build_version_negotiation(dcid, scid, versions)
    assert parse_version_negotiation(packet) == (dcid, scid, versions)
    assert parse_invariant_header(packet, 0) == InvariantHeader(True, 0, dcid, scid)


@settings(WIRE_SETTINGS, max_examples=150)
@given(
    st.binary(max_size=20),
    st.integers(min_value=0, max_value=2**62 - 1),
    st.integers(min_value=1, max_value=4),
    st.booleans(),
    st.booleans(),
)
def test_short_header_round_trip_property(
    dcid: bytes, pn: int, pn_len: int, key_phase: bool, spin: bool
) -> None:
    buf = bytearray()
    pn_offset = build_short_header(buf, dcid, pn, pn_len, key_phase, spin)
    assert len(buf) == short_header_length(len(dcid), pn_len) == pn_offset + pn_len
    assert buf[0] & 0x18 == 0  # reserved bits
    assert bool(buf[0] & 0x04) == key_phase and bool(buf[0] & 0x20) == spin
    assert int.from_bytes(buf[pn_offset:], "big") == pn & ((1 << (8 * pn_len)) - 1)
    assert parse_short_header(buf, 0, len(dcid)) == (dcid, pn_offset)
    assert parse_invariant_header(buf, len(dcid)) == InvariantHeader(False, 0, dcid, b"")
