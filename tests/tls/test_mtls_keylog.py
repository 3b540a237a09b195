"""Client certificates (RFC 8446 §4.3.2, §4.4.2.4) and SSLKEYLOGFILE output."""

from __future__ import annotations

import io

import pytest

from quicsilver.errors import TransportError, crypto_error
from quicsilver.handshake.tls import (
    HandshakeComplete,
    KeysReady,
    MemorySessionTicketStore,
    SessionTicketReceived,
    TLSConfig,
    TLSEngine,
    WriteData,
)
from quicsilver.handshake.tls.alerts import AlertDescription
from quicsilver.protocol import EncryptionLevel as L

from .helpers import CA, drive, of_type

ALPN = ["hq-interop"]


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA.create()


def pair(
    client_config: TLSConfig, server_config: TLSConfig, now: float = 0.0, **kw: bool
) -> tuple[TLSEngine, TLSEngine]:
    c = TLSEngine(
        client_config,
        is_client=True,
        transport_parameters=b"c",
        server_name="localhost",
        now=now,
        early_data=kw.get("early_data", False),
    )
    s = TLSEngine(server_config, is_client=False, transport_parameters=b"s", now=now, early_data=True)
    return c, s


def mtls_server(ca: CA, mode: str) -> TLSConfig:
    return ca.server_config(ALPN, ["localhost"], client_auth=mode, cadata=ca.pem)


@pytest.mark.parametrize("key_type", ["ec", "rsa", "ed25519"])
def test_required_client_certificate_is_verified_and_reported(ca: CA, key_type: str) -> None:
    client_config = ca.server_config(ALPN, ["client.test"], key_type, cadata=ca.pem)
    _, s_events = drive(*pair(client_config, mtls_server(ca, "required")))
    (done,) = of_type(s_events, HandshakeComplete)
    assert isinstance(done, HandshakeComplete)
    assert done.peer_certificates == client_config.certificate_chain


def test_required_client_certificate_missing_is_certificate_required(ca: CA) -> None:
    with pytest.raises(TransportError) as info:
        drive(*pair(TLSConfig(alpn=ALPN, cadata=ca.pem), mtls_server(ca, "required")))
    assert info.value.code == crypto_error(AlertDescription.CERTIFICATE_REQUIRED)  # 0x174


def test_optional_client_certificate_may_be_absent(ca: CA) -> None:
    _, s_events = drive(*pair(TLSConfig(alpn=ALPN, cadata=ca.pem), mtls_server(ca, "optional")))
    (done,) = of_type(s_events, HandshakeComplete)
    assert isinstance(done, HandshakeComplete) and done.peer_certificates == ()


def test_untrusted_client_certificate_is_bad_certificate(ca: CA) -> None:
    stranger = CA.create("stranger")
    client_config = stranger.server_config(ALPN, ["client.test"], cadata=ca.pem)
    with pytest.raises(TransportError) as info:
        drive(*pair(client_config, mtls_server(ca, "optional")))
    assert info.value.code == crypto_error(AlertDescription.BAD_CERTIFICATE)


def test_no_certificate_request_without_client_auth(ca: CA) -> None:
    client_config = ca.server_config(ALPN, ["client.test"], cadata=ca.pem)
    _, s_events = drive(*pair(client_config, ca.server_config(ALPN, ["localhost"])))
    (done,) = of_type(s_events, HandshakeComplete)
    assert isinstance(done, HandshakeComplete) and done.peer_certificates == ()


# ---- SSLKEYLOGFILE ------------------------------------------------------------------------------------


def _lines(log: io.StringIO) -> dict[str, str]:
    out = {}
    for line in log.getvalue().splitlines():
        label, _random, secret = line.split(" ")
        out[label] = secret
    return out


def test_keylog_lines_match_the_installed_secrets(ca: CA, tmp_path: pytest.TempPathFactory) -> None:
    client_log = io.StringIO()
    server_path = tmp_path / "server.keys"  # type: ignore[operator]
    client_config = TLSConfig(alpn=ALPN, cadata=ca.pem, keylog_file=client_log)
    server_config = ca.server_config(ALPN, ["localhost"], keylog_file=server_path)
    c_events, _ = drive(*pair(client_config, server_config))
    client_lines = _lines(client_log)
    secrets = {(e.level, e.is_write): e.secret.hex() for e in of_type(c_events, KeysReady)}  # type: ignore[attr-defined]
    assert client_lines == {
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET": secrets[L.HANDSHAKE, True],
        "SERVER_HANDSHAKE_TRAFFIC_SECRET": secrets[L.HANDSHAKE, False],
        "CLIENT_TRAFFIC_SECRET_0": secrets[L.ONE_RTT, True],
        "SERVER_TRAFFIC_SECRET_0": secrets[L.ONE_RTT, False],
        "EXPORTER_SECRET": client_lines["EXPORTER_SECRET"],
    }
    server_lines = {
        line.split(" ")[0]: line.split(" ")[2]
        for line in server_path.read_text().splitlines()  # type: ignore[attr-defined]
    }
    assert server_lines == client_lines
    # Every line names the ClientHello random (32 bytes, hex).
    randoms = {line.split(" ")[1] for line in client_log.getvalue().splitlines()}
    assert len(randoms) == 1 and len(randoms.pop()) == 64


def test_keylog_has_the_client_early_traffic_secret(ca: CA) -> None:
    store = MemorySessionTicketStore()
    server_config = ca.server_config(ALPN, ["localhost"])
    c, s = pair(TLSConfig(alpn=ALPN, cadata=ca.pem, session_ticket_store=store), server_config)
    drive(c, s)
    assert s.send_session_ticket(1.0)
    ticket_event = s.next_event()
    assert isinstance(ticket_event, WriteData)
    c.handle_message(ticket_event.data, L.ONE_RTT, 1.0)
    assert isinstance(c.next_event(), SessionTicketReceived)
    log = io.StringIO()
    client_config = TLSConfig(alpn=ALPN, cadata=ca.pem, session_ticket_store=store, keylog_file=log)
    c_events, _ = drive(*pair(client_config, server_config, now=2.0, early_data=True), now=2.0)
    early = [e for e in of_type(c_events, KeysReady) if e.level == L.ZERO_RTT]  # type: ignore[attr-defined]
    assert _lines(log)["CLIENT_EARLY_TRAFFIC_SECRET"] == early[0].secret.hex()  # type: ignore[attr-defined]


def test_no_tickets_with_client_authentication(ca: CA) -> None:
    client_config = ca.server_config(ALPN, ["client.test"], cadata=ca.pem)
    c, s = pair(client_config, mtls_server(ca, "required"))
    drive(c, s)
    # A ticket cannot carry the client's identity, so a server authenticating clients issues none.
    assert not s.send_session_ticket(1.0)
