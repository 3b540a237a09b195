"""quicsilver: a QUIC transport (RFC 9000/9001/9002) for asyncio, after quic-go's design."""

from __future__ import annotations

from .api_connection import Connection, ConnectionState
from .client import LRUTokenStore, TokenStore, dial_addr, dial_addr_early
from .config import Config
from .errors import (
    AddressInUseError,
    ApplicationError,
    ConfigError,
    DatagramTooLargeError,
    HandshakeTimeoutError,
    IdleTimeoutError,
    QuicError,
    StatelessResetError,
    StreamError,
    StreamLimitReachedError,
    TransportClosedError,
    TransportError,
    TransportErrorCode,
    VersionNegotiationError,
)
from .handshake.tls import MemorySessionTicketStore, TLSConfig
from .listener import EarlyListener, Listener, listen_addr, listen_addr_early
from .protocol import VERSION_1, VERSION_2
from .server import ServerClosedError
from .stream import ReceiveStream, SendStream, Stream, open_asyncio_streams
from .transport import Transport, TransportStats

__version__ = "0.1.0"

__all__ = [
    "VERSION_1",
    "VERSION_2",
    "AddressInUseError",
    "ApplicationError",
    "Config",
    "ConfigError",
    "Connection",
    "ConnectionState",
    "DatagramTooLargeError",
    "EarlyListener",
    "HandshakeTimeoutError",
    "IdleTimeoutError",
    "LRUTokenStore",
    "Listener",
    "MemorySessionTicketStore",
    "QuicError",
    "ReceiveStream",
    "SendStream",
    "ServerClosedError",
    "StatelessResetError",
    "Stream",
    "StreamError",
    "StreamLimitReachedError",
    "TLSConfig",
    "TokenStore",
    "Transport",
    "TransportClosedError",
    "TransportError",
    "TransportErrorCode",
    "TransportStats",
    "VersionNegotiationError",
    "__version__",
    "dial_addr",
    "dial_addr_early",
    "listen_addr",
    "listen_addr_early",
    "open_asyncio_streams",
]
