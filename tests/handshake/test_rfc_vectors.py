"""RFC 9001 Appendix A and RFC 9369 Appendix A, byte for byte (keys, Initial packets, Retry, ChaCha20)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from quicsilver.handshake.hkdf import hkdf_expand_label, hkdf_extract
from quicsilver.handshake.protection import (
    INITIAL_CIPHER_SUITE,
    CipherSuite,
    PacketKeys,
    initial_keys,
    initial_secrets,
    next_generation_secret,
    protect_packet,
    retry_integrity_tag,
    retry_integrity_valid,
    unprotect_header,
    unprotect_payload,
)
from quicsilver.protocol import VERSION_1, VERSION_2, Perspective

from .rfc_vectors import CHACHA_PN, DCID, V1, V2, AppendixA

SHA256 = hashes.SHA256()


def both(section: str, what: str) -> list[object]:
    """V1 and V2 as parameters with ids like ``rfc9001-A.4-retry``."""
    return [pytest.param(vec, id=f"{vec.rfc}-{section}-{what}") for vec in (V1, V2)]


# RFC 9001 §5.2 and RFC 9369 §3.3.1.
INITIAL_SALT = {
    VERSION_1: bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"),
    VERSION_2: bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"),
}
# RFC 9001 §5.8 and RFC 9369 §3.3.3: the secrets the Retry key and nonce are derived from.
RETRY_SECRET = {
    VERSION_1: bytes.fromhex("d9c9943e6101fd200021506bcc02814c73030f25c79d71ce876eca876e6fca8e"),
    VERSION_2: bytes.fromhex("c4dd2484d681aefa4ff4d69c2c20299984a765a5d3c31982f38fc74162155e9f"),
}
RETRY_LABELS = {VERSION_1: (b"quic key", b"quic iv"), VERSION_2: (b"quicv2 key", b"quicv2 iv")}

# A.1: the HkdfLabel structures ("part of the value given to HKDF-Expand") printed by each RFC.
HKDF_LABELS = [
    pytest.param(b"client in", 32, "00200f746c73313320636c69656e7420696e00", id="rfc9001-A.1-client-in"),
    pytest.param(b"server in", 32, "00200f746c7331332073657276657220696e00", id="rfc9001-A.1-server-in"),
    pytest.param(b"quic key", 16, "00100e746c7331332071756963206b657900", id="rfc9001-A.1-quic-key"),
    pytest.param(b"quic iv", 12, "000c0d746c733133207175696320697600", id="rfc9001-A.1-quic-iv"),
    pytest.param(b"quic hp", 16, "00100d746c733133207175696320687000", id="rfc9001-A.1-quic-hp"),
    pytest.param(b"quicv2 key", 16, "001010746c73313320717569637632206b657900", id="rfc9369-A.1-quicv2-key"),
    pytest.param(b"quicv2 iv", 12, "000c0f746c7331332071756963763220697600", id="rfc9369-A.1-quicv2-iv"),
    pytest.param(b"quicv2 hp", 16, "00100f746c7331332071756963763220687000", id="rfc9369-A.1-quicv2-hp"),
]


@pytest.mark.parametrize(("label", "length", "info_hex"), HKDF_LABELS)
def test_hkdf_label_structure(label: bytes, length: int, info_hex: str) -> None:
    secret = bytes(range(32))
    expected = HKDFExpand(SHA256, length, bytes.fromhex(info_hex)).derive(secret)
    assert hkdf_expand_label(SHA256, secret, label, b"", length) == expected


@pytest.mark.parametrize("vec", both("A.1", "initial-secret"))
def test_initial_secret(vec: AppendixA) -> None:
    assert hkdf_extract(SHA256, INITIAL_SALT[vec.version], DCID) == vec.b("initial_secret")


@pytest.mark.parametrize("vec", both("A.1", "client-server-secrets"))
def test_initial_client_and_server_secrets(vec: AppendixA) -> None:
    assert initial_secrets(vec.version, DCID) == (
        vec.b("client_initial_secret"),
        vec.b("server_initial_secret"),
    )


KEY_TABLE = [
    pytest.param(vec, who, field, id=f"{vec.rfc}-A.1-{who}-{field}")
    for vec in (V1, V2)
    for who in ("client", "server")
    for field in ("key", "iv", "hp")
]


@pytest.mark.parametrize(("vec", "who", "field"), KEY_TABLE)
def test_initial_keys(vec: AppendixA, who: str, field: str) -> None:
    keys = PacketKeys(INITIAL_CIPHER_SUITE, vec.b(f"{who}_initial_secret"), vec.version)
    attribute = {"key": "key", "iv": "iv", "hp": "hp_key"}[field]
    assert getattr(keys, attribute) == vec.b(f"{who}_{field}")


@pytest.mark.parametrize(
    ("vec", "who"),
    [
        pytest.param(vec, who, id=f"{vec.rfc}-{section}-{who}-mask")
        for vec in (V1, V2)
        for section, who in (("A.2", "client"), ("A.3", "server"))
    ],
)
def test_initial_header_mask(vec: AppendixA, who: str) -> None:
    keys = PacketKeys(INITIAL_CIPHER_SUITE, vec.b(f"{who}_initial_secret"), vec.version)
    assert keys.header_mask(vec.b(f"{who}_sample")) == vec.b(f"{who}_mask")


def _client_payload(vec: AppendixA) -> bytes:
    # A.2: the CRYPTO frame "plus enough PADDING frames to make a 1162-byte payload".
    frame = vec.b("client_crypto_frame")
    return frame + bytes(1162 - len(frame))


# (who, packet number, packet number length): A.2 client Initial pn 2 in 4 bytes, A.3 server pn 1 in 2.
INITIAL_PACKETS = [
    pytest.param(vec, who, pn, pn_len, id=f"{vec.rfc}-{section}-{who}-initial")
    for vec in (V1, V2)
    for section, who, pn, pn_len in (("A.2", "client", 2, 4), ("A.3", "server", 1, 2))
]


def _payload(vec: AppendixA, who: str) -> bytes:
    return _client_payload(vec) if who == "client" else vec.b("server_payload")


@pytest.mark.parametrize(("vec", "who", "pn", "pn_len"), INITIAL_PACKETS)
def test_protect_initial_packet(vec: AppendixA, who: str, pn: int, pn_len: int) -> None:
    perspective = Perspective.CLIENT if who == "client" else Perspective.SERVER
    seal, _ = initial_keys(vec.version, DCID, perspective)
    header = vec.b(f"{who}_header")
    buf = bytearray(header)
    packet = protect_packet(seal, buf, len(header) - pn_len, pn_len, pn, _payload(vec, who))
    assert packet == vec.b(f"{who}_packet")
    assert bytes(buf) == packet
    assert packet[: len(header)] == vec.b(f"{who}_protected_header")
    sample_offset = len(header) - pn_len + 4
    assert packet[sample_offset : sample_offset + 16] == vec.b(f"{who}_sample")


@pytest.mark.parametrize(("vec", "who", "pn", "pn_len"), INITIAL_PACKETS)
def test_unprotect_initial_packet(vec: AppendixA, who: str, pn: int, pn_len: int) -> None:
    # The peer opens the packet: the server opens the client's Initial and vice versa.
    receiver = Perspective.SERVER if who == "client" else Perspective.CLIENT
    _, open_keys = initial_keys(vec.version, DCID, receiver)
    header = vec.b(f"{who}_header")
    pn_offset = len(header) - pn_len
    data = bytearray(vec.b(f"{who}_packet"))
    first, truncated, got_len = unprotect_header(open_keys, data, pn_offset)
    assert (first, truncated, got_len) == (header[0], pn, pn_len)
    assert bytes(data[: len(header)]) == header
    assert unprotect_payload(open_keys, data, pn_offset, pn_len, pn) == _payload(vec, who)


@pytest.mark.parametrize("vec", both("A.4", "retry"))
def test_retry_integrity_tag(vec: AppendixA) -> None:
    # A.4: the pseudo-packet prefixes the client's original DCID (RFC 9001 §5.8).
    retry = vec.b("retry_packet")
    pseudo = bytes((len(DCID),)) + DCID + retry[:-16]
    assert retry_integrity_tag(vec.version, pseudo) == retry[-16:]
    assert retry_integrity_valid(vec.version, pseudo, retry[-16:])


@pytest.mark.parametrize("vec", both("A.4", "retry-tampered"))
def test_retry_integrity_rejects_tampering(vec: AppendixA) -> None:
    retry = vec.b("retry_packet")
    pseudo = bytes((len(DCID),)) + DCID + retry[:-16]
    tag = retry[-16:]
    assert not retry_integrity_valid(vec.version, pseudo, bytes((tag[0] ^ 1,)) + tag[1:])
    assert not retry_integrity_valid(vec.version, pseudo[:-1] + bytes((pseudo[-1] ^ 0x80,)), tag)
    other_odcid = bytes((8,)) + bytes(8) + retry[:-16]
    assert not retry_integrity_valid(vec.version, other_odcid, tag)
    assert not retry_integrity_valid(vec.version, pseudo, tag[:-1])
    other = VERSION_2 if vec.version == VERSION_1 else VERSION_1
    assert not retry_integrity_valid(other, pseudo, tag)
    assert not retry_integrity_valid(0x0A0A0A0A, pseudo, tag)


@pytest.mark.parametrize("vec", both("5.8", "retry-key"))
def test_retry_key_derives_from_published_secret(vec: AppendixA) -> None:
    key_label, iv_label = RETRY_LABELS[vec.version]
    secret = RETRY_SECRET[vec.version]
    key = hkdf_expand_label(SHA256, secret, key_label, b"", 16)
    nonce = hkdf_expand_label(SHA256, secret, iv_label, b"", 12)
    pseudo = b"any pseudo packet"
    assert AESGCM(key).encrypt(nonce, b"", pseudo) == retry_integrity_tag(vec.version, pseudo)


CHACHA_VALUES = [
    pytest.param(vec, field, id=f"{vec.rfc}-A.5-{field}") for vec in (V1, V2) for field in ("key", "iv", "hp")
]


@pytest.mark.parametrize(("vec", "field"), CHACHA_VALUES)
def test_chacha20_keys(vec: AppendixA, field: str) -> None:
    keys = PacketKeys(CipherSuite.CHACHA20_POLY1305_SHA256, vec.b("chacha_secret"), vec.version)
    attribute = {"key": "key", "iv": "iv", "hp": "hp_key"}[field]
    assert getattr(keys, attribute) == vec.b(f"chacha_{field}")


@pytest.mark.parametrize("vec", both("A.5", "ku"))
def test_chacha20_key_update_secret(vec: AppendixA) -> None:
    suite = CipherSuite.CHACHA20_POLY1305_SHA256
    assert next_generation_secret(suite, vec.b("chacha_secret"), vec.version) == vec.b("chacha_ku")


@pytest.mark.parametrize("vec", both("A.5", "nonce-ciphertext-mask"))
def test_chacha20_nonce_sample_and_mask(vec: AppendixA) -> None:
    keys = PacketKeys(CipherSuite.CHACHA20_POLY1305_SHA256, vec.b("chacha_secret"), vec.version)
    assert keys.nonce(CHACHA_PN) == vec.b("chacha_nonce")
    header = vec.b("chacha_unprotected_header")
    ciphertext = keys.seal(CHACHA_PN, header, vec.b("chacha_plaintext"))
    assert ciphertext == vec.b("chacha_ciphertext")
    assert keys.header_mask(vec.b("chacha_sample")) == vec.b("chacha_mask")


@pytest.mark.parametrize("vec", both("A.5", "short-header-packet"))
def test_chacha20_short_header_packet(vec: AppendixA) -> None:
    keys = PacketKeys(CipherSuite.CHACHA20_POLY1305_SHA256, vec.b("chacha_secret"), vec.version)
    header = vec.b("chacha_unprotected_header")  # empty DCID: the packet number starts at offset 1
    packet = protect_packet(keys, bytearray(header), 1, 3, CHACHA_PN, vec.b("chacha_plaintext"))
    assert packet == vec.b("chacha_packet")
    assert packet[:4] == vec.b("chacha_header")

    data = bytearray(packet)
    first, truncated, pn_len = unprotect_header(keys, data, 1)
    assert (first, truncated, pn_len) == (0x42, CHACHA_PN & 0xFFFFFF, 3)
    assert bytes(data[:4]) == header
    assert unprotect_payload(keys, data, 1, 3, CHACHA_PN) == vec.b("chacha_plaintext")
