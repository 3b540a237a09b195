"""Address validation tokens: Retry tokens and NEW_TOKEN tokens (RFC 9000 §8.1.2-§8.1.4).

A server proves a client's address by handing it a token only the server can read: in a Retry
packet (§8.1.2, valid for one connection attempt, bound to the client's IP address and port, the
original DCID and the Retry's SCID) or in a NEW_TOKEN frame (§8.1.3, for a later connection,
bound to the client's IP address only, since ports change). RFC 9000 §8.1.4: tokens MUST be
hard to guess and integrity-protected; §8.1.3 recommends an expiry time. RFC 9369 §5: a token is
valid only for the QUIC version that issued it, so the version is sealed into the token.

``TokenProtector`` seals token payloads with AES-256-GCM and a random nonce (quic-go's token
protector idea). ``encode_token`` / ``parse_token`` are the payload codec; ``parse_token`` and
``TokenProtector.open`` take attacker input and answer None for anything they cannot
authenticate or parse, never an exception.

Token payload (inside the AEAD)::

    kind (1: 0 = NEW_TOKEN, 1 = Retry) | QUIC version (4) | issued, ms (8, signed)
    | IP length (1: 4 or 16) | IP | Retry only: port (2) | ODCID len (1) | ODCID | RSCID len (1) | RSCID
"""

from __future__ import annotations

import ipaddress
import math
import os
import struct
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from quicsilver.handshake.hkdf import hkdf_expand_label, hkdf_extract
from quicsilver.protocol import MAX_CONNECTION_ID_LENGTH

__all__ = [
    "MAX_TOKEN_LENGTH",
    "Address",
    "Token",
    "TokenProtector",
    "encode_token",
    "packed_ip",
    "parse_token",
    "same_address",
]

Address = tuple[str, int] | tuple[str, int, int, int]
"""A socket address as asyncio reports it: (host, port) or (host, port, flowinfo, scope_id)."""

_KIND_NEW_TOKEN: Final = 0
_KIND_RETRY: Final = 1
_FIXED: Final = struct.Struct("!BIqB")  # kind, version, issued (ms), IP length
_PORT: Final = struct.Struct("!H")
_NONCE_LENGTH: Final = 12
_TAG_LENGTH: Final = 16
_MIN_KEY_LENGTH: Final = 16
# Our own tokens are at most 1 + 4 + 8 + 1 + 16 + 2 + 2 * (1 + 20) = 74 bytes of payload plus 28 of
# nonce and tag; anything much longer did not come from us and is refused before decryption.
MAX_TOKEN_LENGTH: Final = 256
_SHA256: Final = hashes.SHA256()
_KEY_SALT: Final = b"quicsilver address validation token"


def packed_ip(host: str) -> bytes:
    """The 4- or 16-byte form of ``host``; an IPv4-mapped IPv6 address becomes its IPv4 form.

    A dual-stack socket reports an IPv4 client as ``::ffff:a.b.c.d``; mapping it back makes a
    token issued on one socket family valid on the other. Raises ValueError for a non-IP host.
    """
    # Dotted-quad IPv4 by hand (a token per new connection; ipaddress costs microseconds more).
    parts = host.split(".")
    if len(parts) == 4 and all(
        0 < len(part) <= 3 and part.isascii() and part.isdigit() and (part[0] != "0" or part == "0")
        for part in parts
    ):
        values = [int(part) for part in parts]
        if max(values) <= 255:
            return bytes(values)
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.packed
    return ip.packed


@dataclass(frozen=True, slots=True)
class Token:
    """The contents of an address validation token.

    ``issued`` is in seconds on the clock the server passes as ``now`` (tokens from NEW_TOKEN
    frames outlive a connection: the server should use a clock that survives restarts if it
    wants them to). ``port``, ``original_dcid`` and ``retry_scid`` are only used by Retry tokens.
    """

    is_retry: bool
    version: int
    ip: bytes
    issued: float
    port: int = 0
    original_dcid: bytes = b""
    retry_scid: bytes = b""

    @classmethod
    def for_retry(
        cls, addr: Address, original_dcid: bytes, retry_scid: bytes, version: int, now: float
    ) -> Token:
        """A Retry token for a client at ``addr`` (RFC 9000 §8.1.2). Raises ValueError for a non-IP host."""
        return cls(True, version, packed_ip(addr[0]), now, addr[1], original_dcid, retry_scid)

    @classmethod
    def for_new_token(cls, addr: Address, version: int, now: float) -> Token:
        """A token for a NEW_TOKEN frame (RFC 9000 §8.1.3): bound to the client IP, not the port."""
        return cls(False, version, packed_ip(addr[0]), now)

    def is_valid(self, now: float, max_age: float) -> bool:
        """Whether the token has not expired: issued no more than ``max_age`` seconds before ``now``.

        A token issued in the future (more than the 1 ms encoding granularity) is refused too.
        """
        age = now - self.issued
        return -0.001 <= age <= max_age

    def matches_address(self, addr: Address) -> bool:
        """Whether ``addr`` is the address the token was issued to (Retry: IP and port; NEW_TOKEN: IP).

        RFC 9000 §8.1.4: the token must be bound to the client's address so that it cannot be
        used by a client at another address.
        """
        return same_address(self, addr)


