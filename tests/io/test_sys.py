"""sys/: wrap_conn socket options and batched I/O on real loopback sockets, GSO/GRO on and off."""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections import deque
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicsilver.sys import PacketConn, ReceivedDatagram, probe_gro, probe_gso, sockopts, wrap_conn
from quicsilver.sys.packet_conn import OutgoingDatagram


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


FAMILIES = [
    pytest.param(socket.AF_INET, "127.0.0.1", id="ipv4"),
    pytest.param(
        socket.AF_INET6,
        "::1",
        id="ipv6",
        marks=pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback"),
    ),
]


class CountingSocket(socket.socket):
    """A real UDP socket that counts its send calls."""

    def __init__(self, family: int) -> None:
        super().__init__(family, socket.SOCK_DGRAM)
        self.sendmsg_calls = 0
        self.sendto_calls = 0

    def sendmsg(self, *args: Any) -> int:  # type: ignore[override]
        self.sendmsg_calls += 1
        return super().sendmsg(*args)

    def sendto(self, *args: Any) -> int:  # type: ignore[override]
        self.sendto_calls += 1
        return super().sendto(*args)


def _bound(family: int, host: str, **kwargs: Any) -> PacketConn:
    sock = CountingSocket(family)
    sock.bind((host, 0))
    return wrap_conn(sock, **kwargs)


def _drain(conn: PacketConn, expected: int, timeout: float = 2.0) -> list[ReceivedDatagram]:
    got: list[ReceivedDatagram] = []
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        batch = conn.read_batch()
        if not batch:
            time.sleep(0.001)
        got.extend(batch)
    return got


@pytest.fixture
def conns() -> Any:
    made: list[PacketConn] = []

    def make(family: int, host: str, **kwargs: Any) -> PacketConn:
        conn = _bound(family, host, **kwargs)
        made.append(conn)
        return conn

    yield make
    for conn in made:
        conn.close()


@pytest.mark.parametrize(("family", "host"), FAMILIES)
def test_wrap_conn_socket_options(conns: Any, family: int, host: str) -> None:
    conn = conns(family, host)
    sock = conn.sock
    assert not sock.getblocking()
    # Running as root SO_RCVBUFFORCE gets the full 7 MiB; otherwise what the kernel granted is recorded.
    assert conn.caps.receive_buffer == sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    assert conn.caps.send_buffer == sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    assert conn.caps.df
    if family == socket.AF_INET:
        assert sock.getsockopt(sockopts.SOL_IP, sockopts.IP_MTU_DISCOVER) == sockopts.IP_PMTUDISC_PROBE
    else:
        assert sock.getsockopt(sockopts.SOL_IPV6, sockopts.IPV6_MTU_DISCOVER) == sockopts.IPV6_PMTUDISC_PROBE
    assert conn.caps.ecn
    assert conn.default_ecn == 0b10
    assert not conn.caps.pktinfo  # a specific address needs no packet info


