"""The TLS 1.3 server handshake for QUIC (RFC 8446 §2, §4; RFC 9001 §4, §8).

States follow RFC 8446 Appendix A.2 (no EndOfEarlyData in QUIC, RFC 9001 §8.3)::

    START -> (HelloRetryRequest -> WAIT_CLIENT_HELLO_RETRY ->) negotiate, send SH..Finished
          -> [WAIT_CERTIFICATE -> WAIT_CERTIFICATE_VERIFY ->] WAIT_FINISHED -> CONNECTED

The server picks in its own preference order: ALPN, cipher suite (a resumable ticket's suite first),
and the key exchange group among the shares the client sent, falling back to a HelloRetryRequest for
a group the client supports but sent no share for. Tickets are self-contained (sealed state); 0-RTT is
accepted only for the first PSK identity with the ticket's suite, ALPN and server name, a plausible
ticket age, and the QUIC layer's approval of the remembered transport parameters (RFC 9000 §7.4.1).
"""

from __future__ import annotations

import hmac
import os
from collections import deque
from collections.abc import Callable
from enum import IntEnum, auto
from typing import Final

from ...errors import TransportError, TransportErrorCode
from ...protocol import EncryptionLevel
from ..protection import CipherSuite
from .alerts import AlertDescription, tls_error
from .base import HandshakeBase, unexpected
from .config import TLSConfig
from .events import HandshakeComplete, PeerTransportParameters, TLSEvent
from .groups import server_key_exchange
from .key_schedule import KeySchedule, Transcript, hash_for_suite
from .messages import (
    HRR_RANDOM,
    TLS13,
    CertificateRequest,
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    Finished,
    HandshakeType,
    NewSessionTicket,
    ServerHello,
    parse_untrusted_certificate,
    parse_untrusted_client_hello,
    parse_untrusted_finished,
)
from .signatures import (
    CERTIFICATE_VERIFY_SCHEMES,
    choose_scheme,
    sign_certificate_verify,
)
from .tickets import EARLY_DATA_WINDOW, QUIC_MAX_EARLY_DATA, ServerTicketState

__all__ = ["ServerHandshake", "ServerState"]

_PSK_DHE_KE: Final = 1  # RFC 8446 §4.2.9
_MAX_PSK_IDENTITIES_TRIED: Final = 4
_H: Final = HandshakeType
_L: Final = EncryptionLevel


class ServerState(IntEnum):  # IntEnum: hashed in C (the state machine's tables are keyed by state)
    START = auto()
    WAIT_CLIENT_HELLO_RETRY = auto()
    WAIT_CERTIFICATE = auto()
    WAIT_CERTIFICATE_VERIFY = auto()
    WAIT_FINISHED = auto()
    CONNECTED = auto()


_LEVEL: Final[dict[ServerState, EncryptionLevel | None]] = {
    ServerState.START: _L.INITIAL,
    ServerState.WAIT_CLIENT_HELLO_RETRY: _L.INITIAL,
    ServerState.WAIT_CERTIFICATE: _L.HANDSHAKE,
    ServerState.WAIT_CERTIFICATE_VERIFY: _L.HANDSHAKE,
    ServerState.WAIT_FINISHED: _L.HANDSHAKE,
    ServerState.CONNECTED: None,  # a QUIC client sends no post-handshake messages
}


