"""A second, independent referee for QUIC-style TLS: qh3's TLS 1.3 stack (its own implementation, with
X25519MLKEM768). In memory, our client completes handshakes with a qh3 server and a qh3 client with
our server, for X25519MLKEM768 (proving the hybrid share layout and secret order, ML-KEM first) and
X25519; both sides derive the same traffic secrets, and qh3's GREASE values are tolerated."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization

pytest.importorskip("qh3")

from qh3 import tls as qh3_tls

from quicsilver.handshake.tls import (
    HandshakeComplete,
    KeysReady,
    NamedGroup,
    PeerTransportParameters,
    TLSConfig,
    TLSEngine,
    WriteData,
)
from quicsilver.handshake.tls.events import TLSEvent
from quicsilver.protocol import EncryptionLevel as L

from .helpers import CA, of_type

pytestmark = pytest.mark.interop

ALPN = ["hq-interop"]
QH3_GROUPS = {NamedGroup.X25519MLKEM768: qh3_tls.Group.X25519ML768, NamedGroup.X25519: qh3_tls.Group.X25519}


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA.create()


class Qh3Peer:
    """A qh3 TLS context with the buffers and secrets of an in-memory exchange."""

    def __init__(self, context: qh3_tls.Context) -> None:
        self.context = context
        self.secrets: dict[tuple[L, bool], bytes] = {}
        context.handshake_extensions = [(qh3_tls.ExtensionType.QUIC_TRANSPORT_PARAMETERS, b"qh3-tp")]
        context.update_traffic_key_cb = self._on_key

    def _on_key(
        self, direction: qh3_tls.Direction, epoch: qh3_tls.Epoch, suite: object, secret: bytes
    ) -> None:
        self.secrets[L(int(epoch)), direction == qh3_tls.Direction.ENCRYPT] = secret

    def feed(self, data: bytes, level: L) -> list[tuple[L, bytes]]:
        buffers = {epoch: qh3_tls.Buffer(capacity=65536) for epoch in qh3_tls.Epoch}
        self.context.handle_message(data, buffers, int(level))
        return [(L(int(epoch)), buffers[epoch].data) for epoch in qh3_tls.Epoch if buffers[epoch].data]


def exchange(ours: TLSEngine, theirs: Qh3Peer, ours_first: bool) -> list[TLSEvent]:
    events: list[TLSEvent] = []
    pending: list[tuple[L, bytes]] = []
    if ours_first:
        ours.start()
    else:
        pending = theirs.feed(b"", L.INITIAL)
    for _ in range(10):
        for level, data in pending:
            ours.handle_message(data, level)
        pending = []
        while (event := ours.next_event()) is not None:
            events.append(event)
            if isinstance(event, WriteData):
                pending += theirs.feed(event.data, event.level)
        if not pending and ours.handshake_complete:
            break
    return events


def check_secrets(events: list[TLSEvent], theirs: Qh3Peer) -> None:
    ours = {(e.level, e.is_write): e.secret for e in of_type(events, KeysReady)}  # type: ignore[attr-defined]
    assert ours
    for (level, is_write), secret in ours.items():
        assert theirs.secrets[level, not is_write] == secret


@pytest.mark.parametrize("group", [NamedGroup.X25519MLKEM768, NamedGroup.X25519], ids=lambda g: g.name)
def test_our_client_with_qh3_server(ca: CA, group: NamedGroup) -> None:
    cert, key = ca.issue(["localhost"])
    context = qh3_tls.Context(is_client=False, alpn_protocols=ALPN)
    context.certificate = qh3_tls.load_pem_x509_certificates(cert.public_bytes(serialization.Encoding.PEM))[0]
    context.certificate_private_key = qh3_tls.load_pem_private_key(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context._supported_groups = [QH3_GROUPS[group]]
    theirs = Qh3Peer(context)
    ours = TLSEngine(
        TLSConfig(alpn=ALPN, cadata=ca.pem, groups=[group]),
        is_client=True,
        transport_parameters=b"our-tp",
        server_name="localhost",
        now=0.0,
    )
    events = exchange(ours, theirs, ours_first=True)
    (done,) = of_type(events, HandshakeComplete)
    assert isinstance(done, HandshakeComplete) and done.group == group and done.alpn == "hq-interop"
    assert PeerTransportParameters(b"qh3-tp") in events
    check_secrets(events, theirs)


@pytest.mark.parametrize("group", [NamedGroup.X25519MLKEM768, NamedGroup.X25519], ids=lambda g: g.name)
def test_qh3_client_with_our_server(ca: CA, group: NamedGroup) -> None:
    context = qh3_tls.Context(is_client=True, alpn_protocols=ALPN, cadata=ca.pem, server_name="localhost")
    theirs = Qh3Peer(context)
    # qh3 offers (GREASE, X25519MLKEM768, X25519, ...) with shares for the hybrid and X25519.
    server_config = ca.server_config(ALPN, ["localhost"], groups=[group])
    ours = TLSEngine(server_config, is_client=False, transport_parameters=b"our-tp", now=0.0)
    events = exchange(ours, theirs, ours_first=False)
    (done,) = of_type(events, HandshakeComplete)
    assert isinstance(done, HandshakeComplete) and done.group == group
    assert PeerTransportParameters(b"qh3-tp") in events
    check_secrets(events, theirs)


def test_qh3_client_resumes_with_zero_rtt_on_our_server(ca: CA) -> None:
    server_config = ca.server_config(ALPN, ["localhost"])
    tickets: list[qh3_tls.SessionTicket] = []

    def qh3_client() -> Qh3Peer:
        context = qh3_tls.Context(is_client=True, alpn_protocols=ALPN, cadata=ca.pem, server_name="localhost")
        context.new_session_ticket_cb = tickets.append
        return Qh3Peer(context)

    first = qh3_client()
    ours = TLSEngine(server_config, is_client=False, transport_parameters=b"our-tp", now=0.0, early_data=True)
    exchange(ours, first, ours_first=False)
    assert ours.send_session_ticket(0.0, b"remembered")
    ticket_data = ours.next_event()
    assert isinstance(ticket_data, WriteData) and ticket_data.level == L.ONE_RTT
    first.feed(ticket_data.data, L.ONE_RTT)
    assert len(tickets) == 1 and tickets[0].max_early_data_size == 0xFFFFFFFF

    second = qh3_client()
    second.context.session_ticket = tickets[0]
    ours = TLSEngine(server_config, is_client=False, transport_parameters=b"our-tp", now=1.0, early_data=True)
    events = exchange(ours, second, ours_first=False)
    (done,) = of_type(events, HandshakeComplete)
    assert isinstance(done, HandshakeComplete) and done.session_resumed and done.early_data_accepted
    check_secrets(events, second)  # includes the 0-RTT secret qh3 encrypted its early data with
    assert (L.ZERO_RTT, False) in {(e.level, e.is_write) for e in of_type(events, KeysReady)}  # type: ignore[attr-defined]


def test_our_client_resumes_with_zero_rtt_on_qh3_server(ca: CA) -> None:
    from quicsilver.handshake.tls import MemorySessionTicketStore

    cert, key = ca.issue(["localhost"])
    issued: dict[bytes, qh3_tls.SessionTicket] = {}

    def qh3_server() -> Qh3Peer:
        context = qh3_tls.Context(is_client=False, alpn_protocols=ALPN, max_early_data=0xFFFFFFFF)
        context.certificate = qh3_tls.load_pem_x509_certificates(
            cert.public_bytes(serialization.Encoding.PEM)
        )[0]
        context.certificate_private_key = qh3_tls.load_pem_private_key(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context.new_session_ticket_cb = lambda ticket: issued.__setitem__(ticket.ticket, ticket)
        context.get_session_ticket_cb = issued.get
        return Qh3Peer(context)

    store = MemorySessionTicketStore()
    client_config = TLSConfig(alpn=ALPN, cadata=ca.pem, session_ticket_store=store)
    first = TLSEngine(
        client_config, is_client=True, transport_parameters=b"t", server_name="localhost", now=0.0
    )
    exchange(first, qh3_server(), ours_first=True)
    assert len(store) == 1

    theirs = qh3_server()
    second = TLSEngine(
        client_config,
        is_client=True,
        transport_parameters=b"t",
        server_name="localhost",
        now=0.5,
        early_data=True,
    )
    events = exchange(second, theirs, ours_first=True)
    (done,) = of_type(events, HandshakeComplete)
    assert isinstance(done, HandshakeComplete) and done.session_resumed and done.early_data_accepted
    check_secrets(events, theirs)
