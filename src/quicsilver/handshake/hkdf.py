"""HKDF for TLS 1.3 and QUIC key derivation.

Implements HKDF-Extract (RFC 5869 §2.2) and HKDF-Expand-Label (RFC 8446 §7.1), the two
functions from which QUIC derives every packet protection secret (RFC 9001 §5.1, §5.2, §6.1).
A TLS 1.3 handshake and its QUIC keys take some 30 derivations per side, each one HMAC over a
few dozen bytes, so the HMAC itself is written here (RFC 2104) on CPython's built-in SHA-2: a
derivation then costs two short hash calls, where a ``cryptography`` HKDF object costs about 5 µs
and OpenSSL 3's one-shot HMAC (``hmac.digest``) about 4.5 µs, most of it looking the algorithm up.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import struct
from collections.abc import Callable
from typing import Any, Final

from cryptography.hazmat.primitives import hashes

__all__ = [
    "LABEL_PREFIX",
    "HmacKey",
    "hkdf_expand",
    "hkdf_expand_label",
    "hkdf_expand_labels",
    "hkdf_extract",
    "hmac_digest",
    "label_info",
]


def _builtin_hash(name: str) -> Callable[[bytes], Any]:
    """CPython's own SHA-2 constructor (module ``_sha2`` from 3.12, ``_sha256``/``_sha512`` before),
    or hashlib's when the interpreter was built without it."""
    for module in ("_sha2", "_sha256" if name == "sha256" else "_sha512"):
        try:
            constructor: Callable[[bytes], Any] = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        return constructor
    return getattr(hashlib, name)  # type: ignore[no-any-return]


# name -> (constructor, block size in bytes): the hashes of the TLS 1.3 cipher suites QUIC uses.
_HMAC_HASHES: Final[dict[str, tuple[Callable[[bytes], Any], int]]] = {
    "sha256": (_builtin_hash("sha256"), 64),
    "sha384": (_builtin_hash("sha384"), 128),
}
# RFC 2104 §2: the key XOR ipad (0x36 repeated) and XOR opad (0x5c repeated), as translation tables.
_IPAD: Final = bytes.maketrans(bytes(range(256)), bytes(b ^ 0x36 for b in range(256)))
_OPAD: Final = bytes.maketrans(bytes(range(256)), bytes(b ^ 0x5C for b in range(256)))


def _block_key(new: Callable[[bytes], Any], block: int, key: bytes) -> bytes:
    """RFC 2104 §2: the key hashed if longer than the hash's block, then zero-padded to the block."""
    if len(key) > block:
        key = new(key).digest()
    return key.ljust(block, b"\x00")


def hmac_digest(name: str, key: bytes, msg: bytes) -> bytes:
    """HMAC (RFC 2104) of ``msg`` under ``key`` with hash ``name`` ("sha256", "sha384"; any other
    name goes to the standard library's ``hmac``)."""
    entry = _HMAC_HASHES.get(name)
    if entry is None:
        return hmac.digest(key, msg, name)
    new, block = entry
    key = _block_key(new, block, key)
    inner: bytes = new(key.translate(_IPAD) + msg).digest()
    outer: bytes = new(key.translate(_OPAD) + inner).digest()
    return outer


class HmacKey:
    """One HMAC key (RFC 2104) prepared for several messages: the hash states after ``key XOR ipad``
    and ``key XOR opad`` are computed once, and each MAC copies them. Several secrets are each
    expanded into several keys (a packet key, IV and header protection key; the key schedule's
    traffic secrets), where that halves the cost of the HMACs after the first."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, name: str, key: bytes) -> None:
        """``name``: "sha256" or "sha384" (ValueError otherwise)."""
        entry = _HMAC_HASHES.get(name)
        if entry is None:
            raise ValueError(f"no prepared HMAC for {name!r}")
        new, block = entry
        key = _block_key(new, block, key)
        self._inner: Any = new(key.translate(_IPAD))
        self._outer: Any = new(key.translate(_OPAD))

    def digest(self, msg: bytes) -> bytes:
        """HMAC(key, ``msg``)."""
        inner = self._inner.copy()
        inner.update(msg)
        outer = self._outer.copy()
        outer.update(inner.digest())
        mac: bytes = outer.digest()
        return mac


# RFC 8446 §7.1: every label is prefixed with "tls13 ".
LABEL_PREFIX: Final = b"tls13 "
# RFC 8446 §7.1: ``opaque label<7..255>`` and ``opaque context<0..255>``.
_MAX_LABEL_LENGTH: Final = 255 - len(LABEL_PREFIX)
_MAX_CONTEXT_LENGTH: Final = 255


def hkdf_extract(hash: hashes.HashAlgorithm, salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract(salt, IKM) = HMAC-Hash(salt, IKM) (RFC 5869 §2.2).

    An empty ``salt`` stands for a string of ``hash.digest_size`` zero bytes, as RFC 5869 says
    (HMAC pads a short key with zeros, so both give the same result).
    """
    return hmac_digest(hash.name, salt if salt else bytes(hash.digest_size), ikm)


