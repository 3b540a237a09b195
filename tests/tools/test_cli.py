"""The command line as a user meets it: subprocesses, exit codes, one-line errors, real transfers."""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from quicsilver import cli

PYTHON = [sys.executable, "-m", "quicsilver"]


def run(*args: str, timeout: float = 60, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("SSLKEYLOGFILE", None)
    env.pop("QLOGDIR", None)
    return subprocess.run(
        [*PYTHON, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env, check=False
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], status: int, pattern: str) -> None:
    assert result.returncode == status, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(pattern, lines[0]), lines[0]


def stop_server(proc: subprocess.Popen[str]) -> None:
    """Terminate a `quicsilver server` process and check that it exited cleanly (SIGTERM is a
    normal shutdown for it)."""
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    assert proc.returncode == 0, err


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "status", "pattern"),
    [
        pytest.param(["--bogus"], 2, r"unrecognized arguments: --bogus", id="bad-flag"),
        pytest.param(
            ["server", "--cert", "/nonexistent/cert.pem"], 2, r"--cert: no such file", id="missing-cert"
        ),
        pytest.param(["server", "--key", "/tmp/k.pem"], 2, r"--key needs --cert", id="key-without-cert"),
        pytest.param(["server", "-d", "/nonexistent/dir"], 2, r"no such directory", id="missing-root"),
        pytest.param(["server", "-l", "127.0.0.1:99999"], 2, r"bad address .*out of range", id="bad-port"),
        pytest.param(
            ["server", "-l", "127.0.0.1:0", "--preferred-address", "nope"],
            2,
            r"bad address 'nope'",
            id="bad-preferred-address",
        ),
        pytest.param(
            ["server", "-l", "127.0.0.1:0", "--preferred-address", "0.0.0.0:0"],
            1,
            r"cannot listen on 127\.0\.0\.1:0 \(preferred address 0\.0\.0\.0:0\): "
            r"preferred_address: .*wildcard",
            id="wildcard-preferred-address",
        ),
        pytest.param(["client", "ftp://example.com/x"], 2, r"bad URL", id="bad-url-scheme"),
        pytest.param(["client", "https://127.0.0.1:notaport/x"], 2, r"bad URL .*port", id="bad-url-port"),
        pytest.param(["perf", "nohost"], 2, r"bad address 'nohost'", id="perf-no-port"),
        pytest.param(["demo", "--size", "lots"], 2, r"not a size", id="bad-size"),
        pytest.param(
            ["client", "-k", "--cafile", "/nonexistent.pem", "https://x:1/"], 2, r"--cafile", id="cafile"
        ),
    ],
)
def test_usage_errors_print_one_line_and_exit_non_zero(args: list[str], status: int, pattern: str) -> None:
    assert_one_line_error(run(*args), status, pattern)


def test_nobody_answering_is_one_line() -> None:
    port = free_udp_port()
    result = run("client", "-k", "--timeout", "1", f"https://127.0.0.1:{port}/x")
    assert_one_line_error(result, 1, rf"no QUIC server answered at 127\.0\.0\.1:{port}|connection refused")


def test_version_flag() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("quicsilver ")
    assert "0x00000001" in result.stdout


@pytest.mark.parametrize(
    ("text", "value"),
    [("1000", 1000), ("10MB", 10_000_000), ("10m", 10_000_000), ("4MiB", 4 << 20), ("1.5GB", 1_500_000_000)],
)
def test_parse_size(text: str, value: int) -> None:
    assert cli.parse_size(text) == value


