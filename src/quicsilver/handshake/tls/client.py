"""The TLS 1.3 client handshake for QUIC (RFC 8446 §2, §4; RFC 9001 §4, §8).

States follow RFC 8446 Appendix A.1::

    START -> WAIT_SH -> WAIT_EE -> WAIT_CERT_CR -> WAIT_CERT -> WAIT_CV -> WAIT_FINISHED -> CONNECTED
                  ^-- HelloRetryRequest (once)   \\-- resumed (PSK): WAIT_EE -> WAIT_FINISHED

A message that does not fit the current state is unexpected_message. The client offers key shares
for the hybrid X25519MLKEM768 and X25519 (like Go), resumes with psk_dhe_ke only, and offers 0-RTT
when asked and the ticket allows it (RFC 9001 §4.6.1).
"""

from __future__ import annotations

import ipaddress
import os
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from enum import IntEnum, auto
from typing import Final

from ...errors import TransportError, TransportErrorCode
from ...protocol import EncryptionLevel
from ..protection import CipherSuite
from .alerts import AlertDescription, tls_error
from .base import HandshakeBase, unexpected
from .certs import parse_der_certificate
from .config import TLSConfig
from .events import (
    EarlyDataRejected,
    HandshakeComplete,
    PeerTransportParameters,
    SessionTicketReceived,
    TLSEvent,
)
from .groups import ClientKeyShare, NamedGroup
from .key_schedule import KeySchedule, Transcript, hash_for_suite
from .messages import (
    TLS13,
    Certificate,
    CertificateVerify,
    ClientHello,
    Finished,
    HandshakeType,
    ServerHello,
    parse_untrusted_certificate,
    parse_untrusted_certificate_request,
    parse_untrusted_encrypted_extensions,
    parse_untrusted_finished,
    parse_untrusted_new_session_ticket,
    parse_untrusted_server_hello,
)
from .signatures import (
    OFFERED_SCHEMES,
    schemes_for_key,
    sign_certificate_verify,
)
from .tickets import MAX_TICKET_LIFETIME, QUIC_MAX_EARLY_DATA, SessionTicket

__all__ = ["ClientHandshake", "ClientState"]

_PSK_DHE_KE: Final = 1  # RFC 8446 §4.2.9
_H: Final = HandshakeType
_L: Final = EncryptionLevel


class ClientState(IntEnum):  # IntEnum: hashed in C (the state machine's tables are keyed by state)
    START = auto()
    WAIT_SERVER_HELLO = auto()
    WAIT_ENCRYPTED_EXTENSIONS = auto()
    WAIT_CERTIFICATE_OR_REQUEST = auto()
    WAIT_CERTIFICATE = auto()
    WAIT_CERTIFICATE_VERIFY = auto()
    WAIT_FINISHED = auto()
    CONNECTED = auto()


_LEVEL: Final[dict[ClientState, EncryptionLevel | None]] = {
    ClientState.START: None,
    ClientState.WAIT_SERVER_HELLO: _L.INITIAL,
    ClientState.WAIT_ENCRYPTED_EXTENSIONS: _L.HANDSHAKE,
    ClientState.WAIT_CERTIFICATE_OR_REQUEST: _L.HANDSHAKE,
    ClientState.WAIT_CERTIFICATE: _L.HANDSHAKE,
    ClientState.WAIT_CERTIFICATE_VERIFY: _L.HANDSHAKE,
    ClientState.WAIT_FINISHED: _L.HANDSHAKE,
    ClientState.CONNECTED: _L.ONE_RTT,
}


_IP_LITERALS: Final[dict[str, bool]] = {}


def _is_ip(host: str) -> bool:
    if ":" not in host and not host.replace(".", "").isdigit():
        return False  # a name: IPv4 literals are digits and dots, IPv6 ones have colons
    known = _IP_LITERALS.get(host)
    if known is not None:
        return known
    try:
        ipaddress.ip_address(host.strip("[]"))
        result = True
    except ValueError:
        result = False
    if len(_IP_LITERALS) < 64:  # the few addresses a client dials again and again; bounded
        _IP_LITERALS[host] = result
    return result


