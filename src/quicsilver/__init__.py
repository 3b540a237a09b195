"""quicsilver: a QUIC transport (RFC 9000/9001/9002) for asyncio, after quic-go's design."""

from __future__ import annotations

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
    TransportError,
    TransportErrorCode,
    VersionNegotiationError,
)
from .protocol import VERSION_1, VERSION_2

__version__ = "0.1.0"

__all__ = [
    "VERSION_1",
    "VERSION_2",
    "AddressInUseError",
    "ApplicationError",
    "Config",
    "ConfigError",
    "DatagramTooLargeError",
    "HandshakeTimeoutError",
    "IdleTimeoutError",
    "QuicError",
    "StatelessResetError",
    "StreamError",
    "StreamLimitReachedError",
    "TransportError",
    "TransportErrorCode",
    "VersionNegotiationError",
    "__version__",
]