@pytest.mark.parametrize("text", ["", "ten", "10XB", "-5"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        cli.parse_size(text)


def test_no_command_runs_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    async def fake_demo(args: argparse.Namespace) -> int:
        seen.append(args.command)
        return 0

    monkeypatch.setitem(cli._COMMANDS, "demo", fake_demo)
    assert cli.main([]) == 0
    assert seen == ["demo"]


def test_demo_prints_its_summary() -> None:
    result = run("demo", "--size", "1MB", "--upload", "200kB")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for label in ("handshake", "download", "upload", "RTT", "loss", "version", "cipher", "key exchange"):
        assert re.search(rf"^\s+{label}\b", out, re.MULTILINE), out
    assert "1.0 MB in" in out
    assert "QUIC v1" in out


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """A `quicsilver server` subprocess (Retry off, 0-RTT on) serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    qlogs = tmp_path / "qlogs"
    port = free_udp_port()
    with subprocess.Popen(
        [*PYTHON, "server", "-l", f"127.0.0.1:{port}", "-d", str(www), "--0rtt", "--qlog-dir", str(qlogs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        try:
            assert "serving" in line, line
            yield f"https://127.0.0.1:{port}", www, qlogs
        finally:
            stop_server(proc)


def test_server_and_client_transfer_a_10mb_file(server: tuple[str, Path, Path], tmp_path: Path) -> None:
    base, www, qlogs = server
    payload = os.urandom(10_000_000)
    (www / "big.bin").write_bytes(payload)
    (www / "small.txt").write_bytes(b"hello\n")
    out = tmp_path / "downloads"
    result = run("client", "-k", "-o", str(out), f"{base}/big.bin", f"{base}/small.txt", timeout=120)
    assert result.returncode == 0, result.stderr
    assert (out / "big.bin").read_bytes() == payload
    assert (out / "small.txt").read_bytes() == b"hello\n"
    assert "big.bin" in result.stdout
    # the server wrote a qlog for the connection
    deadline = time.monotonic() + 5
    while not any(qlogs.glob("*_server.sqlog")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(qlogs.glob("*_server.sqlog"))


def test_resumption_and_0rtt_from_the_ticket_file(server: tuple[str, Path, Path], tmp_path: Path) -> None:
    base, www, _ = server
    (www / "a.txt").write_bytes(b"abc")
    tickets = tmp_path / "tickets.json"
    out = tmp_path / "dl"
    first = run("client", "-k", "--0rtt", "--ticket-file", str(tickets), "-o", str(out), f"{base}/a.txt")
    assert first.returncode == 0, first.stderr
    assert "session resumed: no" in first.stdout
    assert tickets.exists()
    second = run("client", "-k", "--0rtt", "--ticket-file", str(tickets), "-o", str(out), f"{base}/a.txt")
    assert second.returncode == 0, second.stderr
    assert "session resumed: yes, 0-RTT: accepted" in second.stdout
    assert (out / "a.txt").read_bytes() == b"abc"


def test_perf_command_against_the_server(server: tuple[str, Path, Path]) -> None:
    base, _, _ = server
    address = base.removeprefix("https://")
    result = run("perf", "-k", address, "--download", "500kB", "--upload", "100kB")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^handshake\s+[\d.]+ ms", result.stdout, re.MULTILINE)
    assert re.search(r"^throughput\s+[\d.]+ MB/s", result.stdout, re.MULTILINE)
    assert re.search(r"^RTT\s+[\d.]+ ms smoothed", result.stdout, re.MULTILINE)


def test_refused_requests_fail_the_client_without_leaving_a_file(
    server: tuple[str, Path, Path], tmp_path: Path
) -> None:
    base, www, _ = server
    (www / "there.txt").write_bytes(b"yes")
    out = tmp_path / "dl"
    result = run("client", "-k", "-o", str(out), f"{base}/there.txt", f"{base}/missing.txt", f"{base}/../x")
    assert result.returncode == 1
    assert (out / "there.txt").read_bytes() == b"yes"
    assert sorted(p.name for p in out.iterdir()) == ["there.txt"]
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2 and "Traceback" not in result.stderr
    assert all("refused by the server (stream reset, code 2)" in line for line in errors)


def test_handshake_failure_is_one_line(tmp_path: Path) -> None:
    """A server without our ALPN: the handshake fails (no_application_protocol, 0x178)."""
    port = free_udp_port()
    script = (
        "import asyncio, quicsilver as q\n"
        "async def main():\n"
        f"    l = await q.listen_addr('127.0.0.1:{port}', q.TLSConfig.self_signed(alpn=['other']))\n"
        "    print('ready', flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            assert server.stdout.readline().strip() == "ready"
            result = run("client", "-k", "--timeout", "5", f"https://127.0.0.1:{port}/x")
        finally:
            server.kill()
    assert_one_line_error(result, 1, rf"handshake with 127\.0\.0\.1:{port} failed: .*")
    assert "no_application_protocol" in result.stderr


def test_server_offers_a_preferred_address(tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    payload = os.urandom(2_000_000)
    (www / "f.bin").write_bytes(payload)
    port, preferred = free_udp_port(), free_udp_port()
    with subprocess.Popen(
        [
            *PYTHON,
            "server",
            "-l",
            f"127.0.0.1:{port}",
            "-d",
            str(www),
            "--preferred-address",
            f"127.0.0.1:{preferred}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        try:
            line = proc.stdout.readline()
            assert f"on 127.0.0.1:{port}, preferred address 127.0.0.1:{preferred} " in line, line
            out = tmp_path / "dl"
            result = run("client", "-k", "-o", str(out), f"https://127.0.0.1:{port}/f.bin", timeout=60)
            assert result.returncode == 0, result.stderr
            assert (out / "f.bin").read_bytes() == payload
        finally:
            stop_server(proc)
