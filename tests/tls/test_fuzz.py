"""Hostile input: random and mutated handshake messages end the handshake with a TransportError carrying
a CRYPTO_ERROR code (0x100 + alert; RFC 9001 §4.8) — or PROTOCOL_VIOLATION where RFC 9001 names it —
never with another exception and never with internal_error (which would mean a bug was caught)."""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quicsilver.errors import TransportError, TransportErrorCode
from quicsilver.handshake.tls import NamedGroup, TLSConfig, TLSEngine, WriteData
from quicsilver.handshake.tls.groups import ClientKeyShare, server_key_exchange
from quicsilver.handshake.tls.messages import (
    parse_untrusted_certificate,
    parse_untrusted_certificate_request,
    parse_untrusted_certificate_verify,
    parse_untrusted_client_hello,
    parse_untrusted_encrypted_extensions,
    parse_untrusted_new_session_ticket,
    parse_untrusted_server_hello,
)
from quicsilver.handshake.tls.tickets import MemorySessionTicketStore
from quicsilver.protocol import EncryptionLevel as L

from .helpers import CA

ALPN = ["hq-interop"]
INTERNAL_ERROR = 0x100 + 80
FUZZ = settings(
    max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@cache
def _ca() -> CA:
    return CA.create()


@cache
def configs() -> tuple[TLSConfig, TLSConfig]:
    ca = _ca()
    return TLSConfig(alpn=ALPN, cadata=ca.pem), ca.server_config(ALPN, ["localhost"])


def new_pair(ticket_store: bool = False) -> tuple[TLSEngine, TLSEngine]:
    client_config, server_config = configs()
    if ticket_store:
        # A fresh store per pair: a ticket kept from an earlier example must not be offered in the next.
        client_config = TLSConfig(
            alpn=ALPN, cadata=_ca().pem, session_ticket_store=MemorySessionTicketStore()
        )
    client = TLSEngine(
        client_config, is_client=True, transport_parameters=b"c", server_name="localhost", now=0.0
    )
    server = TLSEngine(server_config, is_client=False, transport_parameters=b"s", now=0.0)
    return client, server


def writes(engine: TLSEngine) -> list[WriteData]:
    out = []
    while (event := engine.next_event()) is not None:
        if isinstance(event, WriteData):
            out.append(event)
    return out


def assert_clean_failure(feed: object) -> None:
    """Calls ``feed``; it may succeed, or fail only with a QUIC/TLS error code."""
    try:
        feed()  # type: ignore[operator]
    except TransportError as exc:
        assert 0x100 <= exc.code <= 0x1FF or exc.code == TransportErrorCode.PROTOCOL_VIOLATION, exc
        assert exc.code != INTERNAL_ERROR, exc


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """1-4 random edits. Positions are drawn independently of the length (then reduced modulo it), so
    the draws do not depend on the message, whose length varies (signatures, key shares)."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]))
        position = draw(st.integers(0, 1 << 20))
        argument = draw(st.integers(0, 255))
        insert = draw(st.binary(min_size=1, max_size=8)) if kind == "insert" else b""
        if not data:
            continue
        i = position % len(data)
        if kind == "flip":
            data[i] ^= 1 << (argument & 7)
        elif kind == "set":
            data[i] = argument
        elif kind == "truncate":
            del data[i:]
        elif kind == "insert":
            data[i:i] = insert
        else:
            del data[i : i + 1 + (argument & 7)]
    return bytes(data)


@cache
def client_hello() -> bytes:
    client, _ = new_pair()
    client.start()
    return writes(client)[0].data


@cache
def server_flight() -> tuple[bytes, bytes]:
    client, server = new_pair()
    client.start()
    server.handle_message(writes(client)[0].data, L.INITIAL)
    initial, handshake = writes(server)
    return initial.data, handshake.data


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_to_a_server(data: bytes) -> None:
    _, server = new_pair()
    assert_clean_failure(lambda: server.handle_message(data, L.INITIAL))


@FUZZ
@given(st.binary(min_size=4, max_size=600))
def test_random_messages_with_a_valid_header_to_a_client(body: bytes) -> None:
    client, _ = new_pair()
    client.start()
    message = bytes((body[0] % 25,)) + len(body[1:]).to_bytes(3, "big") + body[1:]
    assert_clean_failure(lambda: client.handle_message(message, L.INITIAL))


@FUZZ
@given(st.data())
def test_mutated_client_hello(data: st.DataObject) -> None:
    hello = data.draw(mutated(client_hello()))
    _, server = new_pair()
    assert_clean_failure(lambda: server.handle_message(hello, L.INITIAL))


@FUZZ
@given(st.data())
def test_mutated_server_hello(data: st.DataObject) -> None:
    client, server = new_pair()
    client.start()
    server.handle_message(writes(client)[0].data, L.INITIAL)
    server_hello = writes(server)[0].data
    message = data.draw(mutated(server_hello))
    assert_clean_failure(lambda: client.handle_message(message, L.INITIAL))


@FUZZ
@given(st.data())
def test_mutated_server_flight(data: st.DataObject) -> None:
    client, server = new_pair()
    client.start()
    server.handle_message(writes(client)[0].data, L.INITIAL)
    server_hello, flight = (w.data for w in writes(server))
    client.handle_message(server_hello, L.INITIAL)
    message = data.draw(mutated(flight))

    def feed() -> None:
        client.handle_message(message, L.HANDSHAKE)
        # Every byte of the flight is covered by the server's Finished MAC (RFC 8446 §4.4.4).
        assert message == flight or not client.handshake_complete

    assert_clean_failure(feed)


@FUZZ
@given(st.data())
def test_mutated_client_finished(data: st.DataObject) -> None:
    client, server = new_pair()
    client.start()
    server.handle_message(writes(client)[0].data, L.INITIAL)
    for write in writes(server):
        client.handle_message(write.data, write.level)
    finished = next(w for w in writes(client) if w.level == L.HANDSHAKE).data
    message = data.draw(mutated(finished))
    assert_clean_failure(lambda: server.handle_message(message, L.HANDSHAKE))
    if message != finished:
        assert not server.handshake_complete


PARSERS = [
    parse_untrusted_client_hello,
    parse_untrusted_server_hello,
    parse_untrusted_encrypted_extensions,
    parse_untrusted_certificate,
    parse_untrusted_certificate_request,
    parse_untrusted_certificate_verify,
    parse_untrusted_new_session_ticket,
]


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@FUZZ
@given(data=st.binary(max_size=300))
def test_parsers_raise_only_transport_errors(parser: object, data: bytes) -> None:
    try:
        parser(data)  # type: ignore[operator]
    except TransportError as exc:
        assert 0x100 <= exc.code <= 0x1FF and exc.code != INTERNAL_ERROR


@cache
def resumption_hello() -> tuple[bytes, float]:
    """A ClientHello offering a ticket and 0-RTT to the server of ``configs()``."""
    from quicsilver.handshake.tls import MemorySessionTicketStore

    _, server_config = configs()
    store = MemorySessionTicketStore()
    first_config = TLSConfig(alpn=ALPN, verify=False, session_ticket_store=store)
    client = TLSEngine(
        first_config, is_client=True, transport_parameters=b"c", server_name="localhost", now=0.0
    )
    server = TLSEngine(server_config, is_client=False, transport_parameters=b"s", now=0.0, early_data=True)
    client.start()
    pending = [(client, server)]
    while pending:
        src, dst = pending.pop()
        for write in writes(src):
            dst.handle_message(write.data, write.level)
            pending.append((dst, src))
    server.send_session_ticket(0.0)
    for write in writes(server):
        client.handle_message(write.data, write.level)
    assert len(store) == 1
    resuming = TLSEngine(
        first_config,
        is_client=True,
        transport_parameters=b"c",
        server_name="localhost",
        now=1.0,
        early_data=True,
    )
    resuming.start()
    hello = writes(resuming)[0].data
    parsed = parse_untrusted_client_hello(hello[4:])
    assert parsed.psk_identities and parsed.early_data  # the fuzzed paths: tickets, binders, 0-RTT
    return hello, 1.0


@FUZZ
@given(st.data())
def test_mutated_resumption_client_hello(data: st.DataObject) -> None:
    hello, now = resumption_hello()
    message = data.draw(mutated(hello))
    _, server_config = configs()
    server = TLSEngine(server_config, is_client=False, transport_parameters=b"s", now=now, early_data=True)
    assert_clean_failure(lambda: server.handle_message(message, L.INITIAL, now))


@FUZZ
@given(st.data())
def test_mutated_new_session_ticket(data: st.DataObject) -> None:
    client, server = new_pair(ticket_store=True)  # a client without one is sent no ticket
    client.start()
    server.handle_message(writes(client)[0].data, L.INITIAL)
    for write in writes(server):
        client.handle_message(write.data, write.level)
    for write in writes(client):
        server.handle_message(write.data, write.level)
    writes(server)
    assert server.send_session_ticket(0.0)
    ticket = writes(server)[0].data
    message = data.draw(mutated(ticket))
    assert_clean_failure(lambda: client.handle_message(message, L.ONE_RTT))


@pytest.mark.parametrize("group", list(NamedGroup), ids=lambda g: g.name)
@FUZZ
@given(share=st.one_of(st.binary(max_size=40), st.binary(min_size=60, max_size=1300)))
def test_random_key_shares(group: NamedGroup, share: bytes) -> None:
    """Peer key shares of any length and content: a secret or illegal_parameter, nothing else."""
    for attempt in (lambda: server_key_exchange(group, share), lambda: ClientKeyShare(group).exchange(share)):
        try:
            attempt()
        except TransportError as exc:
            assert exc.code == 0x100 + 47, exc


@pytest.mark.parametrize("group", list(NamedGroup), ids=lambda g: g.name)
def test_key_shares_of_the_right_length_but_random(group: NamedGroup) -> None:
    import os

    client = ClientKeyShare(group)
    server_share, _ = server_key_exchange(group, client.public)
    for _ in range(20):
        for attempt in (
            lambda: server_key_exchange(group, os.urandom(len(client.public))),
            lambda: ClientKeyShare(group).exchange(os.urandom(len(server_share))),
        ):
            try:
                attempt()
            except TransportError as exc:
                assert exc.code == 0x100 + 47, exc
