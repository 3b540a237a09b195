"""TLS alert descriptions (RFC 8446 §6) and their QUIC error codes (RFC 9001 §4.8).

QUIC carries no TLS alerts on the wire: a TLS alert ends the connection with the transport error
``CRYPTO_ERROR`` = 0x0100 + alert description (RFC 9001 §4.8). Every failure of the handshake
engine is raised as :class:`~quicsilver.errors.TransportError` built by :func:`tls_error`.
"""

from __future__ import annotations

from enum import IntEnum

from ...errors import TransportError, crypto_error

__all__ = ["AlertDescription", "tls_error"]


class AlertDescription(IntEnum):
    """Alert descriptions of RFC 8446 §6 (and RFC 7301 for no_application_protocol)."""

    CLOSE_NOTIFY = 0
    UNEXPECTED_MESSAGE = 10
    BAD_RECORD_MAC = 20
    RECORD_OVERFLOW = 22
    HANDSHAKE_FAILURE = 40
    BAD_CERTIFICATE = 42
    UNSUPPORTED_CERTIFICATE = 43
    CERTIFICATE_REVOKED = 44
    CERTIFICATE_EXPIRED = 45
    CERTIFICATE_UNKNOWN = 46
    ILLEGAL_PARAMETER = 47
    UNKNOWN_CA = 48
    ACCESS_DENIED = 49
    DECODE_ERROR = 50
    DECRYPT_ERROR = 51
    PROTOCOL_VERSION = 70
    INSUFFICIENT_SECURITY = 71
    INTERNAL_ERROR = 80
    INAPPROPRIATE_FALLBACK = 86
    USER_CANCELED = 90
    MISSING_EXTENSION = 109
    UNSUPPORTED_EXTENSION = 110
    UNRECOGNIZED_NAME = 112
    BAD_CERTIFICATE_STATUS_RESPONSE = 113
    UNKNOWN_PSK_IDENTITY = 115
    CERTIFICATE_REQUIRED = 116
    NO_APPLICATION_PROTOCOL = 120


def tls_error(alert: AlertDescription, reason: str) -> TransportError:
    """The QUIC error for a TLS ``alert``: CRYPTO_ERROR 0x100 + alert (RFC 9001 §4.8)."""
    return TransportError(crypto_error(alert), f"{alert.name.lower()}: {reason}")
