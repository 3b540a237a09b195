"""The handshake state tables (RFC 8446 Appendix A): in every state, every message type other than
the ones the state accepts is unexpected_message (0x10a), even at the right encryption level."""

from __future__ import annotations

import pytest

from quicsilver.errors import TransportError
from quicsilver.handshake.tls import TLSConfig, TLSEngine, WriteData
from quicsilver.handshake.tls.messages import HandshakeType as H
from quicsilver.protocol import EncryptionLevel as L

from .helpers import CA

ALPN = ["hq-interop"]
ALL_TYPES = [t for t in H if t != H.MESSAGE_HASH]
UNEXPECTED_MESSAGE = 0x10A


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA.create()


def split(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        end = pos + 4 + int.from_bytes(data[pos + 1 : pos + 4], "big")
        out.append(data[pos:end])
        pos = end
    return out


def writes(engine: TLSEngine) -> list[WriteData]:
    return [e for e in iter(engine.next_event, None) if isinstance(e, WriteData)]


# Client: (messages fed so far, level of the next message, types the state accepts).
CLIENT_STATES = [
    (0, L.INITIAL, {H.SERVER_HELLO}),
    (1, L.HANDSHAKE, {H.ENCRYPTED_EXTENSIONS}),
    (2, L.HANDSHAKE, {H.CERTIFICATE_REQUEST, H.CERTIFICATE}),
    (3, L.HANDSHAKE, {H.CERTIFICATE}),
    (4, L.HANDSHAKE, {H.CERTIFICATE_VERIFY}),
    (5, L.HANDSHAKE, {H.FINISHED}),
    (6, L.ONE_RTT, {H.NEW_SESSION_TICKET}),
]


def client_at(ca: CA, steps: int) -> TLSEngine:
    server_config = ca.server_config(ALPN, ["localhost"], client_auth="optional", cadata=ca.pem)
    client = TLSEngine(
        TLSConfig(alpn=ALPN, cadata=ca.pem),
        is_client=True,
        transport_parameters=b"c",
        server_name="localhost",
        now=0.0,
    )
    server = TLSEngine(server_config, is_client=False, transport_parameters=b"s", now=0.0)
    client.start()
    server.handle_message(writes(client)[0].data, L.INITIAL)
    flight = [(w.level, m) for w in writes(server) for m in split(w.data)]
    for level, message in flight[:steps]:
        client.handle_message(message, level)
    return client


@pytest.mark.parametrize(("steps", "level", "accepted"), CLIENT_STATES, ids=lambda v: str(v))
def test_client_state_table(ca: CA, steps: int, level: L, accepted: set[H]) -> None:
    for msg_type in ALL_TYPES:
        if msg_type in accepted:
            continue
        client = client_at(ca, steps)
        with pytest.raises(TransportError) as info:
            client.handle_message(bytes((msg_type, 0, 0, 0)), level)
        assert info.value.code == UNEXPECTED_MESSAGE, msg_type


# Server with client authentication: (client messages fed, level, accepted types).
SERVER_STATES = [
    (0, L.INITIAL, {H.CLIENT_HELLO}),
    (1, L.HANDSHAKE, {H.CERTIFICATE}),
    (2, L.HANDSHAKE, {H.CERTIFICATE_VERIFY}),
    (3, L.HANDSHAKE, {H.FINISHED}),
    (4, L.ONE_RTT, set()),
]


def server_at(ca: CA, steps: int) -> TLSEngine:
    """A server that has processed the client's first ``steps`` messages of a live handshake."""
    server_config = ca.server_config(ALPN, ["localhost"], client_auth="required", cadata=ca.pem)
    client_config = ca.server_config(ALPN, ["client.test"], cadata=ca.pem)
    client = TLSEngine(
        client_config, is_client=True, transport_parameters=b"c", server_name="localhost", now=0.0
    )
    server = TLSEngine(server_config, is_client=False, transport_parameters=b"s", now=0.0)
    client.start()
    hello = writes(client)[0].data
    if steps == 0:
        return server
    server.handle_message(hello, L.INITIAL)
    for write in writes(server):
        client.handle_message(write.data, write.level)
    client_flight = [(w.level, m) for w in writes(client) for m in split(w.data)]
    for level, message in client_flight[: steps - 1]:
        server.handle_message(message, level)
    writes(server)
    return server


@pytest.mark.parametrize(("steps", "level", "accepted"), SERVER_STATES, ids=lambda v: str(v))
def test_server_state_table(ca: CA, steps: int, level: L, accepted: set[H]) -> None:
    for msg_type in ALL_TYPES:
        if msg_type in accepted:
            continue
        server = server_at(ca, steps)
        with pytest.raises(TransportError) as info:
            server.handle_message(bytes((msg_type, 0, 0, 0)), level)
        assert info.value.code == UNEXPECTED_MESSAGE, msg_type