class ClientHandshake(HandshakeBase):
    is_client = True

    def __init__(
        self,
        config: TLSConfig,
        events: deque[TLSEvent],
        *,
        transport_parameters: bytes,
        server_name: str | None,
        session_ticket: SessionTicket | None,
        early_data: bool,
        quic: bool,
        now: float,
    ) -> None:
        super().__init__(config, events, quic=quic, now=now)
        self.transport_parameters = transport_parameters
        self.server_name = server_name
        self.ticket = session_ticket
        self.want_early_data = early_data
        self.early_data_offered = False
        self.state = ClientState.START
        self.expected_level = None
        self.peer_transport_parameters = b""
        self._shares: dict[int, ClientKeyShare] = {}
        self._hello: ClientHello | None = None
        self._hello_bytes = b""
        self._retried = False
        self._retry_suite: int | None = None
        self._early_schedule: KeySchedule | None = None
        self._server_handshake_secret = b""
        self._client_handshake_secret = b""
        self._cert_request_context: bytes | None = None
        self._cert_request_schemes: tuple[int, ...] = ()

    def _set_state(self, state: ClientState) -> None:
        self.state = state
        self.expected_level = _LEVEL[state]

    def handle(self, msg_type: int, body: memoryview, raw: bytes, now: float) -> None:
        self.now = now
        handler = _HANDLERS.get((self.state, msg_type))
        if handler is None:
            raise unexpected(f"handshake message {msg_type} in client state {self.state.name}")
        handler(self, body, raw)

    # ---- ClientHello ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self.state is not ClientState.START:
            return
        config = self.config
        self.client_random = os.urandom(32)
        groups = config.groups
        if NamedGroup.X25519MLKEM768 in groups:
            share_groups: list[NamedGroup] = [
                g for g in (NamedGroup.X25519MLKEM768, NamedGroup.X25519) if g in groups
            ]
        else:
            share_groups = [groups[0]]
        for group in share_groups:
            # With both shares, the X25519 one reuses the hybrid's X25519 key (as Go does): one
            # key generation fewer per connection.
            hybrid = self._shares.get(NamedGroup.X25519MLKEM768) if group == NamedGroup.X25519 else None
            self._shares[group] = ClientKeyShare(group, share_x25519_of=hybrid, now=self.now)
        ticket = self.ticket
        if ticket is not None and (
            ticket.is_expired(self.now)
            or ticket.suite not in config.cipher_suites
            or (self.server_name is not None and ticket.server_name not in (None, self.server_name))
        ):
            ticket = self.ticket = None
        sni = self.server_name if self.server_name and not _is_ip(self.server_name) else None
        hello = ClientHello(
            random=self.client_random,
            cipher_suites=config.cipher_suites,
            supported_versions=(TLS13,),
            server_name=sni,
            supported_groups=groups,
            key_shares=tuple((g, s.public) for g, s in self._shares.items()),
            signature_algorithms=OFFERED_SCHEMES,
            alpn=config.alpn_wire,
            transport_parameters=self.transport_parameters if self.quic else None,
            # RFC 8446 §4.2.9: servers issue tickets only for the modes a client lists. A client with
            # nowhere to keep a ticket lists none, so the server spends no ticket on it (as Go's
            # client without a ClientSessionCache); one that resumes must list the mode.
            psk_modes=(_PSK_DHE_KE,)
            if ticket is not None or config.session_ticket_store is not None
            else None,
        )
        if ticket is not None:
            # RFC 9001 §4.6.1: 0-RTT only with a ticket whose max_early_data_size is 0xffffffff; RFC 8446
            # §4.2.10: the early data must use the ticket's ALPN.
            self.early_data_offered = (
                self.want_early_data
                and self.quic
                and ticket.max_early_data == QUIC_MAX_EARLY_DATA
                and ticket.alpn in config.alpn
            )
            hello = replace(hello, early_data=self.early_data_offered)
        self._send_hello(hello, None)
        ks = self._early_schedule
        if self.early_data_offered and ticket is not None and ks is not None:
            # RFC 8446 §7.1: client_early_traffic_secret = Derive-Secret(Early Secret, "c e traffic", CH).
            transcript = Transcript(ks.hash_name)
            transcript.update(self._hello_bytes)
            self.install(
                _L.ZERO_RTT, True, ticket.suite, ks.derive_secret(b"c e traffic", transcript.digest())
            )
        self._set_state(ClientState.WAIT_SERVER_HELLO)

    def _send_hello(self, hello: ClientHello, transcript: Transcript | None) -> None:
        """Encodes the ClientHello, computing the PSK binder over it (RFC 8446 §4.2.11.2)."""
        ticket = self.ticket
        if ticket is not None:
            ks = KeySchedule(ticket.suite, ticket.resumption_secret)
            hello = replace(
                hello,
                psk_identities=((ticket.ticket, ticket.obfuscated_age(self.now)),),
                psk_binders=(bytes(ks.hash_length),),
            )
            encoded = hello.encode()
            binder_transcript = transcript.copy() if transcript is not None else Transcript(ks.hash_name)
            binder_transcript.update(encoded[: -hello.binders_length()])
            binder = ks.verify_data(ks.binder_key(), binder_transcript.digest())
            hello = replace(hello, psk_binders=(binder,))
            encoded = encoded[: -len(binder)] + binder
            self._early_schedule = ks
        else:
            encoded = hello.encode()
        self._hello = hello
        self._hello_bytes = encoded
        if transcript is not None:
            transcript.update(encoded)
        self.write(_L.INITIAL, encoded)

    # ---- ServerHello / HelloRetryRequest (RFC 8446 §4.1.3, §4.1.4) ------------------------------------

    def _on_server_hello(self, body: memoryview, raw: bytes) -> None:
        sh = parse_untrusted_server_hello(body)
        hello = self._hello
        assert hello is not None
        if sh.supported_version != TLS13:
            # RFC 8446 §4.2.1: a TLS 1.3 ServerHello carries supported_versions = 0x0304; we speak no other.
            raise tls_error(AlertDescription.PROTOCOL_VERSION, "server did not select TLS 1.3")
        if sh.legacy_session_id != hello.legacy_session_id or sh.legacy_compression_method != 0:
            # RFC 8446 §4.1.3: a mismatched legacy_session_id_echo MUST abort with illegal_parameter.
            raise tls_error(AlertDescription.ILLEGAL_PARAMETER, "bad legacy_session_id_echo or compression")
        if sh.cipher_suite not in hello.cipher_suites:
            raise tls_error(
                AlertDescription.ILLEGAL_PARAMETER, "server chose a cipher suite we did not offer"
            )
        if sh.is_retry_request:
            self._on_hello_retry_request(sh, raw)
            return
        suite = CipherSuite(sh.cipher_suite)
        if self._retry_suite is not None and suite != self._retry_suite:
            # RFC 8446 §4.1.4: the ServerHello cipher suite must be the HelloRetryRequest's.
            raise tls_error(
                AlertDescription.ILLEGAL_PARAMETER, "cipher suite changed after HelloRetryRequest"
            )
        if sh.key_share is None:
            raise tls_error(AlertDescription.MISSING_EXTENSION, "ServerHello without key_share")
        group, server_share = sh.key_share
        share = self._shares.get(group)
        if share is None:
            # RFC 8446 §4.2.8: the server's share must be in a group we sent a share for.
            raise tls_error(
                AlertDescription.ILLEGAL_PARAMETER, "server key share for a group we did not send"
            )
        psk: bytes | None = None
        if sh.selected_identity is not None:
            ticket = self.ticket
            # RFC 8446 §4.2.11: the selected identity must be one we offered, with the suite's hash.
            if ticket is None or sh.selected_identity != 0:
                raise tls_error(AlertDescription.ILLEGAL_PARAMETER, "server selected a PSK we did not offer")
            if hash_for_suite(ticket.suite)[1] != hash_for_suite(suite)[1]:
                raise tls_error(
                    AlertDescription.ILLEGAL_PARAMETER, "PSK hash does not match the cipher suite"
                )
            psk = ticket.resumption_secret
            self.session_resumed = True
        self.suite = suite
        self.group = group
        early = self._early_schedule
        if psk is not None and early is not None and early.hash_name == hash_for_suite(suite)[1]:
            early.suite = suite  # the Early Secret of the binder is this handshake's Early Secret
            ks = self.key_schedule = early
        else:
            ks = self.key_schedule = KeySchedule(suite, psk)
        if self.transcript is None:
            self.transcript = Transcript(ks.hash_name)
            self.transcript.update(self._hello_bytes)
        self.transcript.update(raw)
        ks.enter_handshake(share.exchange(server_share))
        th = self.transcript.digest()
        self._client_handshake_secret = ks.derive_secret(b"c hs traffic", th)
        self._server_handshake_secret = ks.derive_secret(b"s hs traffic", th)
        self._shares.clear()
        self.install(_L.HANDSHAKE, False, suite, self._server_handshake_secret)
        self.install(_L.HANDSHAKE, True, suite, self._client_handshake_secret)
        self._set_state(ClientState.WAIT_ENCRYPTED_EXTENSIONS)

    def _on_hello_retry_request(self, hrr: ServerHello, raw: bytes) -> None:
        hello = self._hello
        assert hello is not None
        if self._retried:
            # RFC 8446 §4.1.4: a second HelloRetryRequest is unexpected_message.
            raise unexpected("second HelloRetryRequest")
        self._retried = True
        group = hrr.selected_group
        if hrr.cookie is None and group is None:
            # RFC 8446 §4.1.4: an HRR that would not change the ClientHello is illegal_parameter.
            raise tls_error(AlertDescription.ILLEGAL_PARAMETER, "HelloRetryRequest changes nothing")
        if group is not None and (group not in self.config.groups or group in self._shares):
            # RFC 8446 §4.2.8: the selected group must be supported and not already have a share.
            raise tls_error(AlertDescription.ILLEGAL_PARAMETER, "HelloRetryRequest selected a bad group")
        self._retry_suite = hrr.cipher_suite
        transcript = self.transcript = Transcript(hash_for_suite(hrr.cipher_suite)[1])
        transcript.update(self._hello_bytes)
        transcript.restart_for_retry()
        transcript.update(raw)
        if group is not None:
            self._shares = {group: ClientKeyShare(group, now=self.now)}
        if self.early_data_offered:
            # RFC 8446 §4.2.10: after HelloRetryRequest the client MUST NOT offer early data.
            self.early_data_offered = False
            self.events.append(EarlyDataRejected())
        if self.ticket is not None and hash_for_suite(self.ticket.suite)[1] != transcript.hash_name:
            self.ticket = None  # the PSK cannot be used with this suite's hash (RFC 8446 §4.1.4)
        new_hello = replace(
            hello,
            key_shares=tuple((g, s.public) for g, s in self._shares.items()),
            cookie=hrr.cookie,
            early_data=False,
            psk_identities=None,
            psk_binders=(),
        )
        self._send_hello(new_hello, transcript)

    # ---- EncryptedExtensions (RFC 8446 §4.3.1, RFC 9001 §8) ----------------------------------------------

    def _on_encrypted_extensions(self, body: memoryview, raw: bytes) -> None:
        ee = parse_untrusted_encrypted_extensions(body)
        assert self.transcript is not None and self.suite is not None
        self.transcript.update(raw)
        if ee.alpn is None:
            if self.quic:
                # RFC 9001 §8.1: "endpoints MUST use ALPN"; no protocol agreed is no_application_protocol.
                raise tls_error(AlertDescription.NO_APPLICATION_PROTOCOL, "server selected no ALPN protocol")
        elif ee.alpn not in self.config.alpn_wire:
            raise tls_error(
                AlertDescription.ILLEGAL_PARAMETER, "server selected an ALPN protocol we did not offer"
            )
        else:
            self.alpn = ee.alpn.decode()
        if self.quic:
            if ee.transport_parameters is None:
                # RFC 9001 §8.2: a missing quic_transport_parameters extension is missing_extension.
                raise tls_error(AlertDescription.MISSING_EXTENSION, "no quic_transport_parameters")
            self.peer_transport_parameters = ee.transport_parameters
            self.events.append(PeerTransportParameters(ee.transport_parameters))
        elif ee.transport_parameters is not None:
            raise tls_error(AlertDescription.UNSUPPORTED_EXTENSION, "quic_transport_parameters outside QUIC")
        if ee.early_data:
            ticket = self.ticket
            if not self.early_data_offered or ticket is None or not self.session_resumed:
                raise tls_error(AlertDescription.UNSUPPORTED_EXTENSION, "early_data accepted but not offered")
            if ticket.suite != self.suite or ticket.alpn != self.alpn:
                # RFC 8446 §4.2.10: accepted early data requires the ticket's cipher suite and ALPN.
                raise tls_error(AlertDescription.ILLEGAL_PARAMETER, "0-RTT accepted with other suite or ALPN")
            self.early_data_accepted = True
        elif self.early_data_offered:
            self.events.append(EarlyDataRejected())
        self._set_state(
            ClientState.WAIT_FINISHED if self.session_resumed else ClientState.WAIT_CERTIFICATE_OR_REQUEST
        )

    # ---- server authentication (RFC 8446 §4.3.2, §4.4.2, §4.4.3) -----------------------------------------

    def _on_certificate_request(self, body: memoryview, raw: bytes) -> None:
        request = parse_untrusted_certificate_request(body)
        assert self.transcript is not None
        if request.request_context:
            # RFC 8446 §4.3.2: in the main handshake the context "SHALL be zero length".
            raise tls_error(AlertDescription.ILLEGAL_PARAMETER, "non-empty certificate_request_context")
        self.transcript.update(raw)
        self._cert_request_context = request.request_context
        self._cert_request_schemes = request.signature_algorithms
        self._set_state(ClientState.WAIT_CERTIFICATE)

    def _on_certificate(self, body: memoryview, raw: bytes) -> None:
        message = parse_untrusted_certificate(body)
        assert self.transcript is not None
        if message.request_context:
            raise tls_error(AlertDescription.ILLEGAL_PARAMETER, "server Certificate with a request context")
        if not message.certificates:
            # RFC 8446 §4.4.2.4: an empty server Certificate MUST abort with decode_error.
            raise tls_error(AlertDescription.DECODE_ERROR, "server sent no certificate")
        verifier = self.config.verifier() if self.config.verify else None
        if verifier is not None:
            chain = verifier.parse_chain(message.certificates)
            if self.server_name is None:
                raise tls_error(AlertDescription.INTERNAL_ERROR, "no server name to verify the certificate")
            verifier.verify_server(chain, message.certificates, self.server_name)
        else:
            chain = [parse_der_certificate(der) for der in message.certificates]
        self.peer_certificates = tuple(chain)
        self.transcript.update(raw)
        self._set_state(ClientState.WAIT_CERTIFICATE_VERIFY)

    def _on_certificate_verify(self, body: memoryview, raw: bytes) -> None:
        self.check_peer_certificate_verify(body, raw)
        self._set_state(ClientState.WAIT_FINISHED)

    # ---- Finished (RFC 8446 §4.4.4) -------------------------------------------------------------------

    def _on_finished(self, body: memoryview, raw: bytes) -> None:
        ks, transcript, suite = self.key_schedule, self.transcript, self.suite
        assert ks is not None and transcript is not None and suite is not None
        finished = parse_untrusted_finished(body, ks.hash_length)
        if not ks.check_verify_data(self._server_handshake_secret, transcript.digest(), finished.verify_data):
            # RFC 8446 §4.4.4: a Finished that does not verify MUST abort with decrypt_error.
            raise tls_error(AlertDescription.DECRYPT_ERROR, "server Finished does not verify")
        transcript.update(raw)
        client_secret, server_secret = self.derive_application_secrets()
        flight = bytearray()
        if self._cert_request_context is not None:
            flight += self._client_authentication(transcript)
        verify_data = ks.verify_data(self._client_handshake_secret, transcript.digest())
        client_finished = Finished(verify_data).encode()
        transcript.update(client_finished)
        flight += client_finished
        self.resumption_master_secret = ks.derive_secret(b"res master", transcript.digest())
        self.write(_L.HANDSHAKE, bytes(flight))
        self.install(_L.ONE_RTT, True, suite, client_secret)
        self.install(_L.ONE_RTT, False, suite, server_secret)
        self.complete = True
        self._set_state(ClientState.CONNECTED)
        self.events.append(
            HandshakeComplete(
                alpn=self.alpn or "",
                suite=suite,
                group=self.group,
                session_resumed=self.session_resumed,
                early_data_accepted=self.early_data_accepted,
                peer_certificates=self.peer_certificates,
                server_name=self.server_name,
            )
        )

    def _client_authentication(self, transcript: Transcript) -> bytes:
        """Our Certificate (possibly empty) and CertificateVerify for a CertificateRequest (§4.4.2)."""
        config = self.config
        context = self._cert_request_context or b""
        key = config.private_key
        scheme = None
        if key is not None:
            scheme = next((x for x in schemes_for_key(key) if x in self._cert_request_schemes), None)
        if key is None or scheme is None:
            # RFC 8446 §4.4.2: without a suitable certificate the client sends an empty Certificate.
            empty = Certificate(request_context=context, certificates=()).encode()
            transcript.update(empty)
            return empty
        certificate = config.certificate_message(context)
        transcript.update(certificate)
        signature = sign_certificate_verify(key, scheme, transcript.digest(), is_server=False)
        verify = CertificateVerify(scheme, signature).encode()
        transcript.update(verify)
        return certificate + verify

    # ---- NewSessionTicket (RFC 8446 §4.6.1, RFC 9001 §4.6.1) -----------------------------------------------

    def _on_new_session_ticket(self, body: memoryview, raw: bytes) -> None:
        nst = parse_untrusted_new_session_ticket(body)
        ks, suite = self.key_schedule, self.suite
        assert ks is not None and suite is not None
        if nst.lifetime > MAX_TICKET_LIFETIME:
            raise tls_error(AlertDescription.ILLEGAL_PARAMETER, "ticket lifetime above 7 days")
        if self.quic and nst.max_early_data is not None and nst.max_early_data != QUIC_MAX_EARLY_DATA:
            # RFC 9001 §4.6.1: any other max_early_data_size "MUST" be a PROTOCOL_VIOLATION.
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION,
                "NewSessionTicket max_early_data_size is not 0xffffffff",
            )
        if nst.lifetime == 0:
            return  # RFC 8446 §4.6.1: a zero lifetime means the ticket must not be used
        ticket = SessionTicket(
            ticket=nst.ticket,
            resumption_secret=ks.resumption_psk(self.resumption_master_secret, nst.nonce),
            suite=suite,
            alpn=self.alpn or "",
            server_name=self.server_name,
            age_add=nst.age_add,
            lifetime=nst.lifetime,
            max_early_data=nst.max_early_data or 0,
            received_at=self.now,
            transport_parameters=self.peer_transport_parameters,
        )
        store = self.config.session_ticket_store
        if store is not None and self.server_name is not None:
            store.put(self.server_name, ticket)
        self.events.append(SessionTicketReceived(ticket))


