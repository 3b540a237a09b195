"""HelloRetryRequest, session tickets, PSK resumption and 0-RTT (RFC 8446 §4.1.4, §4.2.10, §4.2.11,
§4.6.1; RFC 9001 §4.6)."""

from __future__ import annotations

import pytest

from quicsilver.errors import TransportError, TransportErrorCode
from quicsilver.handshake.tls import (
    EarlyDataRejected,
    HandshakeComplete,
    KeysReady,
    MemorySessionTicketStore,
    NamedGroup,
    PeerTransportParameters,
    SessionTicket,
    SessionTicketReceived,
    TLSConfig,
    TLSEngine,
    WriteData,
)
from quicsilver.handshake.tls.messages import HRR_RANDOM, NewSessionTicket
from quicsilver.protocol import EncryptionLevel as L

from .helpers import CA, drive, of_type

ALPN = ["hq-interop"]


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA.create()


@pytest.fixture(scope="module")
def server_config(ca: CA) -> TLSConfig:
    return ca.server_config(ALPN, ["localhost"])


def client(config: TLSConfig, now: float = 0.0, early_data: bool = False, **kw: object) -> TLSEngine:
    return TLSEngine(
        config,
        is_client=True,
        transport_parameters=b"client-tp",
        server_name="localhost",
        now=now,
        early_data=early_data,
        **kw,  # type: ignore[arg-type]
    )


def server(config: TLSConfig, now: float = 0.0, early_data: bool = True, **kw: object) -> TLSEngine:
    return TLSEngine(
        config,
        is_client=False,
        transport_parameters=b"server-tp",
        now=now,
        early_data=early_data,
        **kw,  # type: ignore[arg-type]
    )


def deliver_ticket(c: TLSEngine, s: TLSEngine, now: float, app_data: bytes = b"remembered") -> SessionTicket:
    assert s.send_session_ticket(now, app_data)
    event = s.next_event()
    assert isinstance(event, WriteData) and event.level == L.ONE_RTT
    c.handle_message(event.data, L.ONE_RTT, now)
    received = c.next_event()
    assert isinstance(received, SessionTicketReceived)
    return received.ticket


def first_connection(ca: CA, server_config: TLSConfig, store: MemorySessionTicketStore) -> SessionTicket:
    client_config = TLSConfig(alpn=ALPN, cadata=ca.pem, session_ticket_store=store)
    c, s = client(client_config), server(server_config)
    drive(c, s)
    return deliver_ticket(c, s, now=1.0)


# ---- HelloRetryRequest ---------------------------------------------------------------------------------


def test_hello_retry_request_when_the_server_wants_another_group(ca: CA) -> None:
    server_config = ca.server_config(ALPN, ["localhost"], groups=[NamedGroup.SECP256R1])
    client_config = TLSConfig(alpn=ALPN, cadata=ca.pem)  # shares for X25519MLKEM768 and X25519 only
    c_events, s_events = drive(client(client_config), server(server_config))
    hellos = [e.data for e in of_type(c_events, WriteData) if e.level == L.INITIAL]  # type: ignore[attr-defined]
    server_initial = [e.data for e in of_type(s_events, WriteData) if e.level == L.INITIAL]  # type: ignore[attr-defined]
    assert len(hellos) == 2 and len(server_initial) == 2
    assert server_initial[0][6:38] == HRR_RANDOM  # RFC 8446 §4.1.3: HRR is a ServerHello with this random
    (done,) = of_type(c_events, HandshakeComplete)
    assert isinstance(done, HandshakeComplete) and done.group == NamedGroup.SECP256R1