def test_buffer_warning_once_and_silenced(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    monkeypatch.setattr(sockopts, "_set_one_buffer", lambda sock, opt, force: 212992)
    monkeypatch.setattr(sockopts, "_warned_buffers", False)
    monkeypatch.delenv("QUICSILVER_DISABLE_RECEIVE_BUFFER_WARNING", raising=False)
    caplog.set_level(logging.WARNING, logger="quicsilver.sys")
    for _ in range(2):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            conn = wrap_conn(s)
            assert conn.caps.receive_buffer == 212992
    warnings = [r for r in caplog.records if "socket buffer" in r.getMessage()]
    assert len(warnings) == 1
    assert "7168 kiB" in warnings[0].getMessage()

    caplog.clear()
    monkeypatch.setattr(sockopts, "_warned_buffers", False)
    monkeypatch.setenv("QUICSILVER_DISABLE_RECEIVE_BUFFER_WARNING", "1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        wrap_conn(s)
    assert not [r for r in caplog.records if "socket buffer" in r.getMessage()]


def test_wrap_conn_rejects_tcp() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, pytest.raises(ValueError, match="UDP"):
        wrap_conn(s)


@pytest.mark.parametrize(("family", "host"), FAMILIES)
def test_ecn_marked_and_received(conns: Any, family: int, host: str) -> None:
    rx = conns(family, host, gro=False)
    tx = conns(family, host, gso=False)
    queue: deque[OutgoingDatagram] = deque(
        [
            (b"default", rx.local_addr, 0b10, None),  # socket-level ECT(0), no cmsg
            (b"ce", rx.local_addr, 0b11, None),  # per-datagram codepoint via IP_TOS / IPV6_TCLASS cmsg
            (b"not-ect", rx.local_addr, 0b00, None),
        ]
    )
    assert tx.write_batch(queue)
    assert not queue
    got = _drain(rx, 3)
    assert [(bytes(d), ecn) for d, _, ecn, _ in got] == [(b"default", 0b10), (b"ce", 0b11), (b"not-ect", 0)]
    assert got[0][1][1] == tx.local_addr[1]


@pytest.mark.parametrize(("family", "host"), FAMILIES)
def test_ecn_disabled_sends_not_ect(conns: Any, family: int, host: str) -> None:
    rx = conns(family, host, gro=False)
    tx = conns(family, host, ecn=False)
    assert not tx.caps.ecn
    assert tx.write_batch(deque([(b"x", rx.local_addr, 0b10, None)]))
    got = _drain(rx, 1)
    assert got[0][2] == 0


@pytest.mark.parametrize(("family", "host"), FAMILIES)
@pytest.mark.parametrize("gso", [True, False], ids=["gso", "no-gso"])
def test_write_batch_groups_equal_sizes(conns: Any, family: int, host: str, gso: bool) -> None:
    rx = conns(family, host, gro=False)
    other = conns(family, host, gro=False)
    tx = conns(family, host, gso=gso)
    assert tx.caps.gso == (gso and probe_gso(family))
    payloads = [bytes([i]) * 1200 for i in range(10)] + [b"tail" * 100]
    queue: deque[OutgoingDatagram] = deque((p, rx.local_addr, 0b10, None) for p in payloads)
    queue.append((b"elsewhere", other.local_addr, 0b10, None))
    assert tx.write_batch(queue)
    got = _drain(rx, len(payloads))
    assert [bytes(d) for d, *_ in got] == payloads
    assert [bytes(d) for d, *_ in _drain(other, 1)] == [b"elsewhere"]
    sock = tx.sock
    assert isinstance(sock, CountingSocket)
    if tx.caps.gso:
        # ten 1200-byte segments plus a shorter tail in one sendmsg, then one datagram elsewhere
        assert (sock.sendmsg_calls, sock.sendto_calls) == (1, 1)
    else:
        assert (sock.sendmsg_calls, sock.sendto_calls) == (0, 12)


@pytest.mark.skipif(not probe_gso(socket.AF_INET), reason="kernel without UDP GSO")
def test_gso_segment_and_byte_limits(conns: Any) -> None:
    rx = conns(socket.AF_INET, "127.0.0.1", gro=False)
    rx.max_batch = 1000
    tx = conns(socket.AF_INET, "127.0.0.1")
    queue: deque[OutgoingDatagram] = deque(
        (bytes([i % 256]) * 100, rx.local_addr, 0b10, None) for i in range(130)
    )
    assert tx.write_batch(queue)
    assert tx.sock.sendmsg_calls == 3  # 64 + 64 + 2 segments
    got = _drain(rx, 130)
    assert [bytes(d) for d, *_ in got] == [bytes([i % 256]) * 100 for i in range(130)]

    tx.sock.sendmsg_calls = 0
    queue = deque((b"z" * 1400, rx.local_addr, 0b10, None) for _ in range(60))  # 84 KB > 64 KB
    assert tx.write_batch(queue)
    assert tx.sock.sendmsg_calls == 2
    assert len(_drain(rx, 60)) == 60


@pytest.mark.parametrize(("family", "host"), FAMILIES)
def test_gro_splits_into_segments(conns: Any, family: int, host: str) -> None:
    if not (probe_gro(family) and probe_gso(family)):
        pytest.skip("kernel without UDP GRO/GSO")
    rx = conns(family, host)
    assert rx.caps.gro
    tx = conns(family, host)
    payloads = [bytes([i]) * 1000 for i in range(8)] + [b"short"]
    assert tx.write_batch(deque((p, rx.local_addr, 0b10, None) for p in payloads))
    got = _drain(rx, len(payloads))
    assert [bytes(d) for d, *_ in got] == payloads
    assert all(ecn == 0b10 and addr[1] == tx.local_addr[1] for _, addr, ecn, _ in got)
    # the kernel coalesced them: the segments are views into one buffer, not copies
    assert any(isinstance(d, memoryview) for d, *_ in got)


@pytest.mark.parametrize(("family", "host"), FAMILIES)
def test_gro_forced_off(conns: Any, family: int, host: str) -> None:
    rx = conns(family, host, gro=False)
    assert not rx.caps.gro
    tx = conns(family, host)
    payloads = [bytes([i]) * 1000 for i in range(8)]
    assert tx.write_batch(deque((p, rx.local_addr, 0b10, None) for p in payloads))
    got = _drain(rx, len(payloads))
    assert [d for d, *_ in got] == payloads
    assert all(isinstance(d, bytes) for d, *_ in got)


def test_read_batch_is_bounded_and_drops_truncated(conns: Any) -> None:
    rx = conns(socket.AF_INET, "127.0.0.1", gro=False)
    rx.max_batch = 10
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.sendto(b"x" * 3000, rx.local_addr)  # larger than any QUIC datagram we accept
        for i in range(25):
            tx.sendto(bytes([i]), rx.local_addr)
        time.sleep(0.05)
        first = rx.read_batch()
        assert len(first) == 9  # ten recvmsg calls, one of them the truncated datagram
        assert rx.truncated == 1
        rest = rx.read_batch() + rx.read_batch()
        assert [d for d, *_ in first + rest] == [bytes([i]) for i in range(25)]
        assert rx.read_batch() == []


class ScriptedSocket(socket.socket):
    """A UDP socket whose sends fail as scripted: EIO for GSO sends, EAGAIN after a budget."""

    def __init__(self, *, eio_on_gso: bool = False, budget: int = 1 << 30) -> None:
        super().__init__(socket.AF_INET, socket.SOCK_DGRAM)
        self.eio_on_gso = eio_on_gso
        self.budget = budget
        self.sent: list[tuple[bytes, int]] = []  # (payload, segment count)

    def _spend(self) -> None:
        if self.budget == 0:
            raise BlockingIOError(errno.EAGAIN, "would block")
        self.budget -= 1

    def sendmsg(self, buffers: Any, cmsgs: Any = (), flags: int = 0, addr: Any = None) -> int:  # type: ignore[override]
        if self.eio_on_gso and any(kind == sockopts.UDP_SEGMENT for _, kind, _ in cmsgs):
            raise OSError(errno.EIO, "Input/output error")
        self._spend()
        self.sent.append((b"".join(buffers), len(buffers)))
        return 0

    def sendto(self, data: Any, addr: Any) -> int:  # type: ignore[override]
        self._spend()
        self.sent.append((bytes(data), 1))
        return len(data)


def _scripted(sock: ScriptedSocket, gso: bool) -> PacketConn:
    sock.bind(("127.0.0.1", 0))
    conn = wrap_conn(sock)
    conn.caps.gso = gso
    return conn


def test_gso_eio_falls_back_per_destination() -> None:
    sock = ScriptedSocket(eio_on_gso=True)
    with sock:
        conn = _scripted(sock, gso=True)
        dest = ("127.0.0.1", 9)
        queue: deque[OutgoingDatagram] = deque((bytes([i]) * 50, dest, 0b10, None) for i in range(5))
        assert conn.write_batch(queue)
        assert conn.gso_disabled == {dest}
        assert sock.sent == [(bytes([i]) * 50, 1) for i in range(5)]


def test_eagain_keeps_rest_queued() -> None:
    sock = ScriptedSocket(budget=3)
    with sock:
        conn = _scripted(sock, gso=False)
        dest = ("127.0.0.1", 9)
        queue: deque[OutgoingDatagram] = deque((bytes([i]), dest, 0b10, None) for i in range(5))
        assert not conn.write_batch(queue)
        assert [d for d, *_ in queue] == [b"\x03", b"\x04"]
        sock.budget = 10
        assert conn.write_batch(queue)
        assert [d for d, _ in sock.sent] == [bytes([i]) for i in range(5)]


def test_send_error_drops_datagram_and_continues(conns: Any) -> None:
    rx = conns(socket.AF_INET, "127.0.0.1", gro=False)
    tx = conns(socket.AF_INET, "127.0.0.1", gso=False)
    # DF is set: a datagram larger than the loopback MTU fails with EMSGSIZE and is dropped alone.
    queue: deque[OutgoingDatagram] = deque(
        [
            (b"a", rx.local_addr, 0b10, None),
            (b"x" * 70000, rx.local_addr, 0b10, None),
            (b"b", rx.local_addr, 0b10, None),
        ]
    )
    assert tx.write_batch(queue)
    assert tx.send_errors == 1
    assert [d for d, *_ in _drain(rx, 2)] == [b"a", b"b"]


@pytest.mark.parametrize(
    ("family", "wildcard", "host", "level", "kind"),
    [
        pytest.param(socket.AF_INET, "0.0.0.0", "127.0.0.1", sockopts.SOL_IP, sockopts.IP_PKTINFO, id="ipv4"),
        pytest.param(
            socket.AF_INET6,
            "::",
            "::1",
            sockopts.SOL_IPV6,
            sockopts.IPV6_PKTINFO,
            id="ipv6",
            marks=pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback"),
        ),
    ],
)
def test_pktinfo_on_wildcard_bind(family: int, wildcard: str, host: str, level: int, kind: int) -> None:
    with socket.socket(family, socket.SOCK_DGRAM) as s, socket.socket(family, socket.SOCK_DGRAM) as peer:
        s.bind((wildcard, 0))
        conn = wrap_conn(s)
        assert conn.caps.pktinfo
        peer.bind((host, 0))
        peer.sendto(b"hello", (host, conn.local_addr[1]))
        got = _drain(conn, 1)
        data, addr, _, pktinfo = got[0]
        assert data == b"hello"
        assert pktinfo is not None and pktinfo[:2] == (level, kind)
        assert conn.write_batch(deque([(b"reply", addr, 0b10, pktinfo)]))
        peer.settimeout(1)
        reply, source = peer.recvfrom(100)
        assert reply == b"reply"
        assert source[:2] == (host, conn.local_addr[1])


@settings(max_examples=25, derandomize=True, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=1), st.sampled_from([1, 20, 1200, 1452])),
        min_size=1,
        max_size=80,
    ),
    st.booleans(),
)
def test_write_batch_delivers_everything_in_order(plan: list[tuple[int, int]], gso: bool) -> None:
    receivers = [_bound(socket.AF_INET, "127.0.0.1", gro=False) for _ in range(2)]
    tx = _bound(socket.AF_INET, "127.0.0.1", gso=gso)
    try:
        for r in receivers:
            r.max_batch = 1000
        expected: list[list[bytes]] = [[], []]
        queue: deque[OutgoingDatagram] = deque()
        for i, (dest, size) in enumerate(plan):
            payload = i.to_bytes(2, "big") * (size // 2) or b"\x00"
            expected[dest].append(payload)
            queue.append((payload, receivers[dest].local_addr, 0b10, None))
        assert tx.write_batch(queue)
        for r, want in zip(receivers, expected, strict=True):
            assert [bytes(d) for d, *_ in _drain(r, len(want))] == want
    finally:
        for c in [*receivers, tx]:
            c.close()
