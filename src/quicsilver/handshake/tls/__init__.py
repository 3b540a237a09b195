"""quicsilver.handshake.tls: TLS 1.3 for QUIC (RFC 8446, RFC 9001 §4), sans-IO.

:class:`TLSEngine` runs one handshake; :class:`TLSConfig` holds certificates, trust and options.
"""

from .alerts import AlertDescription, tls_error
from .config import DEFAULT_CIPHER_SUITES, DEFAULT_GROUPS, TLSConfig
from .engine import TLSEngine
from .events import (
    EarlyDataRejected,
    HandshakeComplete,
    KeysReady,
    PeerTransportParameters,
    SessionTicketReceived,
    TLSEvent,
    WriteData,
)
from .groups import NamedGroup
from .signatures import SignatureScheme
from .tickets import MemorySessionTicketStore, SessionTicket, SessionTicketStore
from .zero_rtt import early_data_check

__all__ = [
    "DEFAULT_CIPHER_SUITES",
    "DEFAULT_GROUPS",
    "AlertDescription",
    "EarlyDataRejected",
    "HandshakeComplete",
    "KeysReady",
    "MemorySessionTicketStore",
    "NamedGroup",
    "PeerTransportParameters",
    "SessionTicket",
    "SessionTicketReceived",
    "SessionTicketStore",
    "SignatureScheme",
    "TLSConfig",
    "TLSEngine",
    "TLSEvent",
    "WriteData",
    "early_data_check",
    "tls_error",
]
