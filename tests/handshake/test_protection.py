"""Packet protection beyond the RFC vectors: every suite round trip, tampering, key update, hostile input."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicsilver.handshake.protection import (
    CONFIDENTIALITY_LIMIT,
    INTEGRITY_LIMIT,
    CipherSuite,
    DecryptionError,
    PacketKeys,
    initial_keys,
    next_generation_secret,
    protect_packet,
    protect_packet_into,
    retry_integrity_tag,
    suite_hash,
    unprotect_header,
    unprotect_payload,
)
from quicsilver.protocol import VERSION_1, VERSION_2, Perspective

SUITES = list(CipherSuite)
VERSIONS = [pytest.param(VERSION_1, id="v1"), pytest.param(VERSION_2, id="v2")]
DCID = bytes.fromhex("c0ffee00deadbeef")


def make_keys(suite: CipherSuite, version: int = VERSION_1, seed: int = 1) -> PacketKeys:
    secret = bytes((seed + i) & 0xFF for i in range(suite_hash(suite).digest_size))
    return PacketKeys(suite, secret, version)


def short_header(dcid: bytes, pn: int, pn_len: int, key_phase: bool = False) -> bytearray:
    # RFC 9000 §17.3.1: 0b01SRRKPP; fixed bit set, reserved bits 0.
    first = 0x40 | (0x04 if key_phase else 0) | (pn_len - 1)
    return bytearray(bytes((first,)) + dcid + (pn & ((1 << (8 * pn_len)) - 1)).to_bytes(pn_len, "big"))


def long_header(dcid: bytes, scid: bytes, pn: int, pn_len: int, payload_len: int) -> bytearray:
    # An Initial header (RFC 9000 §17.2.2) with an empty token and a 2-byte Length varint.
    length = pn_len + payload_len + 16
    return bytearray(
        bytes((0xC0 | (pn_len - 1),))
        + VERSION_1.to_bytes(4, "big")
        + bytes((len(dcid),))
        + dcid
        + bytes((len(scid),))
        + scid
        + b"\x00"
        + (0x4000 | length).to_bytes(2, "big")
        + (pn & ((1 << (8 * pn_len)) - 1)).to_bytes(pn_len, "big")
    )


@pytest.mark.parametrize("suite", SUITES, ids=[s.name for s in SUITES])
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("pn_len", [1, 2, 3, 4])
def test_short_header_round_trip(suite: CipherSuite, version: int, pn_len: int) -> None:
    sender = make_keys(suite, version)
    receiver = make_keys(suite, version)
    pn = 0x12345678 & ((1 << (8 * pn_len)) - 1)
    payload = os.urandom(1200 - 1 - len(DCID) - pn_len - 16)
    header = short_header(DCID, pn, pn_len, key_phase=True)
    packet = protect_packet(sender, bytearray(header), 1 + len(DCID), pn_len, pn, payload)
    assert len(packet) == 1200
    assert packet[1 : 1 + len(DCID)] == DCID  # the DCID is never protected

    data = bytearray(packet)
    first, truncated, got_len = unprotect_header(receiver, data, 1 + len(DCID))
    assert (first, truncated, got_len) == (header[0], pn, pn_len)
    assert first & 0x04  # the key phase bit survives protection
    assert unprotect_payload(receiver, data, 1 + len(DCID), pn_len, pn) == payload


@pytest.mark.parametrize("version", VERSIONS)
def test_long_header_round_trip_protects_only_low_four_bits(version: int) -> None:
    client_seal, client_open = initial_keys(version, DCID, Perspective.CLIENT)
    server_seal, server_open = initial_keys(version, DCID, Perspective.SERVER)
    payload = b"\x01" + bytes(40)
    for pn in range(64):
        header = long_header(DCID, b"\x01\x02", pn, 2, len(payload))
        pn_offset = len(header) - 2
        packet = protect_packet(client_seal, bytearray(header), pn_offset, 2, pn, payload)
        # RFC 9001 §5.4.1: the long header form, fixed bit and type bits stay in the clear.
        assert packet[0] & 0xF0 == header[0] & 0xF0
        data = bytearray(packet)
        assert unprotect_header(server_open, data, pn_offset) == (header[0], pn, 2)
        assert unprotect_payload(server_open, data, pn_offset, 2, pn) == payload
        # The client's own open keys are the server's seal keys, not its own.
        with pytest.raises(DecryptionError):
            unprotect_payload(client_open, data, pn_offset, 2, pn)
    assert server_seal.key == client_open.key


def test_short_header_protects_low_five_bits() -> None:
    keys = make_keys(CipherSuite.AES_128_GCM_SHA256)
    seen = set()
    for pn in range(200):
        packet = protect_packet(keys, short_header(b"", pn, 1), 1, 1, pn, bytes(20))
        assert packet[0] & 0xE0 == 0x40  # header form, fixed bit and spin bit are not protected
        seen.add(packet[0] & 0x1F)
    # RFC 9001 §5.4.1: the reserved, key phase and packet number length bits are all masked.
    assert len(seen) > 16


def test_coalesced_packet_header_offset() -> None:
    keys = make_keys(CipherSuite.AES_256_GCM_SHA384)
    earlier = b"an earlier coalesced packet"
    header = long_header(DCID, b"", 7, 1, 30)
    buf = bytearray(earlier) + header
    pn_offset = len(buf) - 1
    packet = protect_packet(keys, buf, pn_offset, 1, 7, bytes(30), header_offset=len(earlier))
    assert bytes(buf) == earlier + packet
    data = memoryview(bytearray(packet))
    first, pn, pn_len = unprotect_header(keys, data, len(header) - 1)
    assert (first, pn, pn_len) == (header[0], 7, 1)
    assert unprotect_payload(keys, data, len(header) - 1, 1, 7) == bytes(30)


def test_protect_packet_into_builds_a_datagram_in_place() -> None:
    keys = make_keys(CipherSuite.AES_128_GCM_SHA256)
    buf = bytearray()
    ends = []
    for pn in range(3):
        start = len(buf)
        buf += long_header(DCID, b"", pn, 2, 20)
        length = protect_packet_into(keys, buf, len(buf) - 2, 2, pn, bytes(20), header_offset=start)
        assert length == len(buf) - start
        ends.append((start, len(buf)))
    for pn, (start, end) in enumerate(ends):
        data = bytearray(buf[start:end])
        pn_offset = len(long_header(DCID, b"", pn, 2, 20)) - 2
        assert unprotect_header(keys, data, pn_offset)[1:] == (pn, 2)
        assert unprotect_payload(keys, data, pn_offset, 2, pn) == bytes(20)


@pytest.mark.parametrize("suite", SUITES, ids=[s.name for s in SUITES])
def test_tampered_packet_raises_decryption_error(suite: CipherSuite) -> None:
    keys = make_keys(suite)
    payload = bytes(range(100))
    pn_offset = 1 + len(DCID)
    packet = protect_packet(keys, short_header(DCID, 5, 2), pn_offset, 2, 5, payload)
    # Flip one bit in the DCID (authenticated header), in the ciphertext and in the tag.
    for position in (1, pn_offset + 10, len(packet) - 1):
        data = bytearray(packet)
        data[position] ^= 0x01
        _, pn, pn_len = unprotect_header(keys, data, pn_offset)
        with pytest.raises(DecryptionError):
            unprotect_payload(keys, data, pn_offset, pn_len, pn)
    # Truncated packet, wrong packet number, wrong key.
    data = bytearray(packet[:-1])
    _, pn, pn_len = unprotect_header(keys, data, pn_offset)
    with pytest.raises(DecryptionError):
        unprotect_payload(keys, data, pn_offset, pn_len, pn)
    data = bytearray(packet)
    _, pn, pn_len = unprotect_header(keys, data, pn_offset)
    with pytest.raises(DecryptionError):
        unprotect_payload(keys, data, pn_offset, pn_len, pn + 0x10000)
    with pytest.raises(DecryptionError):
        unprotect_payload(make_keys(suite, seed=2), data, pn_offset, pn_len, pn)


def test_open_rejects_ciphertext_shorter_than_tag() -> None:
    keys = make_keys(CipherSuite.CHACHA20_POLY1305_SHA256)
    with pytest.raises(DecryptionError):
        keys.open(0, b"header", bytes(15))


@pytest.mark.parametrize("pn_offset", [1, 5, 30])
def test_unprotect_header_too_short_for_sample(pn_offset: int) -> None:
    keys = make_keys(CipherSuite.AES_128_GCM_SHA256)
    # RFC 9001 §5.4.2: the sample needs pn_offset + 4 + 16 bytes.
    data = bytearray(pn_offset + 4 + 15)
    with pytest.raises(DecryptionError):
        unprotect_header(keys, data, pn_offset)
    unprotect_header(keys, bytearray(pn_offset + 4 + 16), pn_offset)


def test_protect_rejects_payload_too_short_to_sample() -> None:
    keys = make_keys(CipherSuite.AES_128_GCM_SHA256)
    with pytest.raises(ValueError):
        protect_packet(keys, short_header(b"", 1, 1), 1, 1, 1, b"\x01\x00")
    # pn_len + payload = 4 is enough: the sample then ends exactly at the end of the tag.
    packet = protect_packet(keys, short_header(b"", 1, 1), 1, 1, 1, b"\x01\x00\x00")
    assert len(packet) == 1 + 1 + 3 + 16


def test_protect_rejects_buffer_not_ending_at_packet_number() -> None:
    keys = make_keys(CipherSuite.AES_128_GCM_SHA256)
    with pytest.raises(ValueError):
        protect_packet(keys, short_header(b"", 1, 2) + b"x", 1, 2, 1, bytes(10))


@settings(max_examples=300, derandomize=True, deadline=None)
@given(data=st.binary(max_size=120), pn_offset=st.integers(min_value=0, max_value=130))
def test_hostile_bytes_only_raise_decryption_error(data: bytes, pn_offset: int) -> None:
    keys = make_keys(CipherSuite.AES_128_GCM_SHA256)
    buf = bytearray(data)
    try:
        _, pn, pn_len = unprotect_header(keys, buf, pn_offset)
        unprotect_payload(keys, buf, pn_offset, pn_len, pn)
    except DecryptionError:
        return
    pytest.fail("random bytes authenticated")


@pytest.mark.parametrize("suite", SUITES, ids=[s.name for s in SUITES])
@pytest.mark.parametrize("version", VERSIONS)
def test_key_update_generation(suite: CipherSuite, version: int) -> None:
    keys = make_keys(suite, version)
    following = keys.next_generation()
    hash_length = suite_hash(suite).digest_size
    # RFC 9001 §6.1: secret_<n+1> = HKDF-Expand-Label(secret_<n>, "quic ku", "", Hash.length).
    assert following.secret == next_generation_secret(suite, keys.secret, version)
    assert len(following.secret) == hash_length
    assert following.key != keys.key and following.iv != keys.iv
    # RFC 9001 §6: "The header protection key is not updated."
    assert following.hp_key == keys.hp_key
    assert following.header_mask(bytes(16)) == keys.header_mask(bytes(16))
    # The next generation equals fresh keys derived from the next secret (except the hp key).
    fresh = PacketKeys(suite, following.secret, version)
    assert (fresh.key, fresh.iv) == (following.key, following.iv)
    # A packet sealed under generation n+1 does not open under n, and vice versa.
    sealed = following.seal(9, b"hdr", b"payload")
    assert following.open(9, b"hdr", sealed) == b"payload"
    with pytest.raises(DecryptionError):
        keys.open(9, b"hdr", sealed)
    assert following.next_generation().secret == next_generation_secret(suite, following.secret, version)


def test_key_update_labels_differ_between_versions() -> None:
    suite = CipherSuite.AES_128_GCM_SHA256
    secret = bytes(32)
    assert next_generation_secret(suite, secret, VERSION_1) != next_generation_secret(
        suite, secret, VERSION_2
    )


def test_nonce_is_iv_xor_packet_number() -> None:
    keys = make_keys(CipherSuite.AES_128_GCM_SHA256)
    iv = int.from_bytes(keys.iv, "big")
    for pn in (0, 1, 0xFF, 0x123456789A, (1 << 62) - 1):
        assert keys.nonce(pn) == (iv ^ pn).to_bytes(12, "big")


def test_aead_limits() -> None:
    # RFC 9001 §6.6.
    for suite in (CipherSuite.AES_128_GCM_SHA256, CipherSuite.AES_256_GCM_SHA384):
        assert CONFIDENTIALITY_LIMIT[suite] == 2**23
        assert INTEGRITY_LIMIT[suite] == 2**52
    assert INTEGRITY_LIMIT[CipherSuite.CHACHA20_POLY1305_SHA256] == 2**36
    assert CONFIDENTIALITY_LIMIT[CipherSuite.CHACHA20_POLY1305_SHA256] >= 2**62


def test_unknown_version_and_bad_secret_are_rejected() -> None:
    with pytest.raises(ValueError):
        PacketKeys(CipherSuite.AES_128_GCM_SHA256, bytes(32), 0xFF00001D)
    with pytest.raises(ValueError):
        PacketKeys(CipherSuite.AES_256_GCM_SHA384, bytes(32), VERSION_1)
    with pytest.raises(ValueError):
        initial_keys(0x0A0A0A0A, DCID, Perspective.CLIENT)
    with pytest.raises(ValueError):
        retry_integrity_tag(0x0A0A0A0A, b"pseudo")
    aes = make_keys(CipherSuite.AES_128_GCM_SHA256)
    with pytest.raises(ValueError):
        PacketKeys(CipherSuite.CHACHA20_POLY1305_SHA256, bytes(32), VERSION_1, header_protection_from=aes)


def test_initial_keys_depend_on_dcid_and_version() -> None:
    a, _ = initial_keys(VERSION_1, DCID, Perspective.CLIENT)
    b, _ = initial_keys(VERSION_1, DCID[:-1], Perspective.CLIENT)
    c, _ = initial_keys(VERSION_2, DCID, Perspective.CLIENT)
    assert len({a.key, b.key, c.key}) == 3


@settings(max_examples=60, derandomize=True, deadline=None)
@given(
    suite=st.sampled_from(SUITES),
    version=st.sampled_from([VERSION_1, VERSION_2]),
    pn=st.integers(min_value=0, max_value=(1 << 62) - 1),
    pn_len=st.integers(min_value=1, max_value=4),
    dcid=st.binary(max_size=20),
    payload=st.binary(min_size=3, max_size=1400),
    key_phase=st.booleans(),
)
def test_round_trip_property(
    suite: CipherSuite, version: int, pn: int, pn_len: int, dcid: bytes, payload: bytes, key_phase: bool
) -> None:
    keys = make_keys(suite, version)
    header = short_header(dcid, pn, pn_len, key_phase)
    pn_offset = 1 + len(dcid)
    packet = protect_packet(keys, bytearray(header), pn_offset, pn_len, pn, payload)
    assert len(packet) == len(header) + len(payload) + 16
    data = bytearray(packet)
    first, truncated, got_len = unprotect_header(keys, data, pn_offset)
    assert (first, got_len) == (header[0], pn_len)
    assert truncated == pn & ((1 << (8 * pn_len)) - 1)
    assert data[: len(header)] == header
    assert unprotect_payload(keys, data, pn_offset, pn_len, pn) == payload


def test_header_protection_uses_the_direct_ecb_constructor_and_agrees_with_the_public_api() -> None:
    """cryptography 42+ has the Rust constructor behind ``Cipher(...).encryptor()``: it must be found
    (also when compiled, where a ``from ... import`` of it fails) and give the same masks."""
    import os

    from cryptography.hazmat.primitives.ciphers import algorithms

    from quicsilver.handshake import protection

    assert protection._ecb_encryptor is not protection._public_ecb_encryptor
    key, sample = os.urandom(16), os.urandom(16)
    direct = protection._ecb_encryptor(algorithms.AES(key)).update(sample)
    public = protection._public_ecb_encryptor(algorithms.AES(key)).update(sample)
    assert direct == public
