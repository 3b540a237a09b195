"""HKDF for TLS 1.3 and QUIC key derivation.

Implements HKDF-Extract (RFC 5869 §2.2) and HKDF-Expand-Label (RFC 8446 §7.1), the two
functions from which QUIC derives every packet protection secret (RFC 9001 §5.1, §5.2, §6.1).
HMAC is the standard library's one-shot ``hmac.digest`` (OpenSSL underneath): a TLS 1.3 handshake
and its QUIC keys take some 30 derivations per side, each a single HMAC block, and the one-shot call
costs a fraction of building a ``cryptography`` HKDF object per derivation.
"""

from __future__ import annotations

import hmac
import struct
from typing import Final

from cryptography.hazmat.primitives import hashes

__all__ = ["LABEL_PREFIX", "hkdf_expand", "hkdf_expand_label", "hkdf_extract"]

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
    return hmac.digest(salt if salt else bytes(hash.digest_size), ikm, hash.name)


def hkdf_expand(hash: hashes.HashAlgorithm, secret: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand(PRK, info, L) (RFC 5869 §2.3); ``length`` at most 255 times the hash size.

    Raises ValueError for a length HKDF cannot produce.
    """
    size = hash.digest_size
    if not 0 < length <= 255 * size:
        raise ValueError(f"HKDF-Expand cannot produce {length} bytes with {hash.name} (1 .. {255 * size})")
    if length <= size:  # T(1) = HMAC(PRK, info | 0x01): every QUIC and TLS 1.3 secret, key and IV
        return hmac.digest(secret, info + b"\x01", hash.name)[:length]
    # RFC 5869 §2.3: T(i) = HMAC(PRK, T(i-1) | info | i), OKM = the first L bytes of T(1) | T(2) | ...
    out = bytearray()
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.digest(secret, block + info + bytes((counter,)), hash.name)
        out += block
        counter += 1
    return bytes(out[:length])


def hkdf_expand_label(
    hash: hashes.HashAlgorithm, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """HKDF-Expand-Label(Secret, Label, Context, Length) (RFC 8446 §7.1).

    ``label`` is given without the "tls13 " prefix (e.g. ``b"quic key"``). The HkdfLabel is::

        uint16 length; opaque label<7..255> = "tls13 " + Label; opaque context<0..255>;

    Raises ValueError for a label or context too long to encode, or a length HKDF cannot produce.
    """
    if len(label) > _MAX_LABEL_LENGTH:
        raise ValueError(f"HKDF label of {len(label)} bytes is longer than {_MAX_LABEL_LENGTH}")
    if len(context) > _MAX_CONTEXT_LENGTH:
        raise ValueError(f"HKDF context of {len(context)} bytes is longer than {_MAX_CONTEXT_LENGTH}")
    if not 0 <= length <= 0xFFFF:
        raise ValueError(f"HKDF output length {length} does not fit the uint16 length field")
    info = b"".join(
        (
            struct.pack("!HB", length, len(LABEL_PREFIX) + len(label)),
            LABEL_PREFIX,
            label,
            bytes((len(context),)),
            context,
        )
    )
    return hkdf_expand(hash, secret, info, length)
