"""Events of the TLS engine, consumed by the QUIC connection (RFC 9001 §4.1.3, §4.1.4).

The engine never touches packets: it asks the connection to send handshake bytes at a level
(:class:`WriteData`), to install keys (:class:`KeysReady`, one event per direction, in the order
RFC 9001 §4.1.4 lists them), and reports what it learned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from cryptography import x509

from ...protocol import EncryptionLevel
from ..protection import CipherSuite
from .tickets import SessionTicket

__all__ = [
    "EarlyDataRejected",
    "HandshakeComplete",
    "KeysReady",
    "PeerTransportParameters",
    "SessionTicket",
    "SessionTicketReceived",
    "TLSEvent",
    "WriteData",
]


@dataclass(frozen=True, slots=True)
class WriteData:
    """Handshake bytes to send in CRYPTO frames at ``level``."""

    level: EncryptionLevel
    data: bytes


@dataclass(frozen=True, slots=True)
class KeysReady:
    """A traffic secret for ``level``; ``is_write`` from this endpoint's point of view."""

    level: EncryptionLevel
    is_write: bool
    suite: CipherSuite
    secret: bytes


@dataclass(frozen=True, slots=True)
class PeerTransportParameters:
    """The peer's quic_transport_parameters extension, still encoded (RFC 9001 §8.2)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    """The handshake finished: for a client after sending its Finished, for a server on the
    client's Finished (RFC 9001 §4.1.1). ``peer_certificates`` is the verified chain, leaf first
    (empty when the session was resumed or the client sent no certificate). ``server_name`` is the
    SNI host name (the client's own, or the one the client sent the server; None without SNI)."""

    alpn: str
    suite: CipherSuite
    group: int | None
    session_resumed: bool
    early_data_accepted: bool
    peer_certificates: tuple[x509.Certificate, ...]
    server_name: str | None = None


@dataclass(frozen=True, slots=True)
class EarlyDataRejected:
    """Client: the server did not accept the 0-RTT data (RFC 9001 §4.6.2); resend it in 1-RTT."""


@dataclass(frozen=True, slots=True)
class SessionTicketReceived:
    """Client: a NewSessionTicket arrived; the ticket can resume a later connection."""

    ticket: SessionTicket


TLSEvent: TypeAlias = (
    WriteData
    | KeysReady
    | PeerTransportParameters
    | HandshakeComplete
    | EarlyDataRejected
    | SessionTicketReceived
)
