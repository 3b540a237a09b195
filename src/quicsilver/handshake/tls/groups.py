"""Key exchange groups: X25519, secp256r1, secp384r1 and the hybrid X25519MLKEM768.

RFC 8446 §4.2.7 (supported_groups), §4.2.8 (key_share), §4.2.8.2 (ECDHE parameters), §7.4 ((EC)DHE
shared secret); draft-ietf-tls-ecdhe-mlkem (X25519MLKEM768, code point 0x11EC): the client share is
the ML-KEM-768 encapsulation key (1184 bytes) followed by the X25519 public key (32 bytes), the server
share the ML-KEM ciphertext (1088 bytes) followed by the X25519 public key, and the shared secret the
ML-KEM shared secret followed by the X25519 shared secret (ML-KEM first, unlike the P-256 hybrid).

A malformed or invalid peer share is illegal_parameter (RFC 8446 §4.2.8.2: "Peers MUST validate
each other's public key").
"""

from __future__ import annotations

import os
from enum import IntEnum
from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .alerts import AlertDescription, tls_error

__all__ = ["SUPPORTED_GROUPS", "ClientKeyShare", "NamedGroup", "replenish_key_spares", "server_key_exchange"]


class NamedGroup(IntEnum):
    """Named groups (RFC 8446 §4.2.7, draft-ietf-tls-ecdhe-mlkem)."""

    SECP256R1 = 0x0017
    SECP384R1 = 0x0018
    X25519 = 0x001D
    X25519MLKEM768 = 0x11EC


SUPPORTED_GROUPS: Final = frozenset(NamedGroup)

_MLKEM_PK: Final = 1184
_MLKEM_CT: Final = 1088
_X25519_LEN: Final = 32
_EC_CURVES: Final[dict[int, tuple[ec.EllipticCurve, int]]] = {
    NamedGroup.SECP256R1: (ec.SECP256R1(), 65),
    NamedGroup.SECP384R1: (ec.SECP384R1(), 97),
}


# --------------------------------------------------------------------------------------------------
# Ephemeral keys made ahead of need
#
# Generating a handshake's ephemeral keys is on its critical path: the client's ML-KEM-768 and X25519
# keys (~200 us) before the ClientHello can leave, the server's X25519 key (~50 us) before its flight.
# The I/O layer calls ``replenish_key_spares`` right after it sent a flight, when the process waits
# for the peer anyway, and the next handshake takes the keys made then. Each spare is used once, only
# by the process that made it (a fork must not share ephemeral keys), and not after
# SPARE_KEY_LIFETIME seconds; only the kinds taken since the last call are made again, so a process
# that stops handshaking stops making keys.

SPARE_KEY_LIFETIME: Final = 10.0

# A spare is the private key(s), the public share the ClientHello or ServerHello carries (deriving an
# ML-KEM-768 encapsulation key from its private key costs ~30 us: done with the key), when it was
# made and by which process.
_HybridKeys = tuple[mlkem.MLKEM768PrivateKey, x25519.X25519PrivateKey, bytes]
_X25519Key = tuple[x25519.X25519PrivateKey, bytes]

_hybrid_spares: Final[list[tuple[_HybridKeys, float, int]]] = []
_x25519_spares: Final[list[tuple[_X25519Key, float, int]]] = []
_wanted: Final[list[bool]] = [False, False]  # [hybrid, x25519] taken since the last replenish


def _fresh(made: float, pid: int, now: float | None) -> bool:
    return now is not None and pid == os.getpid() and 0.0 <= now - made < SPARE_KEY_LIFETIME


def _new_hybrid() -> _HybridKeys:
    kem = mlkem.MLKEM768PrivateKey.generate()
    x = x25519.X25519PrivateKey.generate()
    # draft-ietf-tls-ecdhe-mlkem §4.1: the X25519MLKEM768 share is the ML-KEM key, then X25519's
    return kem, x, kem.public_key().public_bytes_raw() + x.public_key().public_bytes_raw()


def _new_x25519() -> _X25519Key:
    x = x25519.X25519PrivateKey.generate()
    return x, x.public_key().public_bytes_raw()


def _take_hybrid(now: float | None) -> _HybridKeys:
    _wanted[0] = True
    while _hybrid_spares:
        keys, made, pid = _hybrid_spares.pop()
        if _fresh(made, pid, now):
            return keys
    return _new_hybrid()


def _take_x25519(now: float | None) -> _X25519Key:
    _wanted[1] = True
    while _x25519_spares:
        keys, made, pid = _x25519_spares.pop()
        if _fresh(made, pid, now):
            return keys
    return _new_x25519()


def replenish_key_spares(now: float) -> None:
    """Make one spare of each kind of ephemeral key taken since the last call (see above); ``now``
    is the clock the handshakes run on. Costs nothing when no key was taken."""
    if _wanted[0]:
        _wanted[0] = False
        if not _hybrid_spares:
            _hybrid_spares.append((_new_hybrid(), now, os.getpid()))
    if _wanted[1]:
        _wanted[1] = False
        if not _x25519_spares:
            _x25519_spares.append((_new_x25519(), now, os.getpid()))


def _bad_share(reason: str) -> Exception:
    return tls_error(AlertDescription.ILLEGAL_PARAMETER, reason)


def _x25519_public(data: bytes) -> x25519.X25519PublicKey:
    if len(data) != _X25519_LEN:
        raise _bad_share("X25519 share of the wrong length")
    return x25519.X25519PublicKey.from_public_bytes(data)


