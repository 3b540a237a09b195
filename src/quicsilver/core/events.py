"""Events the sans-IO connection core hands to the I/O layer (h11-style, frozen and slotted).

The core queues these as the protocol progresses (RFC 9000 §3 stream states, §10 closing, §19.7
NEW_TOKEN, RFC 9221 datagrams); ``QuicConnection.next_event()`` pops them in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ConnectionIdIssued",
    "ConnectionIdRetired",
    "ConnectionTerminated",
    "DatagramReceived",
    "Event",
    "HandshakeCompleted",
    "NewTokenReceived",
    "SessionTicketReceived",
    "StopSendingReceived",
    "StreamOpened",
    "StreamReadable",
    "StreamReset",
    "StreamWritable",
    "StreamsAvailable",
]


@dataclass(frozen=True, slots=True)
class HandshakeCompleted:
    """The TLS handshake completed (RFC 9001 §4.1.1); the connection can carry 1-RTT data."""

    alpn: str | None
    session_resumed: bool
    early_data_accepted: bool
    version: int


@dataclass(frozen=True, slots=True)
class ConnectionTerminated:
    """The connection is closed; ``error`` says why and who closed it (RFC 9000 §10)."""

    error: Exception


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The peer opened a stream (RFC 9000 §2.1)."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamReadable:
    """New in-order data (or the FIN) is available on a stream."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamWritable:
    """A stream's send buffer or flow-control window has room again."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The peer reset a stream with RESET_STREAM (RFC 9000 §19.4)."""

    stream_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class StopSendingReceived:
    """The peer asked us to stop sending on a stream (RFC 9000 §19.5)."""

    stream_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class StreamsAvailable:
    """The peer raised its stream limit (MAX_STREAMS, or its transport parameters): more streams of
    this direction can be opened (RFC 9000 §4.6)."""

    bidi: bool


@dataclass(frozen=True, slots=True)
class DatagramReceived:
    """An unreliable DATAGRAM frame arrived (RFC 9221)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ConnectionIdIssued:
    """We issued a new connection ID; the I/O layer routes packets carrying it to us."""

    cid: bytes


@dataclass(frozen=True, slots=True)
class ConnectionIdRetired:
    """One of our connection IDs was retired; the I/O layer may stop routing it (after a linger)."""

    cid: bytes


@dataclass(frozen=True, slots=True)
class NewTokenReceived:
    """Client: the server sent a NEW_TOKEN token for future connections (RFC 9000 §8.1.3)."""

    token: bytes


@dataclass(frozen=True, slots=True)
class SessionTicketReceived:
    """Client: a TLS session ticket usable for resumption and 0-RTT."""

    ticket: Any


Event = (
    HandshakeCompleted
    | ConnectionTerminated
    | StreamOpened
    | StreamReadable
    | StreamWritable
    | StreamReset
    | StopSendingReceived
    | StreamsAvailable
    | DatagramReceived
    | ConnectionIdIssued
    | ConnectionIdRetired
    | NewTokenReceived
    | SessionTicketReceived
)
