"""Transport and server edge paths on real loopback sockets, with a raw UDP socket as the peer:
multiplexer, address parsing, stateless reset (RFC 9000 §10.3), Version Negotiation (§6), drop rules
(§7.2, §14.1, DESIGN.md §6), Retry (§8.1.2, RFC 9001 §5.8) and INVALID_TOKEN."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import quicsilver as quic
from quicsilver.core.conn_id_generator import stateless_reset_token
from quicsilver.handshake.protection import initial_keys, retry_integrity_valid, unprotect_header
from quicsilver.multiplexer import registered
from quicsilver.protocol import VERSION_1, VERSION_2, Perspective
from quicsilver.qlog.tracer import DropReason, Tracer
from quicsilver.transport import parse_address
from quicsilver.wire.frames import ConnectionCloseFrame, parse_frame
from quicsilver.wire.header import (
    PacketType,
    build_long_header,
    long_header_length,
    parse_long_header,
    parse_retry,
    parse_version_negotiation,
    retry_pseudo_packet,
)


class RecordingTracer(Tracer):
    def __init__(self) -> None:
        self.dropped: list[tuple[str, int, str]] = []
        self.sent: list[tuple[str, int]] = []

    def dropped_packet(self, addr: Any, packet_type: str, size: int, reason: str) -> None:
        self.dropped.append((packet_type, size, reason))

    def sent_packet(self, addr: Any, header: Any, size: int, frames: Any) -> None:
        self.sent.append((header, size))


@pytest.fixture(scope="module")
def server_tls() -> quic.TLSConfig:
    return quic.TLSConfig.self_signed(alpn=["TEST"])


class Peer:
    """A raw UDP socket playing the client."""

    def __init__(self, family: int = socket.AF_INET, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)

    async def recv(self, timeout: float = 1.0) -> bytes | None:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.sock_recv(self.sock, 65535), timeout)
        except TimeoutError:
            return None

    def send(self, data: bytes, addr: Any) -> None:
        self.sock.sendto(data, addr)

    def close(self) -> None:
        self.sock.close()


async def eventually(condition: Any, timeout: float = 3.0) -> None:
    """Wait until ``condition()`` holds (the server works in loop callbacks), failing after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def initial_packet(
    dcid: bytes, scid: bytes, *, token: bytes = b"", size: int = 1200, version: int = VERSION_1
) -> bytes:
    """An unprotected-looking Initial of ``size`` bytes (header valid, payload random)."""
    pn_len = 2
    header_len = long_header_length(len(dcid), len(scid), len(token), pn_len)
    buf = bytearray()
    build_long_header(
        buf, version, PacketType.INITIAL, dcid, scid, token, size - header_len + pn_len, 0, pn_len
    )
    buf += os.urandom(size - len(buf))
    return bytes(buf)