def _x25519_exchange(private: x25519.X25519PrivateKey, peer: bytes) -> bytes:
    try:
        # RFC 8446 §7.4.2: the all-zero shared secret (a low-order peer point) MUST be refused;
        # OpenSSL reports it as an error.
        return private.exchange(_x25519_public(peer))
    except ValueError:
        raise _bad_share("X25519 share yields no shared secret")


def _ec_public(group: int, data: bytes) -> ec.EllipticCurvePublicKey:
    curve, length = _EC_CURVES[group]
    # RFC 8446 §4.2.8.2: only the uncompressed point format (0x04 || X || Y) is allowed.
    if len(data) != length or data[0] != 4:
        raise _bad_share("ECDHE share is not an uncompressed point")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, data)
    except ValueError:
        raise _bad_share("ECDHE share is not on the curve")


def _ec_public_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


class ClientKeyShare:
    """A client's ephemeral key for one group: ``public`` goes into the ClientHello."""

    __slots__ = ("_ec", "_mlkem", "_x25519", "group", "public")

    def __init__(
        self,
        group: int,
        x25519_private: bytes | None = None,
        *,
        share_x25519_of: ClientKeyShare | None = None,
        now: float | None = None,
    ) -> None:
        """``share_x25519_of``: an X25519 share that reuses the X25519 key of that X25519MLKEM768
        share instead of generating its own (draft-ietf-tls-hybrid-design §3.2 allows the reuse; Go
        does it when it offers both shares). Either share may then complete the handshake, the other is
        dropped, so the key still serves one exchange. ``now``: the handshake's clock, to take a key
        made ahead of need (``replenish_key_spares``); None generates a new one."""
        self.group = NamedGroup(group)
        self._x25519: x25519.X25519PrivateKey | None = None
        self._ec: ec.EllipticCurvePrivateKey | None = None
        self._mlkem: mlkem.MLKEM768PrivateKey | None = None
        if x25519_private is not None:
            # A known private key (test vectors such as RFC 8448): X25519 only.
            if group != NamedGroup.X25519:
                raise ValueError("only X25519 shares can be loaded from private bytes")
            self._x25519 = x25519.X25519PrivateKey.from_private_bytes(x25519_private)
            self.public = self._x25519.public_key().public_bytes_raw()
        elif group == NamedGroup.X25519:
            hybrid = share_x25519_of
            if hybrid is not None:
                if hybrid.group != NamedGroup.X25519MLKEM768 or hybrid._x25519 is None:
                    raise ValueError("only an X25519MLKEM768 share can lend its X25519 key")
                self._x25519 = hybrid._x25519
                self.public = hybrid.public[-_X25519_LEN:]
            else:
                self._x25519, self.public = _take_x25519(now)
        elif group == NamedGroup.X25519MLKEM768:
            self._mlkem, self._x25519, self.public = _take_hybrid(now)
        else:
            self._ec = ec.generate_private_key(_EC_CURVES[group][0])
            self.public = _ec_public_bytes(self._ec)

    @classmethod
    def from_private_bytes(cls, group: int, private: bytes) -> ClientKeyShare:
        """A share from a known X25519 private key (test vectors such as RFC 8448)."""
        return cls(group, x25519_private=private)

    def exchange(self, server_share: bytes) -> bytes:
        """The shared secret from the server's share; illegal_parameter if the share is invalid."""
        if self._mlkem is not None and self._x25519 is not None:
            if len(server_share) != _MLKEM_CT + _X25519_LEN:
                raise _bad_share("X25519MLKEM768 share of the wrong length")
            try:
                kem_secret = self._mlkem.decapsulate(server_share[:_MLKEM_CT])
            except ValueError:
                raise _bad_share("ML-KEM ciphertext rejected")
            return kem_secret + _x25519_exchange(self._x25519, server_share[_MLKEM_CT:])
        if self._x25519 is not None:
            return _x25519_exchange(self._x25519, server_share)
        assert self._ec is not None
        try:
            return self._ec.exchange(ec.ECDH(), _ec_public(self.group, server_share))
        except ValueError:
            raise _bad_share("ECDHE failed")


def server_key_exchange(group: int, client_share: bytes, now: float | None = None) -> tuple[bytes, bytes]:
    """The server's (share, shared secret) answering ``client_share`` in ``group``; ``now`` as for
    ClientKeyShare."""
    if group == NamedGroup.X25519:
        private, public = _take_x25519(now)
        return public, _x25519_exchange(private, client_share)
    if group == NamedGroup.X25519MLKEM768:
        if len(client_share) != _MLKEM_PK + _X25519_LEN:
            raise _bad_share("X25519MLKEM768 share of the wrong length")
        try:
            kem_public = mlkem.MLKEM768PublicKey.from_public_bytes(client_share[:_MLKEM_PK])
            kem_secret, ciphertext = kem_public.encapsulate()
        except ValueError:
            raise _bad_share("ML-KEM encapsulation key rejected")
        private, public = _take_x25519(now)
        secret = kem_secret + _x25519_exchange(private, client_share[_MLKEM_PK:])
        return ciphertext + public, secret
    if group in _EC_CURVES:
        peer = _ec_public(group, client_share)
        ec_private = ec.generate_private_key(_EC_CURVES[group][0])
        try:
            secret = ec_private.exchange(ec.ECDH(), peer)
        except ValueError:
            raise _bad_share("ECDHE failed")
        return _ec_public_bytes(ec_private), secret
    raise tls_error(AlertDescription.INTERNAL_ERROR, f"unsupported group {group}")