def test_second_hello_retry_request_is_unexpected_message(ca: CA) -> None:
    server_config = ca.server_config(ALPN, ["localhost"], groups=[NamedGroup.SECP256R1])
    c = client(TLSConfig(alpn=ALPN, cadata=ca.pem))
    s = server(server_config)
    c.start()
    hello = c.next_event()
    assert isinstance(hello, WriteData)
    s.handle_message(hello.data, L.INITIAL)
    hrr = s.next_event()
    assert isinstance(hrr, WriteData)
    c.handle_message(hrr.data, L.INITIAL)
    with pytest.raises(TransportError) as info:
        c.handle_message(hrr.data, L.INITIAL)
    assert info.value.code == 0x10A


def test_client_hello_after_retry_without_the_requested_share_is_illegal_parameter(ca: CA) -> None:
    server_config = ca.server_config(ALPN, ["localhost"], groups=[NamedGroup.SECP256R1])
    c = client(TLSConfig(alpn=ALPN, cadata=ca.pem))
    s = server(server_config)
    c.start()
    hello = c.next_event()
    assert isinstance(hello, WriteData)
    s.handle_message(hello.data, L.INITIAL)
    s.next_event()  # the HelloRetryRequest, ignored: the client repeats its first ClientHello
    with pytest.raises(TransportError) as info:
        s.handle_message(hello.data, L.INITIAL)
    assert info.value.code == 0x12F


# ---- tickets and resumption -------------------------------------------------------------------------------


def test_ticket_carries_what_the_client_must_remember(ca: CA, server_config: TLSConfig) -> None:
    store = MemorySessionTicketStore()
    ticket = first_connection(ca, server_config, store)
    assert ticket.transport_parameters == b"server-tp"  # RFC 9000 §7.4.1
    assert ticket.alpn == "hq-interop" and ticket.server_name == "localhost"
    assert ticket.max_early_data == 0xFFFFFFFF  # RFC 9001 §4.6.1
    assert ticket.lifetime == 604800 and ticket.received_at == 1.0
    assert len(store) == 1


def test_resumption_skips_certificates_and_uses_the_ticket(ca: CA, server_config: TLSConfig) -> None:
    store = MemorySessionTicketStore()
    first_connection(ca, server_config, store)
    client_config = TLSConfig(alpn=ALPN, cadata=ca.pem, session_ticket_store=store)
    c, s = client(client_config, now=5.0), server(server_config, now=5.0)
    c_events, s_events = drive(c, s, now=5.0)
    (c_done,) = of_type(c_events, HandshakeComplete)
    (s_done,) = of_type(s_events, HandshakeComplete)
    assert isinstance(c_done, HandshakeComplete) and isinstance(s_done, HandshakeComplete)
    assert c_done.session_resumed and s_done.session_resumed
    assert c_done.peer_certificates == ()
    assert not c_done.early_data_accepted  # 0-RTT was not asked for
    assert len(store) == 0  # tickets are single-use (RFC 8446 §C.4)


def test_resumption_after_hello_retry_request(ca: CA) -> None:
    server_config = ca.server_config(ALPN, ["localhost"], groups=[NamedGroup.SECP256R1])
    store = MemorySessionTicketStore()
    first_connection(ca, server_config, store)
    c = client(TLSConfig(alpn=ALPN, cadata=ca.pem, session_ticket_store=store), now=2.0, early_data=True)
    c_events, s_events = drive(c, server(server_config, now=2.0), now=2.0)
    (done,) = of_type(s_events, HandshakeComplete)
    assert isinstance(done, HandshakeComplete) and done.session_resumed and not done.early_data_accepted
    # RFC 8446 §4.2.10: no early data after HelloRetryRequest; the client learns its 0-RTT was lost.
    assert of_type(c_events, EarlyDataRejected)


def test_ticket_of_another_server_key_gives_a_full_handshake(ca: CA, server_config: TLSConfig) -> None:
    store = MemorySessionTicketStore()
    first_connection(ca, server_config, store)
    other_server = ca.server_config(ALPN, ["localhost"])  # another random ticket key
    c = client(TLSConfig(alpn=ALPN, cadata=ca.pem, session_ticket_store=store), now=2.0)
    c_events, _ = drive(c, server(other_server, now=2.0), now=2.0)
    (done,) = of_type(c_events, HandshakeComplete)
    assert isinstance(done, HandshakeComplete) and not done.session_resumed and done.peer_certificates