# --- address parsing and the multiplexer -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9000", ("127.0.0.1", 9000)),
        ("[::1]:443", ("::1", 443)),
        (":9000", ("", 9000)),
        ("localhost:0", ("localhost", 0)),
        (("10.0.0.1", 5), ("10.0.0.1", 5)),
    ],
)
def test_parse_address(text: Any, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("127.0.0.1", "no port"),
        ("127.0.0.1:http", "not a number"),
        ("127.0.0.1:70000", "out of range"),
        ("::1:443", "brackets"),
        ("[::1]443", r"\[host\]:port"),
        (("h",), r"\(host, port\)"),
    ],
)
def test_parse_address_errors(text: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_address(text)


def test_parse_address_for_dial() -> None:
    with pytest.raises(ValueError, match=r"out of range 1\.\.65535"):
        parse_address("127.0.0.1:0", for_dial=True)
    with pytest.raises(ValueError, match="no host"):
        parse_address(":443", for_dial=True)


async def test_second_transport_on_same_socket_is_address_in_use() -> None:
    before = registered()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        first = quic.Transport(sock)
        with pytest.raises(quic.AddressInUseError, match=f"127.0.0.1:{port}") as info:
            quic.Transport(sock)
        assert isinstance(info.value, OSError)
        first.close()
        second = quic.Transport(sock)  # released by close()
        second.close()
        assert sock.fileno() >= 0  # a Transport never closes a socket it was given
    assert registered() == before


async def test_transport_rejects_a_tcp_socket_without_claiming_it() -> None:
    before = registered()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind(("127.0.0.1", 0))
        with pytest.raises(ValueError, match="UDP"):
            quic.Transport(tcp)
    assert registered() == before


async def test_transport_owns_socket_it_bound() -> None:
    transport = quic.Transport("127.0.0.1:0")
    assert transport.local_addr[0] == "127.0.0.1"
    transport.close()
    assert transport.packet_conn.sock.fileno() == -1


async def test_listen_addr_rejects_bad_input(server_tls: quic.TLSConfig) -> None:
    with pytest.raises(ValueError, match="out of range"):
        await quic.listen_addr("127.0.0.1:99999", server_tls)
    with pytest.raises(ValueError, match="no port"):
        await quic.listen_addr("127.0.0.1", server_tls)
    with pytest.raises(ValueError, match="cannot resolve"):
        await quic.listen_addr("no-such-host.invalid:443", server_tls)
    with pytest.raises(ValueError, match="cannot resolve"):
        await quic.dial_addr("no-such-host.invalid:443", quic.TLSConfig(alpn=["TEST"], verify=False))
    with pytest.raises(quic.ConfigError, match="certificate"):
        await quic.listen_addr("127.0.0.1:0", quic.TLSConfig(alpn=["TEST"]))
    with pytest.raises(quic.ConfigError, match="tls_config"):
        await quic.listen_addr("127.0.0.1:0", None)  # type: ignore[arg-type]
    with pytest.raises(quic.ConfigError, match="max_incoming_streams"):
        await quic.listen_addr("127.0.0.1:0", server_tls, quic.Config(max_incoming_streams=-1))
    with pytest.raises(ValueError, match=r"out of range 1\.\.65535"):
        await quic.dial_addr("127.0.0.1:0", quic.TLSConfig(alpn=["TEST"], verify=False))


async def test_listen_twice_on_one_transport(server_tls: quic.TLSConfig) -> None:
    async with quic.Transport("127.0.0.1:0") as transport:
        transport.listen(server_tls)
        with pytest.raises(RuntimeError, match="already running"):
            transport.listen(server_tls)


# --- stateless reset ---------------------------------------------------------------------------------


async def test_stateless_reset_for_unknown_short_header() -> None:
    key = os.urandom(32)
    tracer = RecordingTracer()
    async with quic.Transport("127.0.0.1:0", stateless_reset_key=key, tracer=tracer) as transport:
        transport._start()  # a Transport starts receiving on its first listen / dial
        peer = Peer()
        try:
            dcid = os.urandom(4)
            packet = bytes([0x40 | 0x01]) + dcid + os.urandom(95)
            peer.send(packet, transport.local_addr)
            reset = await peer.recv()
            assert reset is not None
            # RFC 9000 §10.3: short-header form, fixed bit set, ends with the token for the CID.
            assert reset[0] & 0xC0 == 0x40
            assert reset[-16:] == stateless_reset_token(key, dcid)
            # §10.3.3: smaller than the packet that triggered it; at least 21 bytes.
            assert 21 <= len(reset) < len(packet)
            assert transport.stats().stateless_resets_sent == 1
            assert ("stateless_reset", len(reset)) in tracer.sent

            # 42 bytes or less: no reset (a reset of a reset would have to be smaller still).
            peer.send(bytes([0x41]) + dcid + os.urandom(37), transport.local_addr)
            assert await peer.recv(0.2) is None
            assert transport.stats().stateless_resets_sent == 1
        finally:
            peer.close()


async def test_stateless_resets_are_rate_limited() -> None:
    async with quic.Transport("127.0.0.1:0") as transport:
        transport._start()
        peer = Peer()
        try:
            loop = asyncio.get_running_loop()
            start = loop.time()
            for _ in range(300):
                peer.send(bytes([0x41]) + os.urandom(99), transport.local_addr)
            await asyncio.sleep(0.3)
            elapsed = loop.time() - start
            # a bucket of 64, refilled at 64 per second
            assert 64 <= transport.stats().stateless_resets_sent <= 64 + 64 * elapsed + 1
        finally:
            peer.close()


# --- server drop rules, VN, Retry --------------------------------------------------------------------


@pytest.fixture
async def listener(server_tls: quic.TLSConfig) -> Any:
    tracer = RecordingTracer()
    lst = await quic.listen_addr("127.0.0.1:0", server_tls, tracer=tracer)
    lst.tracer = tracer  # type: ignore[attr-defined]
    yield lst
    lst.close()


async def test_version_negotiation(listener: Any) -> None:
    peer = Peer()
    try:
        dcid, scid = os.urandom(8), os.urandom(5)
        peer.send(initial_packet(dcid, scid, version=0x1A2A3A4A), listener.local_addr)
        vn = await peer.recv()
        assert vn is not None
        vn_dcid, vn_scid, versions = parse_version_negotiation(vn)
        # RFC 9000 §17.2.1: the CIDs are echoed swapped; the list holds what the server supports.
        assert (vn_dcid, vn_scid) == (scid, dcid)
        assert VERSION_1 in versions and VERSION_2 in versions
        assert 0x1A2A3A4A not in versions
        assert listener.stats().version_negotiations_sent == 1

        # §14.1: a datagram under 1200 bytes gets no VN packet.
        peer.send(initial_packet(dcid, scid, version=0x1A2A3A4A, size=1100), listener.local_addr)
        assert await peer.recv(0.2) is None
        await eventually(lambda: ("unknown", 1100, DropReason.UNSUPPORTED_VERSION) in listener.tracer.dropped)
    finally:
        peer.close()


async def test_version_negotiation_can_be_disabled(server_tls: quic.TLSConfig) -> None:
    async with await quic.listen_addr(
        "127.0.0.1:0", server_tls, disable_version_negotiation_packets=True
    ) as lst:
        peer = Peer()
        try:
            peer.send(initial_packet(os.urandom(8), b"", version=0x1A2A3A4A), lst.local_addr)
            assert await peer.recv(0.2) is None
        finally:
            peer.close()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: initial_packet(os.urandom(8), b"", size=1199), DropReason.TOO_SMALL),  # §14.1
        (lambda: initial_packet(os.urandom(7), b"", size=1200), DropReason.UNEXPECTED_PACKET),  # §7.2
    ],
    ids=["initial-under-1200", "dcid-under-8"],
)
async def test_initial_drop_rules(listener: Any, make: Any, reason: str) -> None:
    peer = Peer()
    try:
        packet = make()
        peer.send(packet, listener.local_addr)
        assert await peer.recv(0.2) is None
        await eventually(lambda: ("initial", len(packet), reason) in listener.tracer.dropped)
    finally:
        peer.close()


