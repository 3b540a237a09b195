"""TLSEngine: the sans-IO TLS 1.3 handshake as QUIC uses it (RFC 9001 §4; quic-go's CryptoSetup).

QUIC has no TLS record layer (RFC 9001 §4.1.3): handshake bytes arrive in CRYPTO frames at an
encryption level and leave the same way. The engine reassembles messages per level (a message may
be split over frames, a frame may hold several), checks each arrives at the level RFC 9001 §4 puts
it at, hands it to the client or server state machine, and queues events: bytes to send, keys to
install, the peer's transport parameters, completion, tickets.

One rule at the entry point: every failure leaves :meth:`TLSEngine.handle_message` as a
:class:`~quicsilver.errors.TransportError` (CRYPTO_ERROR 0x100 + alert, or a QUIC code where
RFC 9001 names one), never another exception; after a failure the engine is dead and repeats it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Final

from ...errors import ConfigError, TransportError, crypto_error
from ...protocol import EncryptionLevel
from ..protection import CipherSuite
from .alerts import AlertDescription, tls_error
from .client import ClientHandshake
from .config import TLSConfig
from .events import TLSEvent
from .messages import HandshakeType
from .server import ServerHandshake
from .tickets import SessionTicket

_logger: Final = logging.getLogger("quicsilver.tls")

__all__ = ["MAX_HANDSHAKE_MESSAGE_SIZE", "TLSEngine"]

# The largest handshake message we buffer: a Certificate chain is the biggest (16 certificates of a
# few KiB each fit easily); anything announcing more is refused before it is buffered.
MAX_HANDSHAKE_MESSAGE_SIZE: Final = 1 << 17

# RFC 9001 §6: "Endpoints MUST treat the receipt of a TLS KeyUpdate message as a connection error of
# type 0x010a"; RFC 9001 §8.3: EndOfEarlyData is not used in QUIC.
_FORBIDDEN_IN_QUIC: Final = frozenset({HandshakeType.KEY_UPDATE, HandshakeType.END_OF_EARLY_DATA})


def _ascii_host(name: str | None) -> str | None:
    """The host as sent in SNI and matched against certificates: A-labels (IDNA), no trailing dot
    (RFC 6066 §3: "The hostname is represented ... without a trailing dot")."""
    if name is None:
        return None
    name = name.rstrip(".")
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ConfigError("server_name", f"{name!r} is not a valid host name ({exc})")


class TLSEngine:
    """The TLS 1.3 handshake of one QUIC connection.

    Args:
        config: the endpoint's :class:`TLSConfig`.
        is_client: which side this is.
        transport_parameters: our encoded QUIC transport parameters (RFC 9001 §8.2).
        server_name: client: the host to name in SNI and verify (default ``config.server_name``).
        session_ticket: client: a ticket to resume (default: one from ``config.session_ticket_store``).
        early_data: client: offer 0-RTT if the ticket allows it; server: accept 0-RTT.
        now: the monotonic time in seconds (ticket ages).
        early_data_check: server: called with the ``app_data`` sealed in the ticket (the transport
            parameters the QUIC layer remembered, RFC 9000 §7.4.1); returning False rejects 0-RTT.
        quic: False only for tests that run TLS over TCP: no quic_transport_parameters, ALPN optional.
        split_flight: server: stop the flight after the ServerHello (``flight_pending``) until
            ``finish_flight``, so that the QUIC layer can send it first (the client then works on
            it while the rest is built).

    Raises ConfigError for a server config without a certificate or a verifying client without a
    server name.
    """

    def __init__(
        self,
        config: TLSConfig,
        *,
        is_client: bool,
        transport_parameters: bytes,
        server_name: str | None = None,
        session_ticket: SessionTicket | None = None,
        early_data: bool = False,
        now: float,
        early_data_check: Callable[[bytes], bool] | None = None,
        quic: bool = True,
        split_flight: bool = False,
    ) -> None:
        self._events: deque[TLSEvent] = deque()
        self._buffers = [bytearray(), bytearray(), bytearray(), bytearray()]  # one per EncryptionLevel
        self._error: TransportError | None = None
        self._now = now
        self.is_client = is_client
        self._handshake: ClientHandshake | ServerHandshake
        if is_client:
            name = _ascii_host(server_name if server_name is not None else config.server_name)
            if config.verify and not name:
                raise ConfigError("server_name", "verifying the server needs its name: pass server_name=")
            store = config.session_ticket_store
            if session_ticket is None and store is not None and name:
                session_ticket = store.pop(name, now)
            self._handshake = ClientHandshake(
                config,
                self._events,
                transport_parameters=transport_parameters,
                server_name=name,
                session_ticket=session_ticket,
                early_data=early_data,
                quic=quic,
                now=now,
            )
        else:
            config.check_server()
            self._handshake = ServerHandshake(
                config,
                self._events,
                transport_parameters=transport_parameters,
                early_data=early_data,
                early_data_check=early_data_check,
                quic=quic,
                now=now,
            )
            self._handshake.split_flight = split_flight
        self._quic = quic

    # ---- driving ----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Client: queue the ClientHello (and the 0-RTT write key when 0-RTT is offered)."""
        if isinstance(self._handshake, ClientHandshake):
            self._handshake.start()

    def set_transport_parameters(self, data: bytes) -> None:
        """Replaces our transport parameters; a server may set them until the ClientHello arrives."""
        self._handshake.transport_parameters = data

    def handle_message(
        self, data: bytes | memoryview, level: EncryptionLevel, now: float | None = None
    ) -> None:
        """Feeds CRYPTO stream bytes of ``level`` in order; raises TransportError on failure.

        ``now`` (monotonic seconds) dates received session tickets; default: the last time given.
        """
        if self._error is not None:
            raise self._error
        if now is not None:
            self._now = now
        try:
            self.finish_flight()  # a peer's message comes after our whole flight
            self._handle(data, level)
        except TransportError as exc:
            self._error = exc
            raise
        except Exception as exc:  # the single inbound entry point: nothing else may escape (STYLE.md)
            _logger.error("internal error in the TLS engine", exc_info=exc)
            self._error = TransportError(
                crypto_error(AlertDescription.INTERNAL_ERROR), f"internal error: {exc!r}"
            )
            raise self._error from exc

    def _handle(self, data: bytes | memoryview, level: EncryptionLevel) -> None:
        hs = self._handshake
        buf = self._buffers[level]
        buf += data
        while buf:
            if hs.expected_level != level:
                # RFC 8446 §5.1 / RFC 9001 §4.1.3: messages at a level the handshake is not reading (or
                # left over when it moved to the next level) are unexpected_message.
                raise tls_error(AlertDescription.UNEXPECTED_MESSAGE, f"handshake data at level {level.name}")
            if len(buf) < 4:
                return
            msg_type = buf[0]
            length = int.from_bytes(buf[1:4], "big")
            if length > MAX_HANDSHAKE_MESSAGE_SIZE:
                raise tls_error(
                    AlertDescription.DECODE_ERROR, f"handshake message of {length} bytes is too large"
                )
            if self._quic and msg_type in _FORBIDDEN_IN_QUIC:
                raise tls_error(AlertDescription.UNEXPECTED_MESSAGE, f"handshake message {msg_type} in QUIC")
            if len(buf) < 4 + length:
                return
            raw = bytes(buf[: 4 + length])
            del buf[: 4 + length]
            hs.handle(msg_type, memoryview(raw)[4:], raw, self._now)

    @property
    def flight_pending(self) -> bool:
        """Server with ``split_flight``: the ServerHello is queued and EncryptedExtensions .. Finished
        wait for ``finish_flight``."""
        hs = self._handshake
        return isinstance(hs, ServerHandshake) and hs.flight_pending

    def finish_flight(self) -> None:
        """Server: queue the rest of the flight after the ServerHello (no-op when none is pending)."""
        hs = self._handshake
        if isinstance(hs, ServerHandshake) and hs.flight_pending:
            try:
                hs.finish_flight()
            except TransportError as exc:
                self._error = exc
                raise

    def next_event(self) -> TLSEvent | None:
        """The next queued event, or None."""
        events = self._events
        return events.popleft() if events else None

    def wants_session_ticket(self) -> bool:
        """Server: whether ``send_session_ticket`` would send one now (the QUIC layer then spends the
        encoding of its ``app_data``, not otherwise)."""
        if isinstance(self._handshake, ServerHandshake):
            return self._handshake.wants_session_ticket()
        return False

    def pending_read_secret(self) -> tuple[CipherSuite, bytes] | None:
        """Server, between its flight and the client's Finished: (suite, secret) of the 1-RTT read keys
        the Finished will install; None otherwise."""
        if isinstance(self._handshake, ServerHandshake):
            return self._handshake.pending_read_secret()
        return None

    def send_session_ticket(self, now: float, app_data: bytes = b"") -> bool:
        """Server: queue a NewSessionTicket (WriteData at ONE_RTT) sealing ``app_data`` (what the QUIC
        layer wants back for its 0-RTT check). False if not a server, not complete or tickets are off."""
        if isinstance(self._handshake, ServerHandshake):
            return self._handshake.send_session_ticket(now, app_data)
        return False

    def export_keying_material(self, label: bytes, context: bytes = b"", length: int = 32) -> bytes:
        """Keying material bound to this handshake (RFC 8446 §7.5, RFC 5705 use in QUIC applications).

        Raises ValueError before the Master Secret exists (before the server Finished).
        """
        return self._handshake.export_keying_material(label, context, length)

    # ---- state ------------------------------------------------------------------------------------------

    @property
    def handshake_complete(self) -> bool:
        return self._handshake.complete

    @property
    def alpn(self) -> str | None:
        return self._handshake.alpn

    @property
    def early_data_accepted(self) -> bool:
        return self._handshake.early_data_accepted

    @property
    def session_resumed(self) -> bool:
        return self._handshake.session_resumed

    @property
    def early_data_offered(self) -> bool:
        """Client: whether the ClientHello offered 0-RTT."""
        hs = self._handshake
        return isinstance(hs, ClientHandshake) and hs.early_data_offered
