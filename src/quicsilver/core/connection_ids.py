"""The connection-ID generator interface users may implement, its default, and stateless reset
tokens (RFC 9000 §5.1, §10.3.2).

Kept out of the compiled build: ``ConnectionIDGenerator`` is a runtime-checkable Protocol that
applications implement (quic-go's ConnectionIDGenerator). The issuing of our CIDs to the peer is
:mod:`quicsilver.core.conn_id_generator`.
"""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable

from quicsilver.handshake.hkdf import hmac_digest
from quicsilver.protocol import DEFAULT_CONNECTION_ID_LENGTH, MAX_CONNECTION_ID_LENGTH

__all__ = ["ConnectionIDGenerator", "RandomConnectionIDGenerator", "stateless_reset_token"]


@runtime_checkable
class ConnectionIDGenerator(Protocol):
    """Makes the connection IDs we ask peers to use (quic-go's ConnectionIDGenerator)."""

    def generate_connection_id(self) -> bytes:
        """A new connection ID of ``connection_id_len`` bytes."""

    @property
    def connection_id_len(self) -> int:
        """Length of every generated ID (0..20; the I/O layer parses short headers with it)."""


class RandomConnectionIDGenerator:
    """The default generator: random bytes from the OS CSPRNG (default length 4, as quic-go)."""

    __slots__ = ("_len",)

    def __init__(self, length: int = DEFAULT_CONNECTION_ID_LENGTH) -> None:
        if not 0 <= length <= MAX_CONNECTION_ID_LENGTH:
            raise ValueError(f"connection ID length must be 0..20, got {length}")
        self._len = length

    def generate_connection_id(self) -> bytes:
        return os.urandom(self._len)

    @property
    def connection_id_len(self) -> int:
        return self._len


def stateless_reset_token(key: bytes, cid: bytes) -> bytes:
    """RFC 9000 §10.3.2: a token derived from a static key and the CID: HMAC-SHA256(key, cid)[:16]."""
    return hmac_digest("sha256", key, cid)[:16]