async def test_handshake_and_0rtt_for_unknown_cid_dropped(listener: Any) -> None:
    peer = Peer()
    try:
        for packet_type, name in ((PacketType.HANDSHAKE, "HANDSHAKE"), (PacketType.ZERO_RTT, "0RTT")):
            buf = bytearray()
            build_long_header(buf, VERSION_1, packet_type, os.urandom(8), os.urandom(4), b"", 1100, 0, 2)
            buf += os.urandom(1100 - 2)
            peer.send(bytes(buf), listener.local_addr)
            assert await peer.recv(0.2) is None
            entry = (name, len(buf), DropReason.UNEXPECTED_PACKET)
            await eventually(lambda entry=entry: entry in listener.tracer.dropped)
    finally:
        peer.close()


async def test_retry_forced_and_invalid_token(server_tls: quic.TLSConfig) -> None:
    async with await quic.listen_addr(
        "127.0.0.1:0", server_tls, verify_source_address=lambda addr: True
    ) as lst:
        peer = Peer()
        other = Peer()
        try:
            odcid, scid = os.urandom(8), os.urandom(4)
            peer.send(initial_packet(odcid, scid), lst.local_addr)
            retry = await peer.recv()
            assert retry is not None
            version, dcid, retry_scid, token, tag = parse_retry(retry)
            assert version == VERSION_1 and dcid == scid and token
            assert retry_scid != odcid
            # RFC 9001 §5.8: the integrity tag covers the pseudo-packet with the original DCID.
            assert retry_integrity_valid(VERSION_1, retry_pseudo_packet(odcid, retry[:-16]), tag)
            assert lst.stats().retries_sent == 1

            # The token is bound to the client's address (RFC 9000 §8.1.4): from another port it is
            # invalid, and the server answers with CONNECTION_CLOSE(INVALID_TOKEN) in an Initial.
            other.send(initial_packet(retry_scid, scid, token=token), lst.local_addr)
            close = await other.recv()
            assert close is not None
            frame = _decrypt_server_initial(close, retry_scid)
            assert isinstance(frame, ConnectionCloseFrame)
            assert frame.error_code == quic.TransportErrorCode.INVALID_TOKEN
            assert lst.stats().refused == 1

            # A token that does not even decrypt is ignored like any unknown NEW_TOKEN token:
            # the policy still demands a Retry.
            peer.send(initial_packet(os.urandom(8), scid, token=os.urandom(60)), lst.local_addr)
            again = await peer.recv()
            assert again is not None and parse_retry(again)[3]
        finally:
            peer.close()
            other.close()


