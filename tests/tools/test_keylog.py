"""SSLKEYLOGFILE, honoured by the CLI's client and server, lets tshark decrypt a loopback capture."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("tshark") is None or os.geteuid() != 0, reason="needs tshark and capture rights on lo"
)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def decrypted_stream_data(capture: Path, keylog: Path) -> list[bytes]:
    out = subprocess.run(
        ["tshark", "-r", str(capture), "-o", f"tls.keylog_file:{keylog}", "-Y", "quic.stream_data",
         "-T", "fields", "-e", "quic.stream_data"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return [bytes.fromhex(h) for line in out.stdout.split() for h in line.split(",") if h]


def test_tshark_decrypts_a_loopback_transfer_with_either_keylog(tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "secret.txt").write_bytes(b"the quick silver fox\n")
    port = free_udp_port()
    capture = tmp_path / "cap.pcapng"
    server_keys, client_keys = tmp_path / "server-keys.txt", tmp_path / "client-keys.txt"
    env = {k: v for k, v in os.environ.items() if k not in ("SSLKEYLOGFILE", "QLOGDIR")}
    with subprocess.Popen(
        ["tshark", "-i", "lo", "-f", f"udp port {port}", "-w", str(capture)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as tshark:
        try:
            assert tshark.stderr is not None
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # "Capturing on 'Loopback: lo'"
                line = tshark.stderr.readline()
                if "Capturing on" in line or not line:
                    break
            with subprocess.Popen(
                [sys.executable, "-m", "quicsilver", "server", "-l", f"127.0.0.1:{port}", "-d", str(www)],
                env={**env, "SSLKEYLOGFILE": str(server_keys)},
                stdout=subprocess.PIPE,
                text=True,
            ) as server:
                try:
                    assert server.stdout is not None
                    assert "serving" in server.stdout.readline()
                    client = subprocess.run(
                        [sys.executable, "-m", "quicsilver", "client", "-k", "-o", str(tmp_path / "dl"),
                         f"https://127.0.0.1:{port}/secret.txt"],
                        env={**env, "SSLKEYLOGFILE": str(client_keys)},
                        capture_output=True, text=True, timeout=60, check=False,
                    )  # fmt: skip
                    assert client.returncode == 0, client.stderr
                finally:
                    server.terminate()
                    server.wait(10)
            time.sleep(0.5)  # let dumpcap write the last packets
        finally:
            tshark.terminate()
            tshark.wait(10)

    for keys in (server_keys, client_keys):
        labels = {line.split()[0] for line in keys.read_text().splitlines() if line.strip()}
        assert {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_TRAFFIC_SECRET_0"} <= labels
        data = decrypted_stream_data(capture, keys)
        assert b"GET /secret.txt\r\n" in data
        assert b"the quick silver fox\n" in data
    # and without the keys nothing of the stream is readable
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert decrypted_stream_data(capture, empty) == []