# The state machine's transitions: (state, message type) -> handler. A module table of the class's
# functions rather than a per-instance dict of bound methods, which would tie each handshake to itself
# in a reference cycle (freed only by the garbage collector, once per connection).
_HANDLERS: Final[dict[tuple[ClientState, int], Callable[[ClientHandshake, memoryview, bytes], None]]] = {
    (ClientState.WAIT_SERVER_HELLO, _H.SERVER_HELLO): ClientHandshake._on_server_hello,
    (
        ClientState.WAIT_ENCRYPTED_EXTENSIONS,
        _H.ENCRYPTED_EXTENSIONS,
    ): ClientHandshake._on_encrypted_extensions,
    (
        ClientState.WAIT_CERTIFICATE_OR_REQUEST,
        _H.CERTIFICATE_REQUEST,
    ): ClientHandshake._on_certificate_request,
    (ClientState.WAIT_CERTIFICATE_OR_REQUEST, _H.CERTIFICATE): ClientHandshake._on_certificate,
    (ClientState.WAIT_CERTIFICATE, _H.CERTIFICATE): ClientHandshake._on_certificate,
    (ClientState.WAIT_CERTIFICATE_VERIFY, _H.CERTIFICATE_VERIFY): ClientHandshake._on_certificate_verify,
    (ClientState.WAIT_FINISHED, _H.FINISHED): ClientHandshake._on_finished,
    (ClientState.CONNECTED, _H.NEW_SESSION_TICKET): ClientHandshake._on_new_session_ticket,
}