def _decrypt_server_initial(packet: bytes, client_dcid: bytes) -> Any:
    header = parse_long_header(packet, 0)
    assert header.packet_type == PacketType.INITIAL
    _, open_keys = initial_keys(header.version, client_dcid, Perspective.CLIENT)
    buf = bytearray(packet)
    first, pn, pn_len = unprotect_header(open_keys, buf, header.pn_offset)
    buf[0] = first
    payload_start = header.pn_offset + pn_len
    plaintext = open_keys.open(pn, bytes(buf[:payload_start]), bytes(buf[payload_start : header.packet_end]))
    frame, _ = parse_frame(plaintext, 0)
    return frame


def zero_rtt_packet(dcid: bytes, size: int = 1200) -> bytes:
    buf = bytearray()
    header_len = long_header_length(len(dcid), 4, None, 2)
    build_long_header(
        buf, VERSION_1, PacketType.ZERO_RTT, dcid, os.urandom(4), b"", size - header_len + 2, 0, 2
    )
    buf += os.urandom(size - len(buf))
    return bytes(buf)


async def test_0rtt_before_initial_is_queued_bounded_and_expires(
    server_tls: quic.TLSConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quicsilver import server as server_module

    # a longer queue lifetime while the bounds are checked, so that a slow machine cannot expire it
    monkeypatch.setattr(server_module, "ZERO_RTT_QUEUE_TIMEOUT", 1.0)
    tracer = RecordingTracer()
    config = quic.Config(allow_0rtt=True)
    async with await quic.listen_addr_early("127.0.0.1:0", server_tls, config, tracer=tracer) as lst:
        server = lst._server
        peer = Peer()

        def dos_drops() -> int:
            return sum(1 for t, _, r in tracer.dropped if t == "0RTT" and r == DropReason.DOS_PREVENTION)

        try:
            dcid = os.urandom(8)
            for _ in range(40):
                peer.send(zero_rtt_packet(dcid), lst.local_addr)
            await eventually(lambda: dos_drops() == 9)
            # quic-go's bounds: 31 packets per queue; the rest dropped as DoS prevention
            assert len(server._zero_rtt[dcid][1]) == 31
            # at most 32 queues
            for _ in range(40):
                peer.send(zero_rtt_packet(os.urandom(8)), lst.local_addr)
            await eventually(lambda: dos_drops() == 9 + 40 - 31)
            assert len(server._zero_rtt) == 32
            # unclaimed once the queue's time is over: dropped
            await eventually(lambda: not server._zero_rtt, timeout=5.0)
            assert sum(1 for t, _, r in tracer.dropped if r == DropReason.UNKNOWN_CONNECTION_ID) >= 31
        finally:
            peer.close()


async def test_expired_retry_token_is_invalid_token(server_tls: quic.TLSConfig) -> None:
    # RFC 9000 §8.1.2 / DESIGN.md §6: Retry tokens expire; an expired one gets INVALID_TOKEN
    config = quic.Config(max_retry_token_age=0.001)
    async with await quic.listen_addr(
        "127.0.0.1:0", server_tls, config, verify_source_address=lambda addr: True
    ) as lst:
        peer = Peer()
        try:
            odcid, scid = os.urandom(8), os.urandom(4)
            peer.send(initial_packet(odcid, scid), lst.local_addr)
            retry = await peer.recv()
            assert retry is not None
            _, _, retry_scid, token, _ = parse_retry(retry)
            await asyncio.sleep(0.05)
            peer.send(initial_packet(retry_scid, scid, token=token), lst.local_addr)
            close = await peer.recv()
            assert close is not None
            frame = _decrypt_server_initial(close, retry_scid)
            assert isinstance(frame, ConnectionCloseFrame)
            assert frame.error_code == quic.TransportErrorCode.INVALID_TOKEN
        finally:
            peer.close()


class _Waiter:
    def __init__(self) -> None:
        self.woken = 0

    def on_send_room(self) -> None:
        self.woken += 1


async def test_send_queue_waits_for_writable_socket() -> None:
    rx = Peer()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        transport = quic.Transport(sock)
        try:
            transport._start()
            pconn = transport.packet_conn
            real_write = pconn.write_batch
            calls = {"n": 0}

            def eagain_once(queue: Any) -> bool:
                calls["n"] += 1
                return False if calls["n"] == 1 else real_write(queue)

            pconn.write_batch = eagain_once  # type: ignore[method-assign]
            waiter = _Waiter()
            transport.send_now(
                [(b"a", rx.sock.getsockname(), 0b10, None), (b"b", rx.sock.getsockname(), 0b10, None)]
            )
            assert len(transport._send_queue) == 2  # EAGAIN: kept, the writer callback is armed
            transport.wait_for_room(waiter)  # type: ignore[arg-type]
            assert await rx.recv() == b"a"
            assert await rx.recv() == b"b"
            assert waiter.woken == 1 and not transport._send_queue
            assert transport.stats().datagrams_sent == 2
        finally:
            transport.close()
            rx.close()


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.text(max_size=40) | st.tuples(st.text(max_size=10), st.integers()))
def test_parse_address_fuzz(addr: Any) -> None:
    # user input: either a (host, port) in range, or a ValueError that says what is wrong
    try:
        host, port = parse_address(addr)
    except ValueError as exc:
        assert str(exc)
        return
    assert 0 <= port <= 65535 and isinstance(host, str)


async def test_forged_initial_builds_no_connection(listener: Any) -> None:
    peer = Peer()
    try:
        packet = initial_packet(os.urandom(8), os.urandom(4))  # a valid header, a payload of noise
        peer.send(packet, listener.local_addr)
        assert await peer.recv(0.2) is None
        entry = ("initial", len(packet), DropReason.PAYLOAD_DECRYPT_ERROR)
        await eventually(lambda: entry in listener.tracer.dropped)
        assert not listener._server._handshaking
    finally:
        peer.close()
