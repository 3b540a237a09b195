"""QUIC packet protection: keys, AEAD, header protection, key update, Retry integrity.

Implements RFC 9001 §5 (packet protection): §5.1 key/IV/HP derivation, §5.2 Initial secrets,
§5.3 AEAD usage and the nonce, §5.4 header protection (AES-ECB §5.4.3, ChaCha20 §5.4.4) with the
sample of §5.4.2, §5.8 the Retry integrity tag; §6.1 the key update secret ("quic ku"); §6.6 the
AEAD usage limits. RFC 9369 §3.3 gives the QUIC v2 salt, labels and Retry key.

Hot path: a ``PacketKeys`` derives its key, IV and header protection key once and holds ONE AEAD
object and ONE header protection object, reused for every packet. The nonce is the IV XOR the
packet number computed on ints; headers are masked in place in the caller's ``bytearray``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from enum import IntEnum
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from quicsilver.handshake.hkdf import hkdf_expand_label, hkdf_expand_labels, hkdf_extract
from quicsilver.protocol import VERSION_1, VERSION_2, Perspective

__all__ = [
    "CONFIDENTIALITY_LIMIT",
    "INITIAL_CIPHER_SUITE",
    "INTEGRITY_LIMIT",
    "SAMPLE_LENGTH",
    "TAG_LENGTH",
    "Buffer",
    "CipherSuite",
    "DecryptionError",
    "PacketKeys",
    "initial_keys",
    "initial_secrets",
    "next_generation_secret",
    "protect_packet",
    "protect_packet_into",
    "retry_integrity_tag",
    "retry_integrity_valid",
    "suite_hash",
    "unprotect_header",
    "unprotect_payload",
]

Buffer = bytes | bytearray | memoryview


class DecryptionError(Exception):
    """A packet could not be unprotected (bad tag, or too short to sample).

    RFC 9001 §5.5: such a packet is dropped, it is not a connection error. The connection counts
    these against the integrity limit (§6.6).
    """


class CipherSuite(IntEnum):
    """TLS 1.3 cipher suites usable with QUIC (RFC 9001 §5.3; TLS_AES_128_CCM_SHA256 is not offered)."""

    AES_128_GCM_SHA256 = 0x1301
    AES_256_GCM_SHA384 = 0x1302
    CHACHA20_POLY1305_SHA256 = 0x1303


# RFC 9001 §5.2: "Initial packets apply the packet protection process, but use a secret derived
# from the Destination Connection ID field" with AEAD_AES_128_GCM.
INITIAL_CIPHER_SUITE: Final = CipherSuite.AES_128_GCM_SHA256
TAG_LENGTH: Final = 16  # every QUIC AEAD has a 16-byte tag (RFC 9001 §5.3)
SAMPLE_LENGTH: Final = 16  # RFC 9001 §5.4.2: 16 bytes for both AES and ChaCha20
_IV_LENGTH: Final = 12  # RFC 9001 §5.3: the AEAD nonce length (N_MIN) of all three AEADs
_SAMPLE_SKIP: Final = 4  # RFC 9001 §5.4.2: the sample starts 4 bytes after the packet number field

_SHA256: Final = hashes.SHA256()
_SHA384: Final = hashes.SHA384()
_HASH: Final[dict[CipherSuite, hashes.HashAlgorithm]] = {
    CipherSuite.AES_128_GCM_SHA256: _SHA256,
    CipherSuite.AES_256_GCM_SHA384: _SHA384,
    CipherSuite.CHACHA20_POLY1305_SHA256: _SHA256,
}
# The AEAD key length; the header protection key has the same length (RFC 9001 §5.4.3, §5.4.4).
_KEY_LENGTH: Final[dict[CipherSuite, int]] = {
    CipherSuite.AES_128_GCM_SHA256: 16,
    CipherSuite.AES_256_GCM_SHA384: 32,
    CipherSuite.CHACHA20_POLY1305_SHA256: 32,
}

# RFC 9001 §6.6: confidentiality limit (packets sealed with one key) and integrity limit (packets
# that failed authentication across all keys). AES-GCM: 2^23 / 2^52. ChaCha20-Poly1305: its
# confidentiality limit exceeds the number of possible packets (2^62), integrity limit 2^36.
CONFIDENTIALITY_LIMIT: Final[dict[CipherSuite, int]] = {
    CipherSuite.AES_128_GCM_SHA256: 1 << 23,
    CipherSuite.AES_256_GCM_SHA384: 1 << 23,
    CipherSuite.CHACHA20_POLY1305_SHA256: 1 << 62,
}
INTEGRITY_LIMIT: Final[dict[CipherSuite, int]] = {
    CipherSuite.AES_128_GCM_SHA256: 1 << 52,
    CipherSuite.AES_256_GCM_SHA384: 1 << 52,
    CipherSuite.CHACHA20_POLY1305_SHA256: 1 << 36,
}

# RFC 9001 §5.2 (v1) and RFC 9369 §3.3.1 (v2): the Initial salts.
_INITIAL_SALT: Final[dict[int, bytes]] = {
    VERSION_1: bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"),
    VERSION_2: bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"),
}
# RFC 9001 §5.1, §6.1 (v1) and RFC 9369 §3.3.2 (v2): key, iv, hp and ku labels.
_LABELS: Final[dict[int, tuple[bytes, bytes, bytes, bytes]]] = {
    VERSION_1: (b"quic key", b"quic iv", b"quic hp", b"quic ku"),
    VERSION_2: (b"quicv2 key", b"quicv2 iv", b"quicv2 hp", b"quicv2 ku"),
}
# RFC 9001 §5.8 (v1) and RFC 9369 §3.3.3 (v2): the fixed Retry integrity key and nonce
# (derived from a published secret; tests re-derive them).
_RETRY_KEY_NONCE: Final[dict[int, tuple[bytes, bytes]]] = {
    VERSION_1: (
        bytes.fromhex("be0c690b9f66575a1d766b54e368c84e"),
        bytes.fromhex("461599d35d632bf2239825bb"),
    ),
    VERSION_2: (
        bytes.fromhex("8fb4b01b56ac48e260fbcbcead7ccc92"),
        bytes.fromhex("d86969bc2d7c6d9990efb04a"),
    ),
}
_RETRY_AEAD: Final[dict[int, tuple[AESGCM, bytes]]] = {
    version: (AESGCM(key), nonce) for version, (key, nonce) in _RETRY_KEY_NONCE.items()
}
_CLIENT_IN: Final = b"client in"
_SERVER_IN: Final = b"server in"
_FIVE_ZEROS: Final = bytes(5)
_ECB: Final = modes.ECB()  # stateless: one mode object serves every header protection key


def _public_ecb_encryptor(algorithm: algorithms.AES) -> Any:
    return Cipher(algorithm, _ECB).encryptor()


def _find_ecb_encryptor() -> Callable[[algorithms.AES], Any]:
    """How to make an AES-ECB encryptor: ``Cipher(...).encryptor()`` spends half of its ~9 us in
    argument checks written in Python; six to eight are made per handshake and side. Where the
    installed ``cryptography`` has the constructor behind it (its Rust binding, 42 and later), call
    it directly with the same (already valid) arguments; otherwise, the public API."""
    try:
        # attribute by attribute: compiled, ``from ..._rust import openssl`` looks for a module
        # "..._rust.openssl" in sys.modules, and the extension does not register one
        rust = importlib.import_module("cryptography.hazmat.bindings._rust")
        create: Callable[[algorithms.AES, modes.ECB], Any] = rust.openssl.ciphers.create_encryption_ctx
        probe = create(algorithms.AES(bytes(16)), _ECB)
        if probe.update(bytes(16)) != _public_ecb_encryptor(algorithms.AES(bytes(16))).update(bytes(16)):
            return _public_ecb_encryptor
    except Exception:  # another layout of the bindings: the public API works everywhere
        return _public_ecb_encryptor

    def direct(algorithm: algorithms.AES) -> Any:
        return create(algorithm, _ECB)

    return direct


_ecb_encryptor: Final = _find_ecb_encryptor()


def suite_hash(suite: CipherSuite) -> hashes.HashAlgorithm:
    """The hash of ``suite`` (used by HKDF for every secret of the connection)."""
    return _HASH[suite]


def _labels(version: int) -> tuple[bytes, bytes, bytes, bytes]:
    try:
        return _LABELS[version]
    except KeyError:
        raise ValueError(f"no packet protection defined for QUIC version {version:#010x}") from None


def initial_secrets(version: int, dcid: bytes) -> tuple[bytes, bytes]:
    """The (client, server) Initial secrets for ``dcid`` (RFC 9001 §5.2, RFC 9369 §3.3.1).

    ``dcid`` is the Destination Connection ID of the client's first Initial packet (or the one
    from a Retry). Raises ValueError for a version other than v1 and v2.
    """
    try:
        salt = _INITIAL_SALT[version]
    except KeyError:
        raise ValueError(f"no Initial salt defined for QUIC version {version:#010x}") from None
    initial_secret = hkdf_extract(_SHA256, salt, dcid)
    client, server = hkdf_expand_labels(_SHA256, initial_secret, ((_CLIENT_IN, 32), (_SERVER_IN, 32)))
    return client, server


def next_generation_secret(suite: CipherSuite, secret: bytes, version: int) -> bytes:
    """The secret of the next key phase (RFC 9001 §6.1, RFC 9369 §3.3.2).

    secret_<n+1> = HKDF-Expand-Label(secret_<n>, "quic ku" (v2: "quicv2 ku"), "", Hash.length)
    """
    hash = _HASH[suite]
    return hkdf_expand_label(hash, secret, _labels(version)[3], b"", hash.digest_size)


class _AesHeaderProtection:
    """AES-based header protection (RFC 9001 §5.4.3): mask = AES-ECB(hp_key, sample).

    One ECB encryptor is created per key and fed one 16-byte sample per packet; ECB keeps no
    state between blocks, so the encryptor is never finalized. ``raw_mask`` is the encryptor's
    bound ``update``: it returns the whole 16-byte block, of which the mask is the first 5 bytes.
    """

    __slots__ = ("raw_mask",)

    def __init__(self, hp_key: bytes) -> None:
        self.raw_mask: Callable[[Buffer], bytes] = _ecb_encryptor(algorithms.AES(hp_key)).update


class _ChaChaHeaderProtection:
    """ChaCha20-based header protection (RFC 9001 §5.4.4).

    counter = sample[0..3] (little endian), nonce = sample[4..15], mask = ChaCha20(hp_key,
    counter, nonce, {0,0,0,0,0}). ``cryptography``'s 16-byte ChaCha20 nonce is exactly
    counter (little endian) || nonce, so the sample is passed through untouched. The cipher
    context has to be created per packet (the API cannot re-key a context with a new nonce).
    """

    __slots__ = ("_hp_key", "raw_mask")

    def __init__(self, hp_key: bytes) -> None:
        self._hp_key = hp_key
        self.raw_mask: Callable[[Buffer], bytes] = self._mask

    def _mask(self, sample: Buffer) -> bytes:
        return Cipher(algorithms.ChaCha20(self._hp_key, sample), None).encryptor().update(_FIVE_ZEROS)


class PacketKeys:
    """The keys protecting packets in one direction at one encryption level (RFC 9001 §5.1).

    Derives key = HKDF-Expand-Label(secret, "quic key"), iv ("quic iv") and hp ("quic hp")
    once (v2 labels for ``VERSION_2``) and keeps one AEAD object and one header protection object.

    ``header_protection_from`` lets a key update keep the header protection key: RFC 9001 §6
    "The header protection key is not updated"; use ``next_generation()``.
    Raises ValueError for an unknown version or a secret shorter than the suite's hash.
    """

    __slots__ = (
        "_decrypt",
        "_encrypt",
        "_header_protection",
        "_iv_int",
        "_raw_mask",
        "hp_key",
        "iv",
        "key",
        "secret",
        "suite",
        "version",
    )

    suite: CipherSuite
    secret: bytes
    version: int
    key: bytes
    iv: bytes
    hp_key: bytes
    _iv_int: int
    _header_protection: _AesHeaderProtection | _ChaChaHeaderProtection
    # Bound once so the per-packet calls go straight into the cipher objects.
    _encrypt: Callable[[bytes, Buffer, Buffer], bytes]
    _decrypt: Callable[[bytes, Buffer, Buffer], bytes]
    _raw_mask: Callable[[Buffer], bytes]  # at least 5 bytes; the mask is the first 5

    def __init__(
        self,
        suite: CipherSuite,
        secret: bytes,
        version: int,
        *,
        header_protection_from: PacketKeys | None = None,
    ) -> None:
        hash = _HASH[suite]
        if len(secret) < hash.digest_size:
            raise ValueError(f"a {suite.name} secret has {hash.digest_size} bytes, got {len(secret)}")
        key_label, iv_label, hp_label, _ = _labels(version)
        key_length = _KEY_LENGTH[suite]
        self.suite = suite
        self.secret = secret
        self.version = version
        wanted: tuple[tuple[bytes, int], ...]
        if header_protection_from is None:
            wanted = ((key_label, key_length), (iv_label, _IV_LENGTH), (hp_label, key_length))
        else:
            wanted = ((key_label, key_length), (iv_label, _IV_LENGTH))
        derived = hkdf_expand_labels(hash, secret, wanted)
        self.key, self.iv = derived[0], derived[1]
        self._iv_int = int.from_bytes(self.iv, "big")
        is_chacha = suite == CipherSuite.CHACHA20_POLY1305_SHA256
        aead = ChaCha20Poly1305(self.key) if is_chacha else AESGCM(self.key)
        self._encrypt = aead.encrypt
        self._decrypt = aead.decrypt
        hp: _AesHeaderProtection | _ChaChaHeaderProtection
        if header_protection_from is not None:
            if header_protection_from.suite != suite:
                raise ValueError("a key update cannot change the cipher suite")
            self.hp_key = header_protection_from.hp_key
            hp = header_protection_from._header_protection
        else:
            self.hp_key = derived[2]
            hp = _ChaChaHeaderProtection(self.hp_key) if is_chacha else _AesHeaderProtection(self.hp_key)
        self._header_protection = hp
        self._raw_mask = hp.raw_mask

    def __repr__(self) -> str:
        return f"PacketKeys({self.suite.name}, version={self.version:#x})"

    def nonce(self, pn: int) -> bytes:
        """The AEAD nonce: the IV XOR the packet number left-padded to 12 bytes (RFC 9001 §5.3)."""
        return (self._iv_int ^ pn).to_bytes(_IV_LENGTH, "big")

    def header_mask(self, sample: Buffer) -> bytes:
        """The 5-byte header protection mask for a 16-byte ``sample`` (RFC 9001 §5.4.1)."""
        return self._raw_mask(sample)[:5]

    def header_mask_block(self, sample: Buffer) -> bytes:
        """``header_mask`` without the copy: at least 5 bytes, of which the mask is the first 5."""
        return self._raw_mask(sample)

    def seal(self, pn: int, header: Buffer, payload: Buffer) -> bytes:
        """AEAD-encrypt ``payload`` with ``header`` as associated data; returns ciphertext + tag."""
        return self._encrypt((self._iv_int ^ pn).to_bytes(_IV_LENGTH, "big"), payload, header)

    def open(self, pn: int, header: Buffer, ciphertext: Buffer) -> bytes:
        """AEAD-decrypt ``ciphertext`` (with tag); raises DecryptionError if it does not authenticate."""
        if len(ciphertext) < TAG_LENGTH:
            raise DecryptionError("packet payload shorter than the AEAD tag")
        try:
            return self._decrypt((self._iv_int ^ pn).to_bytes(_IV_LENGTH, "big"), ciphertext, header)
        except InvalidTag:
            raise DecryptionError("packet failed authentication") from None

    def next_generation(self) -> PacketKeys:
        """The keys of the next key phase: new key and IV, the same header protection (RFC 9001 §6)."""
        return PacketKeys(
            self.suite,
            next_generation_secret(self.suite, self.secret, self.version),
            self.version,
            header_protection_from=self,
        )


class _LastInitialKeys:
    """The Initial keys derived last: a server derives them once to check that a new client's first
    packet decrypts and once more in the connection it then creates, for the same DCID. The entry is
    one tuple, replaced whole, so that event loops in several threads never pair one DCID with
    another's keys. Initial keys are derived from public values (RFC 9001 §5.2): keeping one set
    around costs no secrecy."""

    __slots__ = ("entry",)

    def __init__(self) -> None:
        self.entry: tuple[int, bytes, PacketKeys, PacketKeys] | None = None


_LAST_INITIAL: Final = _LastInitialKeys()


def initial_keys(version: int, dcid: bytes, perspective: Perspective) -> tuple[PacketKeys, PacketKeys]:
    """(seal, open) Initial keys for ``perspective`` given the client's original ``dcid`` (RFC 9001 §5.2).

    PacketKeys keep no per-packet state, so the two calls a new connection makes share one set."""
    entry = _LAST_INITIAL.entry
    if entry is not None and entry[0] == version and entry[1] == dcid:
        client, server = entry[2], entry[3]
    else:
        client_secret, server_secret = initial_secrets(version, dcid)
        client = PacketKeys(INITIAL_CIPHER_SUITE, client_secret, version)
        server = PacketKeys(INITIAL_CIPHER_SUITE, server_secret, version)
        _LAST_INITIAL.entry = (version, bytes(dcid), client, server)
    return (client, server) if perspective == Perspective.CLIENT else (server, client)


def protect_packet(
    keys: PacketKeys,
    buf: bytearray,
    pn_offset: int,
    pn_len: int,
    pn: int,
    payload: Buffer,
    *,
    header_offset: int = 0,
) -> bytes:
    """Encrypt ``payload`` and apply header protection; returns a copy of the protected packet.

    ``buf`` holds the unprotected header, from ``header_offset`` (non-zero when earlier packets of
    a coalesced datagram precede it) to its end, which must be ``pn_offset + pn_len``. On return
    ``buf`` also holds the protected packet (see ``protect_packet_into``, which skips the copy).
    Raises ValueError as ``protect_packet_into`` does.
    """
    protect_packet_into(keys, buf, pn_offset, pn_len, pn, payload, header_offset=header_offset)
    if header_offset:
        with memoryview(buf) as view:
            return bytes(view[header_offset:])
    return bytes(buf)


def protect_packet_into(
    keys: PacketKeys,
    buf: bytearray,
    pn_offset: int,
    pn_len: int,
    pn: int,
    payload: Buffer,
    *,
    header_offset: int = 0,
) -> int:
    """Protect the packet whose header ends ``buf`` in place; returns its protected length.

    The ciphertext is appended to ``buf`` and the header (from ``header_offset``, where earlier
    coalesced packets end) is masked in place. Raises ValueError when ``buf`` does not end at the
    packet number field, or when the packet is too short to sample: RFC 9001 §5.4.2 needs
    pn_len + len(payload) >= 4, so the packer pads with PADDING frames.
    """
    if len(buf) != pn_offset + pn_len or not 1 <= pn_len <= 4 or not 0 <= header_offset < pn_offset:
        raise ValueError("buf must end with the packet number field of the header being protected")
    if pn_len + len(payload) < _SAMPLE_SKIP:
        raise ValueError("payload too short for the header protection sample (RFC 9001 §5.4.2)")
    nonce = (keys._iv_int ^ pn).to_bytes(_IV_LENGTH, "big")
    if header_offset:
        with memoryview(buf) as view:
            ciphertext = keys._encrypt(nonce, payload, view[header_offset:])
    else:
        ciphertext = keys._encrypt(nonce, payload, buf)
    # RFC 9001 §5.4.2: the sample starts 4 bytes after the start of the packet number field, as
    # if the packet number were 4 bytes long; the ciphertext starts pn_len bytes after it.
    skip = _SAMPLE_SKIP - pn_len
    mask = keys._raw_mask(ciphertext[skip : skip + SAMPLE_LENGTH])
    first = buf[header_offset]
    # RFC 9001 §5.4.1: long headers protect the low 4 bits of the first byte, short headers 5.
    buf[header_offset] = first ^ (mask[0] & (0x0F if first & 0x80 else 0x1F))
    for i in range(pn_len):
        buf[pn_offset + i] ^= mask[1 + i]
    buf += ciphertext
    return len(buf) - header_offset


def unprotect_header(keys: PacketKeys, data: bytearray | memoryview, pn_offset: int) -> tuple[int, int, int]:
    """Remove header protection (RFC 9001 §5.4); returns (first byte, truncated pn, pn length).

    ``data`` is one packet, from its first byte to its end (a slice of the datagram when packets
    are coalesced) and must be writable: the unmasked first byte and packet number are written
    back, so ``data[:pn_offset + pn_len]`` is the header to authenticate. Raises DecryptionError
    when the packet is too short to hold a sample: such a packet cannot be valid and is dropped.
    """
    sample_offset = pn_offset + _SAMPLE_SKIP
    if pn_offset < 1 or len(data) < sample_offset + SAMPLE_LENGTH:
        raise DecryptionError("packet too short for a header protection sample")
    mask = keys._raw_mask(data[sample_offset : sample_offset + SAMPLE_LENGTH])
    first = data[0]
    # RFC 9001 §5.4.1: 4 protected bits in a long header, 5 in a short header.
    first ^= mask[0] & (0x0F if first & 0x80 else 0x1F)
    data[0] = first
    pn_len = (first & 0x03) + 1
    truncated = 0
    for i in range(pn_offset, pn_offset + pn_len):
        byte = data[i] ^ mask[i - pn_offset + 1]
        data[i] = byte
        truncated = (truncated << 8) | byte
    return first, truncated, pn_len


def unprotect_payload(
    keys: PacketKeys, data: bytearray | memoryview, pn_offset: int, pn_len: int, pn: int
) -> bytes:
    """Decrypt the payload of ``data`` (one packet, header already unmasked by ``unprotect_header``).

    ``pn`` is the full, decoded packet number. Raises DecryptionError if it does not authenticate.
    """
    header_end = pn_offset + pn_len
    if len(data) < header_end + TAG_LENGTH:
        raise DecryptionError("packet payload shorter than the AEAD tag")
    try:
        # Slicing a bytearray copies ~1 KB (cheaper than creating a memoryview); a memoryview slices free.
        return keys._decrypt(
            (keys._iv_int ^ pn).to_bytes(_IV_LENGTH, "big"), data[header_end:], data[:header_end]
        )
    except InvalidTag:
        raise DecryptionError("packet failed authentication") from None


def retry_integrity_tag(version: int, pseudo_packet: Buffer) -> bytes:
    """The 16-byte Retry Integrity Tag over the Retry pseudo-packet (RFC 9001 §5.8, RFC 9369 §3.3.3).

    The tag is AEAD_AES_128_GCM with the version's fixed key and nonce, an empty plaintext and the
    pseudo-packet (ODCID length, ODCID, Retry packet without its tag) as associated data.
    Raises ValueError for a version other than v1 and v2.
    """
    try:
        aead, nonce = _RETRY_AEAD[version]
    except KeyError:
        raise ValueError(f"no Retry integrity key for QUIC version {version:#010x}") from None
    return aead.encrypt(nonce, b"", pseudo_packet)


def retry_integrity_valid(version: int, pseudo_packet: Buffer, tag: Buffer) -> bool:
    """Whether ``tag`` authenticates ``pseudo_packet``; False for an unknown version or bad tag.

    RFC 9001 §5.8: "Retry packets ... that cannot be validated MUST be discarded" by the client.
    """
    entry = _RETRY_AEAD.get(version)
    if entry is None or len(tag) != TAG_LENGTH:
        return False
    aead, nonce = entry
    try:
        aead.decrypt(nonce, tag, pseudo_packet)
    except InvalidTag:
        return False
    return True
