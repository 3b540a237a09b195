"""The interop runner endpoint: test case mapping, exit 127, and a real resumption run."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENDPOINT = ROOT / "interop" / "endpoint.py"


def load_endpoint() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quicsilver_interop_endpoint", ENDPOINT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


endpoint = load_endpoint()


def test_server_cases() -> None:
    assert endpoint.plan("server", "transfer", []) == [
        ["server", "-l", ":443", "-d", "/www", "--cert", "/certs/cert.pem", "--key", "/certs/priv.key"]
    ]
    assert endpoint.plan("server", "retry", [])[0][-1] == "--retry"
    assert endpoint.plan("server", "zerortt", [])[0][-1] == "--0rtt"
    assert endpoint.plan("server", "v2", [])[0][-2:] == ["--quic-versions", "v2,v1"]
    (keyupdate,) = endpoint.plan("client", "keyupdate", ["https://server4:443/a"])
    assert keyupdate[keyupdate.index("--key-update-after") + 1] == "10"
    (v2_client,) = endpoint.plan("client", "v2", ["https://server4:443/a"])
    assert v2_client[v2_client.index("--quic-versions") + 1] == "v1,v2"


def test_client_cases() -> None:
    urls = ["https://server4:443/a", "https://server4:443/b", "https://server4:443/c"]
    (only,) = endpoint.plan("client", "multiplexing", urls)
    assert only[-3:] == urls
    assert "-o" in only and only[only.index("-o") + 1] == "/downloads"
    (chacha,) = endpoint.plan("client", "chacha20", urls[:1])
    assert chacha[chacha.index("--cipher") + 1] == "chacha20"
    first, second = endpoint.plan("client", "zerortt", urls)
    assert first[-1] == urls[0] and "--resume" in first
    assert second[-2:] == urls[1:] and "--0rtt" in second
    assert first[first.index("--ticket-file") + 1] == second[second.index("--ticket-file") + 1]


@pytest.mark.parametrize(
    ("role", "case"), [("server", "http3"), ("client", "connectionmigration"), ("x", "handshake")]
)
def test_unsupported_cases_exit_127(role: str, case: str) -> None:
    env = dict(os.environ, ROLE=role, TESTCASE=case, REQUESTS="https://server4:443/a")
    result = subprocess.run(
        [sys.executable, str(ENDPOINT)], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == endpoint.UNSUPPORTED == 127
    assert "unsupported" in result.stderr


def _certs(directory: Path) -> None:
    from quicsilver.handshake.tls import TLSConfig

    tls = TLSConfig.self_signed(alpn=["hq-interop"])
    from cryptography.hazmat.primitives import serialization

    (directory / "cert.pem").write_bytes(tls.certificate_pem)
    assert tls.private_key is not None
    (directory / "priv.key").write_bytes(
        tls.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def test_resumption_case_end_to_end(tmp_path: Path) -> None:
    www, downloads, certs = tmp_path / "www", tmp_path / "downloads", tmp_path / "certs"
    for d in (www, downloads, certs):
        d.mkdir()
    _certs(certs)
    files = {"one.bin": os.urandom(20_000), "two.bin": os.urandom(50_000), "three.txt": b"3\n"}
    for name, data in files.items():
        (www / name).write_bytes(data)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(
        os.environ,
        QUICSILVER_INTEROP_WWW=str(www),
        QUICSILVER_INTEROP_DOWNLOADS=str(downloads),
        QUICSILVER_INTEROP_CERTS=str(certs),
        QUICSILVER_INTEROP_PORT=str(port),
        QUICSILVER_INTEROP_TICKETS=str(tmp_path / "tickets.json"),
        TESTCASE="resumption",
    )
    env.pop("SSLKEYLOGFILE", None)
    env["QLOGDIR"] = str(tmp_path / "qlog")
    with subprocess.Popen(
        [sys.executable, str(ENDPOINT)], env={**env, "ROLE": "server"}, stdout=subprocess.PIPE, text=True
    ) as server:
        try:
            assert server.stdout is not None
            assert "serving" in server.stdout.readline()
            requests = " ".join(f"https://127.0.0.1:{port}/{name}" for name in files)
            client = subprocess.run(
                [sys.executable, str(ENDPOINT)],
                env={**env, "ROLE": "client", "REQUESTS": requests},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            server.terminate()
            server.wait(10)
    assert client.returncode == 0, client.stderr
    for name, data in files.items():
        assert (downloads / name).read_bytes() == data
    assert len(list((tmp_path / "qlog").glob("*_client.sqlog"))) == 2