def same_address(token: Token, addr: Address) -> bool:
    """``token.matches_address(addr)``; False when ``addr`` has no IP address host."""
    try:
        ip = packed_ip(addr[0])
    except ValueError:
        return False
    if ip != token.ip:
        return False
    return not token.is_retry or addr[1] == token.port


def encode_token(token: Token) -> bytes:
    """The plaintext payload of ``token`` (to be sealed with ``TokenProtector.seal``).

    Raises ValueError for fields that do not fit (an IP that is not 4 or 16 bytes, a connection
    ID longer than 20 bytes, a port or version out of range).
    """
    if len(token.ip) not in (4, 16):
        raise ValueError(f"token IP address must be 4 or 16 bytes, got {len(token.ip)}")
    if not 0 <= token.version <= 0xFFFFFFFF or not 0 <= token.port <= 0xFFFF:
        raise ValueError("token version must fit 32 bits and port 16 bits")
    issued_ms = math.floor(token.issued * 1000)
    if not -(1 << 63) <= issued_ms < 1 << 63:
        raise ValueError(f"token issue time {token.issued} out of range")
    out = bytearray(
        _FIXED.pack(
            _KIND_RETRY if token.is_retry else _KIND_NEW_TOKEN,
            token.version,
            issued_ms,
            len(token.ip),
        )
    )
    out += token.ip
    if token.is_retry:
        if (
            len(token.original_dcid) > MAX_CONNECTION_ID_LENGTH
            or len(token.retry_scid) > MAX_CONNECTION_ID_LENGTH
        ):
            raise ValueError("connection IDs in a token are at most 20 bytes")
        out += _PORT.pack(token.port)
        out.append(len(token.original_dcid))
        out += token.original_dcid
        out.append(len(token.retry_scid))
        out += token.retry_scid
    return bytes(out)


def parse_token(data: bytes | bytearray | memoryview) -> Token | None:
    """Parse a token payload; None unless ``data`` is exactly one well-formed payload.

    ``data`` has passed authentication, but is still parsed defensively: every length is checked
    against what remains and the payload must be consumed exactly.
    """
    data = bytes(data)
    if len(data) < _FIXED.size:
        return None
    kind, version, issued_ms, ip_length = _FIXED.unpack_from(data, 0)
    if kind not in (_KIND_NEW_TOKEN, _KIND_RETRY) or ip_length not in (4, 16):
        return None
    pos = _FIXED.size
    ip = data[pos : pos + ip_length]
    pos += ip_length
    if len(ip) != ip_length:
        return None
    if kind == _KIND_NEW_TOKEN:
        if pos != len(data):
            return None
        return Token(False, version, ip, issued_ms / 1000)
    if pos + _PORT.size > len(data):
        return None
    (port,) = _PORT.unpack_from(data, pos)
    pos += _PORT.size
    cids: list[bytes] = []
    for _ in range(2):
        if pos >= len(data):
            return None
        cid_length = data[pos]
        pos += 1
        if cid_length > MAX_CONNECTION_ID_LENGTH or pos + cid_length > len(data):
            return None
        cids.append(data[pos : pos + cid_length])
        pos += cid_length
    if pos != len(data):
        return None
    return Token(True, version, ip, issued_ms / 1000, port, cids[0], cids[1])


class TokenProtector:
    """Seals and opens token payloads: AES-256-GCM under a key derived from ``key``, random nonce.

    ``key`` is the server's token key (at least 16 bytes of secret, e.g. ``os.urandom(32)``;
    one key per server, shared by servers that must accept each other's tokens). The sealed
    token is nonce (12) || ciphertext || tag (16). Raises ValueError for a key that is too short.
    """

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) < _MIN_KEY_LENGTH:
            raise ValueError(f"token key must be at least {_MIN_KEY_LENGTH} bytes, got {len(key)}")
        # HKDF turns any key length into the AES-256 key and separates it from other uses of `key`.
        prk = hkdf_extract(_SHA256, _KEY_SALT, key)
        self._aead = AESGCM(hkdf_expand_label(_SHA256, prk, b"token key", b"", 32))

    def seal(self, payload: bytes) -> bytes:
        """Encrypt and authenticate ``payload``; a fresh random nonce per token (RFC 9000 §8.1.4)."""
        nonce = os.urandom(_NONCE_LENGTH)
        return nonce + self._aead.encrypt(nonce, payload, None)

    def open(self, token: bytes | bytearray | memoryview) -> bytes | None:
        """The payload of a token this protector sealed; None for anything else (hostile input)."""
        if not _NONCE_LENGTH + _TAG_LENGTH <= len(token) <= MAX_TOKEN_LENGTH:
            return None
        with memoryview(token) as view:
            try:
                return self._aead.decrypt(view[:_NONCE_LENGTH], view[_NONCE_LENGTH:], None)
            except InvalidTag:
                return None

    def seal_token(self, token: Token) -> bytes:
        """``seal(encode_token(token))``."""
        return self.seal(encode_token(token))

    def open_token(self, data: bytes | bytearray | memoryview) -> Token | None:
        """The ``Token`` inside ``data``; None if it fails to authenticate or parse."""
        payload = self.open(data)
        return None if payload is None else parse_token(payload)
