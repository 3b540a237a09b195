"""Go's crypto/tls (the TLS stack quic-go is built on) as a referee: TLS 1.3 over TCP on loopback
through the test-only record layer, our client against a Go server and a Go client against our server,
for each cipher suite, X25519 and P-256 (P-256 by HelloRetryRequest), and client certificates."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from quicsilver.handshake.protection import CipherSuite
from quicsilver.handshake.tls import HandshakeComplete, NamedGroup, TLSConfig, TLSEngine

from .helpers import CA, of_type
from .record_layer import RecordLayer

pytestmark = pytest.mark.interop

ALPN = ["hq-interop"]
SOURCE = Path(__file__).with_name("go_tls_peer.go")


@pytest.fixture(scope="module")
def go_peer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.skip("the Go toolchain is not installed")
    binary = tmp_path_factory.mktemp("go") / "go_tls_peer"
    env = {**os.environ, "GOPROXY": "off", "GOFLAGS": "", "CGO_ENABLED": "0"}
    try:
        build = subprocess.run(
            [go, "build", "-o", str(binary), str(SOURCE)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("go build took more than 120 s")
    if build.returncode != 0:
        pytest.skip(f"go build failed: {build.stderr.strip()}")
    return binary


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA.create()


@pytest.fixture(scope="module")
def files(ca: CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("pki")
    out = {"ca": directory / "ca.pem"}
    out["ca"].write_bytes(ca.pem)
    for name, host in (("server", "localhost"), ("client", "client.test")):
        cert, key = ca.issue([host])
        out[name] = directory / f"{name}.pem"
        out[name + "_key"] = directory / f"{name}.key"
        out[name].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[name + "_key"].write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return out


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )


def _finish(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=20)
    assert process.returncode == 0, (out, err)
    return out


@pytest.fixture
def cleanup() -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("curve", ["x25519", "p256"])
@pytest.mark.parametrize("suite", list(CipherSuite), ids=lambda s: s.name)
def test_our_client_with_go_server(
    go_peer: Path,
    files: dict[str, Path],
    ca: CA,
    suite: CipherSuite,
    curve: str,
    cleanup: list[subprocess.Popen[str]],
) -> None:
    server = _run(
        [str(go_peer), "server", str(files["server"]), str(files["server_key"]), str(files["ca"]), curve]
    )
    cleanup.append(server)
    assert server.stdout is not None
    port = int(server.stdout.readline())
    # Our default groups send shares for X25519MLKEM768 and X25519: a P-256-only Go server (Go 1.19
    # knows no hybrid) answers with HelloRetryRequest.
    config = TLSConfig(alpn=ALPN, cadata=ca.pem, cipher_suites=[suite])
    engine = TLSEngine(
        config, is_client=True, transport_parameters=b"", server_name="localhost", now=0.0, quic=False
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        layer = RecordLayer(engine, sock)
        layer.run_handshake()
        layer.send_application_data(b"ping\n")
        reply = b""
        while not reply.endswith(b"\n"):
            reply += layer.receive_application_data(1)
    assert reply.startswith(b"ping version=304 suite=%x alpn=hq-interop" % suite)
    _finish(server)
    (done,) = of_type(layer.events, HandshakeComplete)
    expected_group = NamedGroup.X25519 if curve == "x25519" else NamedGroup.SECP256R1
    assert isinstance(done, HandshakeComplete) and (done.suite, done.group) == (suite, expected_group)


@pytest.mark.parametrize("group", [NamedGroup.X25519, NamedGroup.SECP256R1], ids=lambda g: g.name)
@pytest.mark.parametrize("suite", list(CipherSuite), ids=lambda s: s.name)
def test_go_client_with_our_server(
    go_peer: Path,
    files: dict[str, Path],
    ca: CA,
    suite: CipherSuite,
    group: NamedGroup,
    cleanup: list[subprocess.Popen[str]],
) -> None:
    config = TLSConfig(alpn=ALPN, cipher_suites=[suite], groups=[group])
    config.load_cert_chain(files["server"], files["server_key"])
    engine = TLSEngine(config, is_client=False, transport_parameters=b"", now=0.0, quic=False)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)
        # The Go client sends an X25519 share: a P-256-only server asks again (HelloRetryRequest).
        client = _run(
            [str(go_peer), "client", str(listener.getsockname()[1]), str(files["ca"]), "x25519,p256"]
        )
        cleanup.append(client)
        sock, _ = listener.accept()
        with sock:
            sock.settimeout(10)
            layer = RecordLayer(engine, sock)
            layer.run_handshake()
            assert engine.send_session_ticket(0.0)
            layer.flush()
            assert layer.receive_application_data(5) == b"ping\n"
            layer.send_application_data(b"pong\n")
            output = _finish(client)
    assert output.startswith(f"pong version=304 suite={suite:x} alpn=hq-interop")
    (done,) = of_type(layer.events, HandshakeComplete)
    assert isinstance(done, HandshakeComplete) and (done.suite, done.group) == (suite, group)


def test_our_client_certificate_with_go_server(
    go_peer: Path, files: dict[str, Path], ca: CA, cleanup: list[subprocess.Popen[str]]
) -> None:
    server = _run(
        [str(go_peer), "server", str(files["server"]), str(files["server_key"]), str(files["ca"]), "x25519"],
        env={"REQUIRE_CLIENT_CERT": "1"},
    )
    cleanup.append(server)
    assert server.stdout is not None
    port = int(server.stdout.readline())
    config = TLSConfig(alpn=ALPN, cadata=ca.pem, certfile=files["client"], keyfile=files["client_key"])
    engine = TLSEngine(
        config, is_client=True, transport_parameters=b"", server_name="localhost", now=0.0, quic=False
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        layer = RecordLayer(engine, sock)
        layer.run_handshake()
        layer.send_application_data(b"ping\n")
        reply = b""
        while not reply.endswith(b"\n"):
            reply += layer.receive_application_data(1)
    assert b"peer_certs=1" in reply  # the Go server verified our certificate chain
    _finish(server)