class ServerHandshake(HandshakeBase):
    is_client = False

    def __init__(
        self,
        config: TLSConfig,
        events: deque[TLSEvent],
        *,
        transport_parameters: bytes,
        early_data: bool,
        early_data_check: Callable[[bytes], bool] | None,
        quic: bool,
        now: float,
    ) -> None:
        super().__init__(config, events, quic=quic, now=now)
        self.transport_parameters = transport_parameters
        self.allow_early_data = early_data and quic
        self.early_data_check = early_data_check
        self.state = ServerState.START
        self.server_name = ""
        self._client_handshake_secret = b""
        self._client_application_secret = b""
        self._requested_client_certificate = False
        self._tickets_sent = 0
        self._client_takes_tickets = False
        # With ``split_flight`` the flight stops after the ServerHello: the QUIC layer sends it, and
        # the client works on it, while ``finish_flight`` builds EncryptedExtensions .. Finished.
        self.split_flight = False
        self._flight_rest: tuple[int | None, bytes] | None = None

    def _set_state(self, state: ServerState) -> None:
        self.state = state
        self.expected_level = _LEVEL[state]

    def handle(self, msg_type: int, body: memoryview, raw: bytes, now: float) -> None:
        self.now = now
        handler = _HANDLERS.get((self.state, msg_type))
        if handler is None:
            raise unexpected(f"handshake message {msg_type} in server state {self.state.name}")
        handler(self, body, raw)

    # ---- ClientHello (RFC 8446 §4.1.2) ------------------------------------------------------------------

    def _on_client_hello(self, body: memoryview, raw: bytes) -> None:
        ch = parse_untrusted_client_hello(body)
        retry = self.state is ServerState.WAIT_CLIENT_HELLO_RETRY
        # RFC 8446 §4.2.9: no ticket for a client that lists no mode it could resume with (as Go).
        self._client_takes_tickets = ch.psk_modes is not None and _PSK_DHE_KE in ch.psk_modes
        if ch.supported_versions is None or TLS13 not in ch.supported_versions:
            # RFC 8446 §4.2.1: without TLS 1.3 in supported_versions there is no version in common.
            raise tls_error(AlertDescription.PROTOCOL_VERSION, "client does not offer TLS 1.3")
        if ch.legacy_compression_methods != b"\x00":
            # RFC 8446 §4.1.2: anything but the single null compression method is illegal_parameter.
            raise tls_error(AlertDescription.ILLEGAL_PARAMETER, "compression methods other than null")
        if self.quic and ch.legacy_session_id:
            # RFC 9001 §8.4: a non-empty legacy_session_id SHOULD be a PROTOCOL_VIOLATION.
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION, "ClientHello with a legacy_session_id"
            )
        if self.quic and ch.transport_parameters is None:
            # RFC 9001 §8.2: the quic_transport_parameters extension is mandatory.
            raise tls_error(AlertDescription.MISSING_EXTENSION, "no quic_transport_parameters")
        alpn = self._select_alpn(ch)
        if retry:
            assert self.suite is not None
            suite = self.suite
            if suite not in ch.cipher_suites:
                raise tls_error(AlertDescription.ILLEGAL_PARAMETER, "second ClientHello dropped the suite")
            if ch.early_data:
                # RFC 8446 §4.2.10: early_data after a HelloRetryRequest is illegal_parameter.
                raise tls_error(AlertDescription.ILLEGAL_PARAMETER, "early_data after HelloRetryRequest")
            if ch.key_shares is None or len(ch.key_shares) != 1 or ch.key_shares[0][0] != self.group:
                # RFC 8446 §4.2.8: the second ClientHello holds exactly the share the HRR asked for.
                raise tls_error(
                    AlertDescription.ILLEGAL_PARAMETER, "second ClientHello has the wrong key share"
                )
        psk = self._find_psk(ch, self.suite if retry else None)
        if not retry:
            suite = self._select_suite(ch, psk[0] if psk else None)
        group, client_share = self._select_group(ch)
        if client_share is None:
            if retry:
                raise tls_error(
                    AlertDescription.ILLEGAL_PARAMETER, "no usable key share after HelloRetryRequest"
                )
            self._send_hello_retry_request(ch, raw, suite, group)
            return
        hash_name = hash_for_suite(suite)[1]
        transcript = self.transcript if retry else None
        if transcript is None:
            transcript = self.transcript = Transcript(hash_name)
        ticket_state: ServerTicketState | None = None
        schedule: KeySchedule | None = None
        if psk is not None:
            ticket_state, index, _ = psk
            schedule = KeySchedule(suite, ticket_state.psk)
            binder_transcript = transcript.copy()
            binder_transcript.update(memoryview(raw)[: len(raw) - ch.binders_length()])
            expected = schedule.verify_data(schedule.binder_key(), binder_transcript.digest())
            if not hmac.compare_digest(expected, ch.psk_binders[index]):
                # RFC 8446 §4.2.11: "If this value does not validate, the server MUST abort the handshake"
                # (with decrypt_error, §6.2).
                raise tls_error(AlertDescription.DECRYPT_ERROR, "PSK binder does not verify")
        transcript.update(raw)
        self.client_random = ch.random
        self.server_name = ch.server_name or ""
        self.suite, self.group, self.alpn = suite, group, alpn
        if self.quic:
            assert ch.transport_parameters is not None
            self.events.append(PeerTransportParameters(ch.transport_parameters))
        scheme: int | None = None
        if ticket_state is None:
            if ch.signature_algorithms is None:
                # RFC 8446 §9.2: a certificate-authenticated handshake needs signature_algorithms.
                raise tls_error(AlertDescription.MISSING_EXTENSION, "no signature_algorithms")
            assert self.config.private_key is not None
            scheme = choose_scheme(self.config.private_key, ch.signature_algorithms)
        else:
            self.session_resumed = True
            self.early_data_accepted = self._accept_early_data(ch, psk, suite, alpn)
        selected = psk[1] if psk is not None else None
        self._send_server_flight(ch, transcript, client_share, schedule, selected, scheme)

    def _select_alpn(self, ch: ClientHello) -> str | None:
        if ch.alpn is None:
            if self.quic:
                # RFC 9001 §8.1: ALPN is mandatory in QUIC.
                raise tls_error(AlertDescription.NO_APPLICATION_PROTOCOL, "client offered no ALPN protocol")
            return None
        for name in self.config.alpn_wire:
            if name in ch.alpn:
                return name.decode()
        # RFC 7301 §3.2: no overlap is the no_application_protocol alert.
        raise tls_error(AlertDescription.NO_APPLICATION_PROTOCOL, "no ALPN protocol in common")

    def _select_suite(self, ch: ClientHello, ticket: ServerTicketState | None) -> CipherSuite:
        if ticket is not None:
            return ticket.suite
        for suite in self.config.cipher_suites:
            if suite in ch.cipher_suites:
                return suite
        raise tls_error(AlertDescription.HANDSHAKE_FAILURE, "no cipher suite in common")

    def _select_group(self, ch: ClientHello) -> tuple[int, bytes | None]:
        """The group and client share to use; share None means a HelloRetryRequest for the group."""
        if ch.supported_groups is None or ch.key_shares is None:
            # RFC 8446 §9.2: without a PSK-only mode both extensions are mandatory.
            raise tls_error(AlertDescription.MISSING_EXTENSION, "no supported_groups or key_share")
        shares = dict(ch.key_shares)
        for offered in shares:
            if offered not in ch.supported_groups:
                # RFC 8446 §4.2.8: each KeyShareEntry "MUST correspond to a group offered in
                # supported_groups".
                raise tls_error(AlertDescription.ILLEGAL_PARAMETER, "key share for an unoffered group")
        for group in self.config.groups:
            if group in shares:
                return group, shares[group]
        for group in self.config.groups:
            if group in ch.supported_groups:
                return group, None
        raise tls_error(AlertDescription.HANDSHAKE_FAILURE, "no key exchange group in common")

    def _find_psk(
        self, ch: ClientHello, fixed_suite: CipherSuite | None
    ) -> tuple[ServerTicketState, int, int] | None:
        """The first offered ticket we can resume: (state, identity index, obfuscated age)."""
        if ch.psk_identities is None:
            return None
        if ch.psk_modes is None:
            # RFC 8446 §4.2.9: a client offering pre_shared_key MUST send psk_key_exchange_modes.
            raise tls_error(
                AlertDescription.MISSING_EXTENSION, "pre_shared_key without psk_key_exchange_modes"
            )
        if _PSK_DHE_KE not in ch.psk_modes or not self._resumption_allowed():
            return None
        protector = self.config.ticket_protector
        # Each identity costs an AEAD open: only the first few are tried, so a ClientHello stuffed with
        # identities cannot buy much server CPU.
        for index, (identity, obfuscated_age) in enumerate(ch.psk_identities[:_MAX_PSK_IDENTITIES_TRIED]):
            state = protector.open(identity)
            if state is None or not 0 <= self.now - state.created_at < state.lifetime:
                continue
            if fixed_suite is not None:
                # RFC 8446 §4.2.11: the PSK's hash must be the negotiated suite's.
                if hash_for_suite(state.suite)[1] != hash_for_suite(fixed_suite)[1]:
                    continue
            elif state.suite not in ch.cipher_suites or state.suite not in self.config.cipher_suites:
                continue
            return state, index, obfuscated_age
        return None

    def _resumption_allowed(self) -> bool:
        """Tickets are off when asked, and with client authentication: a ticket does not carry the
        client's certificate, so a resumed session could not show who the client is."""
        return self.config.session_tickets and self.config.client_auth == "none"

    def _accept_early_data(
        self, ch: ClientHello, psk: tuple[ServerTicketState, int, int] | None, suite: int, alpn: str | None
    ) -> bool:
        """RFC 8446 §4.2.10 and RFC 9001 §4.6: whether to accept the client's 0-RTT data."""
        if not ch.early_data or psk is None or not self.allow_early_data:
            return False
        state, index, obfuscated_age = psk
        if index != 0 or state.max_early_data != QUIC_MAX_EARLY_DATA:
            return False  # RFC 8446 §4.2.10: early data goes with the first identity only
        if state.suite != suite or state.alpn != (alpn or "") or state.server_name != (ch.server_name or ""):
            return False
        client_age = ((obfuscated_age - state.age_add) & 0xFFFFFFFF) / 1000
        if abs(client_age - (self.now - state.created_at)) > EARLY_DATA_WINDOW:
            return False  # RFC 8446 §8.3: a ticket age far from ours suggests a replay
        check = self.early_data_check
        if check is not None and not check(state.app_data):
            return False
        # RFC 8446 §8: "servers SHOULD" defend against 0-RTT replay; each ClientHello is accepted once.
        return self.config.early_data_replay_filter.first_use(ch.psk_binders[index], self.now)

    # ---- HelloRetryRequest (RFC 8446 §4.1.4) -------------------------------------------------------------

    def _send_hello_retry_request(self, ch: ClientHello, raw: bytes, suite: CipherSuite, group: int) -> None:
        hrr = ServerHello(
            random=HRR_RANDOM,
            legacy_session_id=ch.legacy_session_id,
            cipher_suite=suite,
            supported_version=TLS13,
            selected_group=group,
        ).encode()
        transcript = self.transcript = Transcript(hash_for_suite(suite)[1])
        transcript.update(raw)
        transcript.restart_for_retry()
        transcript.update(hrr)
        self.suite, self.group = suite, group
        self.write(_L.INITIAL, hrr)
        self._set_state(ServerState.WAIT_CLIENT_HELLO_RETRY)

    # ---- ServerHello .. Finished -------------------------------------------------------------------------

    def _send_server_flight(
        self,
        ch: ClientHello,
        transcript: Transcript,
        client_share: bytes,
        psk_schedule: KeySchedule | None,
        selected_identity: int | None,
        scheme: int | None,
    ) -> None:
        """ServerHello, then EncryptedExtensions .. Finished (``finish_flight``: at once, or when the
        QUIC layer asks after sending the ServerHello with ``split_flight``). ``psk_schedule`` is the
        key schedule whose Early Secret came from the resumed ticket (None for a full handshake)."""
        suite, group = self.suite, self.group
        assert suite is not None and group is not None
        server_share, shared_secret = server_key_exchange(group, client_share, self.now)
        ks = self.key_schedule = psk_schedule if psk_schedule is not None else KeySchedule(suite)
        early_secret = (
            ks.derive_secret(b"c e traffic", transcript.digest()) if self.early_data_accepted else b""
        )
        sh = ServerHello(
            random=os.urandom(32),
            legacy_session_id=ch.legacy_session_id,
            cipher_suite=suite,
            supported_version=TLS13,
            key_share=(group, server_share),
            selected_identity=selected_identity,
        ).encode()
        transcript.update(sh)
        ks.enter_handshake(shared_secret)
        th = transcript.digest()
        self._client_handshake_secret = ks.derive_secret(b"c hs traffic", th)
        server_handshake_secret = ks.derive_secret(b"s hs traffic", th)
        self.write(_L.INITIAL, sh)
        if self.early_data_accepted:
            self.install(_L.ZERO_RTT, False, suite, early_secret)
        self.install(_L.HANDSHAKE, False, suite, self._client_handshake_secret)
        self.install(_L.HANDSHAKE, True, suite, server_handshake_secret)
        self._flight_rest = (scheme, server_handshake_secret)
        if not self.split_flight:
            self.finish_flight()

    @property
    def flight_pending(self) -> bool:
        """Whether the ServerHello is out and the rest of the flight is still to be built."""
        return self._flight_rest is not None

    def finish_flight(self) -> None:
        """EncryptedExtensions .. Finished after the ServerHello (RFC 8446 §4.3, §4.4), and the 1-RTT
        write key (RFC 9001 §4.1.4: 0.5-RTT data may follow the Finished)."""
        rest = self._flight_rest
        if rest is None:
            return
        self._flight_rest = None
        scheme, server_handshake_secret = rest
        suite, config, ks, transcript = self.suite, self.config, self.key_schedule, self.transcript
        assert suite is not None and ks is not None and transcript is not None
        flight = bytearray()
        ee = EncryptedExtensions(
            alpn=self.alpn.encode() if self.alpn is not None else None,
            transport_parameters=self.transport_parameters if self.quic else None,
            early_data=self.early_data_accepted,
        ).encode()
        transcript.update(ee)
        flight += ee
        if scheme is not None:
            if config.client_auth != "none":
                request = CertificateRequest(b"", CERTIFICATE_VERIFY_SCHEMES).encode()
                transcript.update(request)
                flight += request
                self._requested_client_certificate = True
            certificate = config.certificate_message()
            transcript.update(certificate)
            flight += certificate
            assert config.private_key is not None
            signature = sign_certificate_verify(
                config.private_key, scheme, transcript.digest(), is_server=True
            )
            verify = CertificateVerify(scheme, signature).encode()
            transcript.update(verify)
            flight += verify
        finished = Finished(ks.verify_data(server_handshake_secret, transcript.digest())).encode()
        transcript.update(finished)
        flight += finished
        self._client_application_secret, server_application_secret = self.derive_application_secrets()
        self.write(_L.HANDSHAKE, bytes(flight))
        # RFC 9001 §4.1.4: the server may send 1-RTT (0.5-RTT) data right after its Finished.
        self.install(_L.ONE_RTT, True, suite, server_application_secret)
        self._set_state(
            ServerState.WAIT_CERTIFICATE if self._requested_client_certificate else ServerState.WAIT_FINISHED
        )

    # ---- client authentication (RFC 8446 §4.4.2.4, §4.4.3) ------------------------------------------------

    def _on_certificate(self, body: memoryview, raw: bytes) -> None:
        message = parse_untrusted_certificate(body)
        assert self.transcript is not None
        if message.request_context:
            raise tls_error(AlertDescription.ILLEGAL_PARAMETER, "client Certificate with a request context")
        self.transcript.update(raw)
        if not message.certificates:
            if self.config.client_auth == "required":
                # RFC 8446 §4.4.2.4 / RFC 8446 §6.2: no certificate when one is required.
                raise tls_error(AlertDescription.CERTIFICATE_REQUIRED, "client sent no certificate")
            self._set_state(ServerState.WAIT_FINISHED)
            return
        verifier = self.config.verifier()
        chain = verifier.parse_chain(message.certificates)
        if self.config.verify:
            verifier.verify_client(chain, message.certificates)
        self.peer_certificates = tuple(chain)
        self._set_state(ServerState.WAIT_CERTIFICATE_VERIFY)

    def _on_certificate_verify(self, body: memoryview, raw: bytes) -> None:
        self.check_peer_certificate_verify(body, raw)
        self._set_state(ServerState.WAIT_FINISHED)

    def _on_finished(self, body: memoryview, raw: bytes) -> None:
        ks, transcript, suite = self.key_schedule, self.transcript, self.suite
        assert ks is not None and transcript is not None and suite is not None
        finished = parse_untrusted_finished(body, ks.hash_length)
        if not ks.check_verify_data(self._client_handshake_secret, transcript.digest(), finished.verify_data):
            # RFC 8446 §4.4.4: a Finished that does not verify MUST abort with decrypt_error.
            raise tls_error(AlertDescription.DECRYPT_ERROR, "client Finished does not verify")
        transcript.update(raw)
        self.resumption_master_secret = ks.derive_secret(b"res master", transcript.digest())
        # RFC 9001 §5.7: 1-RTT packets from the client are processed only once the handshake is complete.
        self.install(_L.ONE_RTT, False, suite, self._client_application_secret)
        self.complete = True
        self._set_state(ServerState.CONNECTED)
        # Consulted for a ClientHello only. It is usually a bound method of the connection that owns
        # this engine: dropping it lets reference counting free that connection, not the collector.
        self.early_data_check = None
        self.events.append(
            HandshakeComplete(
                alpn=self.alpn or "",
                suite=suite,
                group=self.group,
                session_resumed=self.session_resumed,
                early_data_accepted=self.early_data_accepted,
                peer_certificates=self.peer_certificates,
                server_name=self.server_name or None,
            )
        )

    def pending_read_secret(self) -> tuple[CipherSuite, bytes] | None:
        """The client's application traffic secret between our flight and the client's Finished: the
        1-RTT read secret ``install`` reports once the Finished verifies (RFC 9001 §5.7), known earlier
        so that the QUIC layer can derive its keys while it waits. None before and after."""
        if self.complete or not self._client_application_secret or self.suite is None:
            return None
        return self.suite, self._client_application_secret

    # ---- NewSessionTicket (RFC 8446 §4.6.1) --------------------------------------------------------------

    def wants_session_ticket(self) -> bool:
        """Whether a NewSessionTicket can be sent now and is of use to this client (one that lists
        psk_dhe_ke in its psk_key_exchange_modes)."""
        return (
            self.complete
            and self._client_takes_tickets
            and self._resumption_allowed()
            and self.key_schedule is not None
            and self.suite is not None
        )

    def send_session_ticket(self, now: float, app_data: bytes) -> bool:
        """Queues a NewSessionTicket at the 1-RTT level; False if tickets are off, not yet possible, or
        of no use to this client (``wants_session_ticket``)."""
        ks, suite = self.key_schedule, self.suite
        if not self.wants_session_ticket() or ks is None or suite is None:
            return False
        nonce = self._tickets_sent.to_bytes(8, "big")
        self._tickets_sent += 1
        age_add = int.from_bytes(os.urandom(4), "big")
        max_early_data = QUIC_MAX_EARLY_DATA if self.allow_early_data else 0
        state = ServerTicketState(
            suite=suite,
            psk=ks.resumption_psk(self.resumption_master_secret, nonce),
            alpn=self.alpn or "",
            server_name=self.server_name,
            created_at=now,
            age_add=age_add,
            lifetime=self.config.ticket_lifetime,
            max_early_data=max_early_data,
            app_data=app_data,
        )
        ticket = NewSessionTicket(
            lifetime=self.config.ticket_lifetime,
            age_add=age_add,
            nonce=nonce,
            ticket=self.config.ticket_protector.seal(state),
            max_early_data=max_early_data or None,
        )
        self.write(_L.ONE_RTT, ticket.encode())
        return True


# The state machine's transitions: (state, message type) -> handler. A module table of the class's
# functions rather than a per-instance dict of bound methods, which would tie each handshake to itself
# in a reference cycle (freed only by the garbage collector, once per connection).
_HANDLERS: Final[dict[tuple[ServerState, int], Callable[[ServerHandshake, memoryview, bytes], None]]] = {
    (ServerState.START, _H.CLIENT_HELLO): ServerHandshake._on_client_hello,
    (ServerState.WAIT_CLIENT_HELLO_RETRY, _H.CLIENT_HELLO): ServerHandshake._on_client_hello,
    (ServerState.WAIT_CERTIFICATE, _H.CERTIFICATE): ServerHandshake._on_certificate,
    (ServerState.WAIT_CERTIFICATE_VERIFY, _H.CERTIFICATE_VERIFY): ServerHandshake._on_certificate_verify,
    (ServerState.WAIT_FINISHED, _H.FINISHED): ServerHandshake._on_finished,
}