def test_expired_ticket_is_not_offered(ca: CA, server_config: TLSConfig) -> None:
    store = MemorySessionTicketStore()
    ticket = first_connection(ca, server_config, store)
    late = ticket.received_at + ticket.lifetime + 1
    c = client(TLSConfig(alpn=ALPN, cadata=ca.pem), now=late, session_ticket=ticket)
    c_events, _ = drive(c, server(server_config, now=late), now=late)
    (done,) = of_type(c_events, HandshakeComplete)
    assert isinstance(done, HandshakeComplete) and not done.session_resumed


def test_tampered_binder_is_decrypt_error(ca: CA, server_config: TLSConfig) -> None:
    store = MemorySessionTicketStore()
    ticket = first_connection(ca, server_config, store)
    c = client(TLSConfig(alpn=ALPN, cadata=ca.pem), now=2.0, session_ticket=ticket)
    s = server(server_config, now=2.0)
    c.start()
    hello = c.next_event()
    assert isinstance(hello, WriteData)
    tampered = hello.data[:-1] + bytes([hello.data[-1] ^ 1])  # the binder is the last field
    with pytest.raises(TransportError) as info:
        s.handle_message(tampered, L.INITIAL)
    assert info.value.code == 0x133  # decrypt_error


# ---- 0-RTT ---------------------------------------------------------------------------------------------


def test_zero_rtt_accepted(ca: CA, server_config: TLSConfig) -> None:
    store = MemorySessionTicketStore()
    first_connection(ca, server_config, store)
    seen: list[bytes] = []

    def check(app_data: bytes) -> bool:
        seen.append(app_data)
        return True

    c = client(TLSConfig(alpn=ALPN, cadata=ca.pem, session_ticket_store=store), now=3.0, early_data=True)
    s = server(server_config, now=3.0, early_data_check=check)
    c_events, s_events = drive(c, s, now=3.0)
    assert seen == [b"remembered"]
    # RFC 9001 §4.1.4: the client installs the 0-RTT write key right after its ClientHello.
    assert isinstance(c_events[0], WriteData) and c_events[0].level == L.INITIAL
    c_early = c_events[1]
    assert isinstance(c_early, KeysReady) and (c_early.level, c_early.is_write) == (L.ZERO_RTT, True)
    s_early = [e for e in of_type(s_events, KeysReady) if e.level == L.ZERO_RTT]  # type: ignore[attr-defined]
    assert len(s_early) == 1 and s_early[0].secret == c_early.secret and not s_early[0].is_write  # type: ignore[attr-defined]
    (c_done,) = of_type(c_events, HandshakeComplete)
    (s_done,) = of_type(s_events, HandshakeComplete)
    assert c_done.early_data_accepted and s_done.early_data_accepted  # type: ignore[attr-defined]
    assert not of_type(c_events, EarlyDataRejected)
    assert c.early_data_offered and c.early_data_accepted and s.early_data_accepted


def test_zero_rtt_rejected_by_server_setting(ca: CA, server_config: TLSConfig) -> None:
    store = MemorySessionTicketStore()
    first_connection(ca, server_config, store)
    c = client(TLSConfig(alpn=ALPN, cadata=ca.pem, session_ticket_store=store), now=3.0, early_data=True)
    c_events, s_events = drive(c, server(server_config, now=3.0, early_data=False), now=3.0)
    assert of_type(c_events, EarlyDataRejected)
    assert not [e for e in of_type(s_events, KeysReady) if e.level == L.ZERO_RTT]  # type: ignore[attr-defined]
    (done,) = of_type(c_events, HandshakeComplete)
    assert isinstance(done, HandshakeComplete) and done.session_resumed and not done.early_data_accepted


