"""The TLS 1.3 key schedule and transcript hash (RFC 8446 §7.1, §4.4.1, §4.4.4, §4.6.1).

::

             0 -> HKDF-Extract(salt=0, IKM=PSK or 0) = Early Secret
                  -> binder_key, client_early_traffic_secret, early_exporter_master_secret
        Derive-Secret(., "derived", "") -> HKDF-Extract(IKM=(EC)DHE) = Handshake Secret
                  -> client/server_handshake_traffic_secret
        Derive-Secret(., "derived", "") -> HKDF-Extract(IKM=0) = Master Secret
                  -> client/server_application_traffic_secret_0, exporter, resumption master

HKDF comes from :mod:`quicsilver.handshake.hkdf`; the transcript uses ``hashlib`` objects, whose
``copy()`` gives the running hash at any point without re-hashing the messages.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from cryptography.hazmat.primitives import hashes

from ..hkdf import HmacKey, hkdf_expand_label, hkdf_extract, hmac_digest, label_info
from ..protection import CipherSuite
from .messages import encode_message_hash

__all__ = ["KeySchedule", "Transcript", "hash_for_suite"]

_HASHES: Final[dict[int, tuple[hashes.HashAlgorithm, str]]] = {
    CipherSuite.AES_128_GCM_SHA256: (hashes.SHA256(), "sha256"),
    CipherSuite.AES_256_GCM_SHA384: (hashes.SHA384(), "sha384"),
    CipherSuite.CHACHA20_POLY1305_SHA256: (hashes.SHA256(), "sha256"),
}
_EMPTY_HASH: Final = {name: hashlib.new(name).digest() for _, name in _HASHES.values()}


def hash_for_suite(suite: int) -> tuple[hashes.HashAlgorithm, str]:
    """The (cryptography, hashlib) hash of a TLS 1.3 cipher suite (RFC 8446 §B.4)."""
    return _HASHES[suite]


class Transcript:
    """The running transcript hash of the handshake messages (RFC 8446 §4.4.1)."""

    __slots__ = ("_hash",)

    def __init__(self, hash_name: str) -> None:
        self._hash = hashlib.new(hash_name)

    @property
    def hash_name(self) -> str:
        return self._hash.name

    def update(self, message: bytes | memoryview) -> None:
        self._hash.update(message)

    def digest(self) -> bytes:
        return self._hash.copy().digest()

    def restart_for_retry(self) -> None:
        """Replace ClientHello1 by ``message_hash`` after a HelloRetryRequest (RFC 8446 §4.4.1)."""
        ch1_hash = self._hash.digest()
        self._hash = hashlib.new(self._hash.name)
        self._hash.update(encode_message_hash(ch1_hash))

    def copy(self) -> Transcript:
        clone = Transcript(self._hash.name)
        clone._hash = self._hash.copy()
        return clone


_NO_PSK: Final[dict[str, tuple[bytes, bytes]]] = {}


def _no_psk_early_secrets(hash_name: str) -> tuple[bytes, bytes]:
    """(Early Secret, Derive-Secret(Early Secret, "derived", "")) for a handshake without a PSK."""
    cached = _NO_PSK.get(hash_name)
    if cached is None:
        algorithm = next(h for h, name in _HASHES.values() if name == hash_name)
        zeros = bytes(algorithm.digest_size)
        early = hkdf_extract(algorithm, zeros, zeros)
        derived = hkdf_expand_label(
            algorithm, early, b"derived", _EMPTY_HASH[hash_name], algorithm.digest_size
        )
        cached = _NO_PSK[hash_name] = (early, derived)
    return cached


class KeySchedule:
    """One connection's key schedule; ``secret`` walks Early -> Handshake -> Master (RFC 8446 §7.1)."""

    __slots__ = ("_derived", "_empty", "_secret_key", "hash", "hash_length", "hash_name", "secret", "suite")

    def __init__(self, suite: int, psk: bytes | None = None) -> None:
        self.suite = CipherSuite(suite)
        self.hash, self.hash_name = _HASHES[suite]
        self.hash_length = self.hash.digest_size
        self._empty = _EMPTY_HASH[self.hash_name]
        # (secret, that secret as an HMAC key), prepared with its first Derive-Secret: each stage's
        # secret derives two to four secrets (RFC 8446 §7.1)
        self._secret_key: tuple[bytes, HmacKey] | None = None
        if psk is None:
            # Without a PSK the Early Secret and its "derived" secret are constants of the hash.
            self.secret, self._derived = _no_psk_early_secrets(self.hash_name)
            return
        # RFC 8446 §7.1: "If a given secret is not available, then the 0-value consisting of a string
        # of Hash.length bytes set to zeros is used."
        self.secret = hkdf_extract(self.hash, bytes(self.hash_length), psk)
        self._derived = b""

    def derive_secret(self, label: bytes, transcript_hash: bytes) -> bytes:
        """Derive-Secret(current secret, label, Messages) with Hash(Messages) given."""
        prepared = self._secret_key
        secret = self.secret
        if prepared is None or prepared[0] is not secret:
            prepared = self._secret_key = (secret, HmacKey(self.hash_name, secret))
        return prepared[1].digest(label_info(label, transcript_hash, self.hash_length))

    def derive_from(self, secret: bytes, label: bytes, transcript_hash: bytes) -> bytes:
        """Derive-Secret(secret, label, Messages) for a secret other than the current one."""
        return hkdf_expand_label(self.hash, secret, label, transcript_hash, self.hash_length)

    def binder_key(self, external: bool = False) -> bytes:
        return self.derive_secret(b"ext binder" if external else b"res binder", self._empty)

    def enter_handshake(self, shared_secret: bytes) -> None:
        """Early Secret -> Handshake Secret with the (EC)DHE shared secret."""
        derived = self._derived or self.derive_secret(b"derived", self._empty)
        self.secret = hkdf_extract(self.hash, derived, shared_secret)

    def enter_master(self) -> None:
        """Handshake Secret -> Master Secret."""
        derived = self.derive_secret(b"derived", self._empty)
        self.secret = hkdf_extract(self.hash, derived, bytes(self.hash_length))

    def finished_key(self, base_key: bytes) -> bytes:
        return hkdf_expand_label(self.hash, base_key, b"finished", b"", self.hash_length)

    def verify_data(self, base_key: bytes, transcript_hash: bytes) -> bytes:
        """Finished.verify_data = HMAC(finished_key, Transcript-Hash) (RFC 8446 §4.4.4)."""
        return hmac_digest(self.hash_name, self.finished_key(base_key), transcript_hash)

    def check_verify_data(self, base_key: bytes, transcript_hash: bytes, received: bytes) -> bool:
        return hmac.compare_digest(self.verify_data(base_key, transcript_hash), received)

    def resumption_psk(self, resumption_master_secret: bytes, nonce: bytes) -> bytes:
        """The PSK of a ticket (RFC 8446 §4.6.1)."""
        return hkdf_expand_label(self.hash, resumption_master_secret, b"resumption", nonce, self.hash_length)