def hkdf_expand(hash: hashes.HashAlgorithm, secret: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand(PRK, info, L) (RFC 5869 §2.3); ``length`` at most 255 times the hash size.

    Raises ValueError for a length HKDF cannot produce.
    """
    size = hash.digest_size
    if not 0 < length <= 255 * size:
        raise ValueError(f"HKDF-Expand cannot produce {length} bytes with {hash.name} (1 .. {255 * size})")
    if length <= size:  # T(1) = HMAC(PRK, info | 0x01): every QUIC and TLS 1.3 secret, key and IV
        return hmac_digest(hash.name, secret, info + b"\x01")[:length]
    # RFC 5869 §2.3: T(i) = HMAC(PRK, T(i-1) | info | i), OKM = the first L bytes of T(1) | T(2) | ...
    out = bytearray()
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac_digest(hash.name, secret, block + info + bytes((counter,)))
        out += block
        counter += 1
    return bytes(out[:length])


def label_info(label: bytes, context: bytes, length: int) -> bytes:
    """The HkdfLabel of RFC 8446 §7.1, followed by HKDF-Expand's first counter byte (0x01)::

    uint16 length; opaque label<7..255> = "tls13 " + Label; opaque context<0..255>;
    """
    if len(label) > _MAX_LABEL_LENGTH:
        raise ValueError(f"HKDF label of {len(label)} bytes is longer than {_MAX_LABEL_LENGTH}")
    if len(context) > _MAX_CONTEXT_LENGTH:
        raise ValueError(f"HKDF context of {len(context)} bytes is longer than {_MAX_CONTEXT_LENGTH}")
    return b"".join(
        (
            struct.pack("!HB", length, len(LABEL_PREFIX) + len(label)),
            LABEL_PREFIX,
            label,
            bytes((len(context),)),
            context,
            b"\x01",
        )
    )


def hkdf_expand_label(
    hash: hashes.HashAlgorithm, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """HKDF-Expand-Label(Secret, Label, Context, Length) (RFC 8446 §7.1).

    ``label`` is given without the "tls13 " prefix (e.g. ``b"quic key"``). Raises ValueError for a
    label or context too long to encode, or a length HKDF cannot produce.
    """
    if not 0 <= length <= 0xFFFF:
        raise ValueError(f"HKDF output length {length} does not fit the uint16 length field")
    info = label_info(label, context, length)
    if 0 < length <= hash.digest_size:  # T(1) = HMAC(PRK, info | 0x01): every secret, key and IV
        return hmac_digest(hash.name, secret, info)[:length]
    return hkdf_expand(hash, secret, info[:-1], length)


def hkdf_expand_labels(hash: Any, secret: bytes, wanted: tuple[tuple[bytes, int], ...]) -> list[bytes]:
    """HKDF-Expand-Label(``secret``, label, "", length) for each (label, length) of ``wanted``, the
    HMAC key prepared once (:class:`HmacKey`). Each length is at most the hash's size (one HKDF
    block: keys, IVs, secrets); ValueError otherwise, and as ``hkdf_expand_label``."""
    name: str = hash.name
    size: int = hash.digest_size
    key = HmacKey(name, secret) if name in _HMAC_HASHES else None
    out: list[bytes] = []
    for label, length in wanted:
        if not 0 < length <= size:
            raise ValueError(f"hkdf_expand_labels makes one block of at most {size} bytes, not {length}")
        info = label_info(label, b"", length)
        out.append((key.digest(info) if key is not None else hmac_digest(name, secret, info))[:length])
    return out
