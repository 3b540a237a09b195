"""OpenSSL as the referee: our client and our server complete TLS 1.3 handshakes with Python's ``ssl``
module over a socket pair, through the test-only record layer, for each cipher suite and for X25519
and P-256, then exchange application data under the negotiated keys."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from quicsilver.handshake.protection import CipherSuite
from quicsilver.handshake.tls import (
    HandshakeComplete,
    NamedGroup,
    SessionTicketReceived,
    TLSConfig,
    TLSEngine,
)

from .helpers import CA, of_type
from .record_layer import RecordLayer

pytestmark = pytest.mark.interop

ALPN = ["hq-interop"]
SUITE_NAMES = {
    CipherSuite.AES_128_GCM_SHA256: "TLS_AES_128_GCM_SHA256",
    CipherSuite.AES_256_GCM_SHA384: "TLS_AES_256_GCM_SHA384",
    CipherSuite.CHACHA20_POLY1305_SHA256: "TLS_CHACHA20_POLY1305_SHA256",
}


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA.create()


def run_peer(
    target: Callable[[socket.socket], None], sock: socket.socket
) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def wrapper() -> None:
        try:
            target(sock)
        except BaseException as exc:
            errors.append(exc)
        finally:
            sock.close()

    thread = threading.Thread(target=wrapper, daemon=True)
    thread.start()
    return thread, errors


@pytest.mark.parametrize("group", [NamedGroup.X25519, NamedGroup.SECP256R1], ids=lambda g: g.name)
@pytest.mark.parametrize("suite", list(CipherSuite), ids=lambda s: s.name)
def test_our_client_with_openssl_server(
    ca: CA, tmp_path: Path, suite: CipherSuite, group: NamedGroup
) -> None:
    cert, key = ca.issue(["localhost"])
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(ALPN)
    seen: dict[str, object] = {}

    def openssl_server(sock: socket.socket) -> None:
        with context.wrap_socket(sock, server_side=True) as tls:
            request = tls.recv(100)
            tls.sendall(request.upper())
            seen["cipher"] = tls.cipher()
            seen["alpn"] = tls.selected_alpn_protocol()

    ours, theirs = socket.socketpair()
    ours.settimeout(10)
    theirs.settimeout(10)
    thread, errors = run_peer(openssl_server, theirs)
    config = TLSConfig(alpn=ALPN, cadata=ca.pem, cipher_suites=[suite], groups=[group])
    engine = TLSEngine(
        config, is_client=True, transport_parameters=b"", server_name="localhost", now=0.0, quic=False
    )
    layer = RecordLayer(engine, ours)
    try:
        layer.run_handshake()
        layer.send_application_data(b"ping from quicsilver")
        assert layer.receive_application_data(20) == b"PING FROM QUICSILVER"
    finally:
        thread.join(10)
        ours.close()
    assert not errors, errors
    (done,) = of_type(layer.events, HandshakeComplete)
    assert isinstance(done, HandshakeComplete)
    assert (done.suite, done.group, done.alpn) == (suite, group, "hq-interop")
    assert seen["alpn"] == "hq-interop"
    assert seen["cipher"][0] == SUITE_NAMES[suite]  # type: ignore[index]
    # OpenSSL sends session tickets after the handshake; ours parsed at least one of them.
    assert of_type(layer.events, SessionTicketReceived)


@pytest.mark.parametrize("group", [NamedGroup.X25519, NamedGroup.SECP256R1], ids=lambda g: g.name)
@pytest.mark.parametrize("suite", list(CipherSuite), ids=lambda s: s.name)
@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_openssl_client_with_our_server(ca: CA, suite: CipherSuite, group: NamedGroup, key_type: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(cadata=ca.pem.decode())
    context.set_alpn_protocols(ALPN)
    seen: dict[str, object] = {}

    def openssl_client(sock: socket.socket) -> None:
        with context.wrap_socket(sock, server_hostname="localhost") as tls:
            tls.sendall(b"ping from openssl")
            seen["reply"] = tls.recv(100)
            seen["cipher"] = tls.cipher()
            seen["alpn"] = tls.selected_alpn_protocol()

    ours, theirs = socket.socketpair()
    ours.settimeout(10)
    theirs.settimeout(10)
    thread, errors = run_peer(openssl_client, theirs)
    # OpenSSL 3.0 sends an X25519 share only: a P-256-only server answers with HelloRetryRequest.
    config = ca.server_config(ALPN, ["localhost"], key_type, cipher_suites=[suite], groups=[group])
    engine = TLSEngine(config, is_client=False, transport_parameters=b"", now=0.0, quic=False)
    layer = RecordLayer(engine, ours)
    try:
        layer.run_handshake()
        assert engine.send_session_ticket(0.0)
        layer.flush()
        assert layer.receive_application_data(17) == b"ping from openssl"
        layer.send_application_data(b"pong")
    finally:
        thread.join(10)
        ours.close()
    assert not errors, errors
    assert seen["reply"] == b"pong"
    assert seen["alpn"] == "hq-interop"
    assert seen["cipher"][0] == SUITE_NAMES[suite]  # type: ignore[index]
    (done,) = of_type(layer.events, HandshakeComplete)
    assert isinstance(done, HandshakeComplete) and (done.suite, done.group) == (suite, group)


def test_openssl_client_with_client_certificate(ca: CA, tmp_path: Path) -> None:
    cert, key = ca.issue(["client.test"])
    cert_file, key_file = tmp_path / "client.pem", tmp_path / "client.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(cadata=ca.pem.decode())
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(ALPN)

    def openssl_client(sock: socket.socket) -> None:
        with context.wrap_socket(sock, server_hostname="localhost") as tls:
            tls.sendall(b"hello")
            tls.recv(10)

    ours, theirs = socket.socketpair()
    ours.settimeout(10)
    theirs.settimeout(10)
    thread, errors = run_peer(openssl_client, theirs)
    config = ca.server_config(ALPN, ["localhost"], client_auth="required", cadata=ca.pem)
    layer = RecordLayer(
        TLSEngine(config, is_client=False, transport_parameters=b"", now=0.0, quic=False), ours
    )
    try:
        layer.run_handshake()
        assert layer.receive_application_data(5) == b"hello"
        layer.send_application_data(b"ok")
    finally:
        thread.join(10)
        ours.close()
    assert not errors, errors
    (done,) = of_type(layer.events, HandshakeComplete)
    # OpenSSL sends the chain it can build: our leaf first, then the CA.
    assert isinstance(done, HandshakeComplete) and done.peer_certificates[0] == cert


def test_exporter_matches_openssl(ca: CA, tmp_path: Path) -> None:
    """RFC 8446 §7.5 exporter values agree with OpenSSL's SSL_export_keying_material."""
    openssl = pytest.importorskip("OpenSSL.SSL")
    cert, key = ca.issue(["localhost"])
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = openssl.Context(openssl.TLS_METHOD)
    context.set_min_proto_version(openssl.TLS1_3_VERSION)
    context.use_certificate_file(str(cert_file))
    context.use_privatekey_file(str(key_file))
    context.set_alpn_select_callback(lambda conn, offered: b"hq-interop")
    exported: dict[str, bytes] = {}

    def pyopenssl_server(sock: socket.socket) -> None:
        sock.settimeout(None)
        conn = openssl.Connection(context, sock)
        conn.set_accept_state()
        conn.do_handshake()
        exported["with_context"] = conn.export_keying_material(b"EXPORTER-quicsilver", 32, b"context")
        exported["empty_context"] = conn.export_keying_material(b"EXPORTER-quicsilver", 32, b"")
        conn.sendall(b"done")

    ours, theirs = socket.socketpair()
    ours.settimeout(10)
    thread, errors = run_peer(pyopenssl_server, theirs)
    config = TLSConfig(alpn=ALPN, cadata=ca.pem)
    engine = TLSEngine(
        config, is_client=True, transport_parameters=b"", server_name="localhost", now=0.0, quic=False
    )
    layer = RecordLayer(engine, ours)
    try:
        layer.run_handshake()
        assert layer.receive_application_data(4) == b"done"
    finally:
        thread.join(10)
        ours.close()
    assert not errors, errors
    assert engine.export_keying_material(b"EXPORTER-quicsilver", b"context", 32) == exported["with_context"]
    assert engine.export_keying_material(b"EXPORTER-quicsilver", b"", 32) == exported["empty_context"]