def test_zero_rtt_rejected_when_remembered_parameters_do_not_fit(ca: CA, server_config: TLSConfig) -> None:
    store = MemorySessionTicketStore()
    first_connection(ca, server_config, store)
    c = client(TLSConfig(alpn=ALPN, cadata=ca.pem, session_ticket_store=store), now=3.0, early_data=True)
    s = server(server_config, now=3.0, early_data_check=lambda remembered: remembered == b"other")
    c_events, _ = drive(c, s, now=3.0)
    assert of_type(c_events, EarlyDataRejected)


def test_zero_rtt_rejected_for_an_implausible_ticket_age(ca: CA, server_config: TLSConfig) -> None:
    store = MemorySessionTicketStore()
    ticket = first_connection(ca, server_config, store)
    # The client claims the ticket is 100 s younger than the server knows it is (a replay sign).
    young = SessionTicket(**{**_fields(ticket), "received_at": ticket.received_at + 100})
    c = client(TLSConfig(alpn=ALPN, cadata=ca.pem), now=200.0, early_data=True, session_ticket=young)
    c_events, _ = drive(c, server(server_config, now=200.0), now=200.0)
    assert of_type(c_events, EarlyDataRejected)


def _fields(ticket: SessionTicket) -> dict[str, object]:
    return {name: getattr(ticket, name) for name in SessionTicket.__dataclass_fields__}


def test_zero_rtt_not_offered_for_another_alpn(ca: CA) -> None:
    server_config = ca.server_config(["h3", "hq-interop"], ["localhost"])
    store = MemorySessionTicketStore()
    first = client(TLSConfig(alpn=["h3"], cadata=ca.pem, session_ticket_store=store))
    s = server(server_config)
    drive(first, s)
    deliver_ticket(first, s, 1.0)
    c = client(
        TLSConfig(alpn=["hq-interop"], cadata=ca.pem, session_ticket_store=store), now=2.0, early_data=True
    )
    c_events, _ = drive(c, server(server_config, now=2.0), now=2.0)
    assert not c.early_data_offered
    assert not [e for e in of_type(c_events, KeysReady) if e.level == L.ZERO_RTT]  # type: ignore[attr-defined]


def test_ticket_with_other_max_early_data_is_protocol_violation(ca: CA, server_config: TLSConfig) -> None:
    c, s = client(TLSConfig(alpn=ALPN, cadata=ca.pem)), server(server_config)
    drive(c, s)
    bad = NewSessionTicket(lifetime=60, age_add=0, nonce=b"\x00", ticket=b"t", max_early_data=1000).encode()
    with pytest.raises(TransportError) as info:
        c.handle_message(bad, L.ONE_RTT)
    assert info.value.code == TransportErrorCode.PROTOCOL_VIOLATION  # RFC 9001 §4.6.1


def test_ticket_lifetime_above_seven_days_is_illegal_parameter(ca: CA, server_config: TLSConfig) -> None:
    c, s = client(TLSConfig(alpn=ALPN, cadata=ca.pem)), server(server_config)
    drive(c, s)
    bad = NewSessionTicket(lifetime=604801, age_add=0, nonce=b"", ticket=b"t").encode()
    with pytest.raises(TransportError) as info:
        c.handle_message(bad, L.ONE_RTT)
    assert info.value.code == 0x12F


def test_server_sends_no_ticket_before_completion(ca: CA, server_config: TLSConfig) -> None:
    s = server(server_config)
    assert not s.send_session_ticket(0.0)
    assert not client(TLSConfig(alpn=ALPN, cadata=ca.pem)).send_session_ticket(0.0)


