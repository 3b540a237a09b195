"""Error types of quicsilver and the QUIC transport error codes (RFC 9000 §20.1).

Every error says who broke the rules: ``remote`` is True when the peer sent the error
(or caused it), False when we closed the connection ourselves.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TypeVar


class TransportErrorCode(IntEnum):
    """Transport error codes, RFC 9000 §20.1 (plus AEAD_LIMIT_REACHED etc.)."""

    NO_ERROR = 0x00
    INTERNAL_ERROR = 0x01
    CONNECTION_REFUSED = 0x02
    FLOW_CONTROL_ERROR = 0x03
    STREAM_LIMIT_ERROR = 0x04
    STREAM_STATE_ERROR = 0x05
    FINAL_SIZE_ERROR = 0x06
    FRAME_ENCODING_ERROR = 0x07
    TRANSPORT_PARAMETER_ERROR = 0x08
    CONNECTION_ID_LIMIT_ERROR = 0x09
    PROTOCOL_VIOLATION = 0x0A
    INVALID_TOKEN = 0x0B
    APPLICATION_ERROR = 0x0C
    CRYPTO_BUFFER_EXCEEDED = 0x0D
    KEY_UPDATE_ERROR = 0x0E
    AEAD_LIMIT_REACHED = 0x0F
    NO_VIABLE_PATH = 0x10
    VERSION_NEGOTIATION_ERROR = 0x11  # RFC 9368 §10.2
    CRYPTO_ERROR = 0x100  # 0x0100-0x01ff: 0x100 + TLS alert (RFC 9001 §4.8)


def crypto_error(alert: int) -> int:
    """The QUIC error code for a TLS alert (RFC 9001 §4.8)."""
    return 0x100 + (alert & 0xFF)


class QuicError(Exception):
    """Base class of every error quicsilver raises."""


_E = TypeVar("_E", bound=BaseException)


def raisable_copy(error: _E) -> _E:
    """A copy of ``error`` to raise (same type, message, attributes and cause), for an error that is
    kept and raised again on every later call (a closed connection's, a reset stream's).

    Raising the kept object itself would tie it to the frames it passes through: its traceback holds
    the frames, the frames hold the connection, the connection holds the error — a reference cycle
    that leaves every ended connection to the garbage collector (issue 9), and a traceback that
    grows with each raise. The copy goes away with the ``except`` clause that catches it.
    """
    cls = type(error)
    copy = cls.__new__(cls, *error.args)  # no __init__: the attributes come from the original
    copy.__dict__.update(error.__dict__)
    copy.__cause__ = error.__cause__
    copy.__suppress_context__ = error.__suppress_context__
    return copy


class TransportError(QuicError):
    """A QUIC transport error (RFC 9000 §20.1), raised by parsers and the protocol core.

    ``code`` is the RFC error code (an ``int``; unknown codes sent by a peer stay ints),
    ``frame_type`` the frame that triggered it (or None), ``reason`` a readable phrase and
    ``remote`` whether the peer sent it in a CONNECTION_CLOSE frame.
    """

    def __init__(
        self, code: int, reason: str = "", frame_type: int | None = None, remote: bool = False
    ) -> None:
        self.code = int(code)
        self.reason = reason
        self.frame_type = frame_type
        self.remote = remote
        try:
            name = TransportErrorCode(self.code).name
        except ValueError:
            name = (
                f"CRYPTO_ERROR(alert {self.code - 0x100})" if 0x100 <= self.code <= 0x1FF else hex(self.code)
            )
        who = "peer" if remote else "local"
        super().__init__(f"{name} ({who}): {reason}" if reason else f"{name} ({who})")


class ApplicationError(QuicError):
    """The connection was closed by an application with ``code`` (CONNECTION_CLOSE 0x1d)."""

    def __init__(self, code: int, reason: str = "", remote: bool = False) -> None:
        self.code = code
        self.reason = reason
        self.remote = remote
        who = "peer" if remote else "local"
        super().__init__(f"application error {code:#x} ({who}): {reason}")


class StreamError(QuicError):
    """A stream was reset (RESET_STREAM) or stopped (STOP_SENDING) with ``code``."""

    def __init__(self, stream_id: int, code: int, remote: bool = False) -> None:
        self.stream_id = stream_id
        self.code = code
        self.remote = remote
        who = "peer" if remote else "local"
        super().__init__(f"stream {stream_id} canceled with error code {code:#x} ({who})")


class IdleTimeoutError(QuicError, TimeoutError):
    """No network activity within the idle timeout (RFC 9000 §10.1)."""


class HandshakeTimeoutError(QuicError, TimeoutError):
    """The handshake did not complete within the handshake idle timeout."""


class StatelessResetError(QuicError):
    """The peer sent a stateless reset (RFC 9000 §10.3)."""


class VersionNegotiationError(QuicError):
    """No common QUIC version: ``ours`` were offered, the server supports ``theirs``."""

    def __init__(self, ours: list[int], theirs: list[int]) -> None:
        self.ours = list(ours)
        self.theirs = list(theirs)
        super().__init__(
            "no compatible QUIC version (we offered "
            + ", ".join(f"{v:#010x}" for v in ours)
            + "; the server supports "
            + ", ".join(f"{v:#010x}" for v in theirs)
            + ")"
        )


class DatagramTooLargeError(QuicError, ValueError):
    """A datagram is larger than the peer's max_datagram_frame_size allows."""

    def __init__(self, size: int, max_size: int) -> None:
        self.size = size
        self.max_size = max_size
        super().__init__(f"datagram of {size} bytes exceeds the maximum of {max_size} bytes")


class StreamLimitReachedError(QuicError):
    """Opening another stream would exceed the peer's MAX_STREAMS limit."""


class ConfigError(QuicError, ValueError):
    """A Config / TLSConfig field has a value outside its allowed range."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class AddressInUseError(QuicError, OSError):
    """A Transport is already running on this local address in this process."""

    def __init__(self, addr: object) -> None:
        self.addr = addr
        super().__init__(f"a quicsilver Transport is already listening on {addr}")


class TransportClosedError(QuicError):
    """The Transport (socket) carrying the connection was closed (quic-go ErrTransportClosed)."""

    def __init__(self) -> None:
        super().__init__("the Transport was closed")