def test_server_event_order_with_zero_rtt(ca: CA, server_config: TLSConfig) -> None:
    store = MemorySessionTicketStore()
    first_connection(ca, server_config, store)
    c = client(TLSConfig(alpn=ALPN, cadata=ca.pem, session_ticket_store=store), now=3.0, early_data=True)
    _, s_events = drive(c, server(server_config, now=3.0), now=3.0)
    # RFC 9001 §4.1.4: the server reads 0-RTT once it has processed the ClientHello, and sends its
    # ServerHello at Initial before anything at Handshake.
    summary = [(type(e).__name__, getattr(e, "level", None), getattr(e, "is_write", None)) for e in s_events]
    assert summary == [
        ("PeerTransportParameters", None, None),
        ("WriteData", L.INITIAL, None),
        ("KeysReady", L.ZERO_RTT, False),
        ("KeysReady", L.HANDSHAKE, False),
        ("KeysReady", L.HANDSHAKE, True),
        ("WriteData", L.HANDSHAKE, None),
        ("KeysReady", L.ONE_RTT, True),
        ("KeysReady", L.ONE_RTT, False),
        ("HandshakeComplete", None, None),
    ]


def test_store_keeps_tickets_per_server_name(ca: CA, server_config: TLSConfig) -> None:
    store = MemorySessionTicketStore()
    first_connection(ca, server_config, store)
    assert store.pop("other.example", 2.0) is None
    assert store.pop("localhost", 2.0) is not None
    assert store.pop("localhost", 2.0) is None


def test_server_transport_parameters_may_be_set_late(ca: CA, server_config: TLSConfig) -> None:
    c = client(TLSConfig(alpn=ALPN, cadata=ca.pem))
    s = server(server_config)
    s.set_transport_parameters(b"late-server-tp")
    c_events, _ = drive(c, s)
    assert PeerTransportParameters(b"late-server-tp") in c_events


def test_no_retry_when_a_sent_share_is_acceptable(ca: CA) -> None:
    server_config = ca.server_config(ALPN, ["localhost"], groups=[NamedGroup.X25519, NamedGroup.SECP256R1])
    client_config = TLSConfig(alpn=ALPN, cadata=ca.pem, groups=[NamedGroup.SECP256R1, NamedGroup.X25519])
    c_events, _ = drive(client(client_config), server(server_config))
    assert len([e for e in of_type(c_events, WriteData) if e.level == L.INITIAL]) == 1  # type: ignore[attr-defined]
    (done,) = of_type(c_events, HandshakeComplete)
    assert isinstance(done, HandshakeComplete) and done.group == NamedGroup.SECP256R1


def _hello_with_identities(c: TLSEngine, ticket: SessionTicket, junk: int, now: float) -> bytes:
    """Our client's ClientHello, re-offered with ``junk`` forged identities before the real ticket."""
    from dataclasses import replace

    from quicsilver.handshake.tls.key_schedule import KeySchedule, Transcript
    from quicsilver.handshake.tls.messages import parse_untrusted_client_hello

    c.start()
    first = c.next_event()
    assert isinstance(first, WriteData)
    hello = parse_untrusted_client_hello(first.data[4:])
    identities = (*((b"forged-%d" % i, 0) for i in range(junk)), (ticket.ticket, ticket.obfuscated_age(now)))
    hello = replace(
        hello, psk_identities=identities, psk_binders=tuple(bytes(32) for _ in identities), psk_modes=(1,)
    )
    encoded = hello.encode()
    ks = KeySchedule(ticket.suite, ticket.resumption_secret)
    transcript = Transcript(ks.hash_name)
    transcript.update(encoded[: -hello.binders_length()])
    binder = ks.verify_data(ks.binder_key(), transcript.digest())
    return replace(hello, psk_binders=(*(bytes(32) for _ in range(junk)), binder)).encode()


@pytest.mark.parametrize(("junk", "resumed"), [(1, True), (3, True), (4, False)])
def test_only_the_first_identities_are_tried(
    ca: CA, server_config: TLSConfig, junk: int, resumed: bool
) -> None:
    from quicsilver.handshake.tls.messages import parse_untrusted_server_hello

    ticket = first_connection(ca, server_config, MemorySessionTicketStore())
    hello = _hello_with_identities(client(TLSConfig(alpn=ALPN, cadata=ca.pem)), ticket, junk, 2.0)
    s = server(server_config, now=2.0)
    s.handle_message(hello, L.INITIAL)
    reply = next(e for e in iter(s.next_event, None) if isinstance(e, WriteData))
    selected = parse_untrusted_server_hello(reply.data[4:]).selected_identity
    assert selected == (junk if resumed else None)


def test_replayed_zero_rtt_client_hello_is_accepted_once(ca: CA, server_config: TLSConfig) -> None:
    """RFC 8446 §8.2: the same ClientHello replayed within the window gets no 0-RTT the second time."""
    store = MemorySessionTicketStore()
    first_connection(ca, server_config, store)
    c = client(TLSConfig(alpn=ALPN, cadata=ca.pem, session_ticket_store=store), now=3.0, early_data=True)
    c.start()
    hello = next(e for e in iter(c.next_event, None) if isinstance(e, WriteData))
    accepted = []
    for _ in range(2):
        s = server(server_config, now=3.5)
        s.handle_message(hello.data, L.INITIAL, 3.5)
        events = list(iter(s.next_event, None))
        accepted.append(any(isinstance(e, KeysReady) and e.level == L.ZERO_RTT for e in events))
    assert accepted == [True, False]


def test_replay_filter_forgets_after_the_window_and_is_bounded() -> None:
    from quicsilver.handshake.tls.tickets import EarlyDataReplayFilter

    replay = EarlyDataReplayFilter(window=10.0, max_entries=2)
    assert replay.first_use(b"a", 0.0) and not replay.first_use(b"a", 5.0)
    assert replay.first_use(b"b", 6.0)
    assert not replay.first_use(b"c", 7.0)  # full: refuse 0-RTT rather than forget too early
    assert replay.first_use(b"c", 10.5)  # "a" (seen at 0.0) has left the window
    assert len(replay) == 2


# ---- who is sent tickets (RFC 8446 §4.2.9) ---------------------------------------------------------------


def _client_hello(c: TLSEngine) -> bytes:
    c.start()
    event = c.next_event()
    assert isinstance(event, WriteData) and event.level == L.INITIAL
    return event.data


def test_a_client_without_a_ticket_store_lists_no_psk_mode_and_is_sent_no_ticket(
    ca: CA, server_config: TLSConfig
) -> None:
    from quicsilver.handshake.tls.messages import parse_untrusted_client_hello

    config = TLSConfig(alpn=ALPN, cadata=ca.pem)  # nowhere to keep a ticket (Go's nil session cache)
    hello = parse_untrusted_client_hello(memoryview(_client_hello(client(config)))[4:])
    assert hello.psk_modes is None and hello.psk_identities is None
    c, s = client(config), server(server_config)
    c_events, _ = drive(c, s)
    assert of_type(c_events, HandshakeComplete)
    # The server would issue tickets (session_tickets is on) but this client could never use one.
    assert server_config.session_tickets
    assert not s.send_session_ticket(1.0)
    assert s.next_event() is None


def test_a_client_with_a_ticket_store_lists_psk_dhe_ke_and_is_sent_tickets(
    ca: CA, server_config: TLSConfig
) -> None:
    from quicsilver.handshake.tls.messages import parse_untrusted_client_hello

    store = MemorySessionTicketStore()
    config = TLSConfig(alpn=ALPN, cadata=ca.pem, session_ticket_store=store)
    hello = parse_untrusted_client_hello(memoryview(_client_hello(client(config)))[4:])
    assert hello.psk_modes == (1,)  # psk_dhe_ke
    ticket = first_connection(ca, server_config, store)
    assert store.pop("localhost", 1.0) == ticket
