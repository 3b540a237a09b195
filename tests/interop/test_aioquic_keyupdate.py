"""Key update interop with aioquic (RFC 9001 §6), both directions over loopback: our side initiates an
update every few dozen packets while aioquic calls ``request_key_update()`` on its side; the echoed
transfer is byte-identical and both kinds of update happened.

aioquic's ``request_key_update()`` does not itself wait for an acknowledgment of the current phase
(RFC 9001 §6.5); its side here asks for a new update only after it has received another 100 KB, by
which time our packets of the current phase have long been acknowledged.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from typing import Any

import pytest
from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent, StreamDataReceived
from aioquic.tls import CipherSuite as AioCipherSuite

import quicsilver as quic
from quicsilver.protocol import Perspective
from quicsilver.qlog.tracer import ConnectionTracer, DropReason

pytestmark = pytest.mark.interop

UPDATE_EVERY = 100_000
"""Bytes aioquic receives between two of its key update requests."""


class KeyTracer(ConnectionTracer):
    def __init__(self) -> None:
        self.local_key_updates = 0
        self.drops: Counter[tuple[str, str]] = Counter()

    def updated_key(self, generation: int, remote: bool) -> None:
        if not remote:
            self.local_key_updates += 1

    def dropped_packet(self, packet_type: str, pn: int | None, size: int, reason: str) -> None:
        self.drops[(packet_type, reason)] += 1


def our_config(tracers: list[KeyTracer]) -> quic.Config:
    def factory(perspective: Perspective, odcid: bytes) -> KeyTracer:
        tracers.append(KeyTracer())
        return tracers[-1]

    # Our side initiates an update every 50 packets (the first after 10): often, yet seldom enough that
    # most of aioquic's requests do not coincide with one of ours (simultaneous updates merge into one
    # phase, RFC 9001 §6.5).
    return quic.Config(first_key_update_interval=10, key_update_interval=50, tracer=factory)


class KeyUpdatingPeer(QuicConnectionProtocol):
    """aioquic's side: echoes (as a server) or collects (as a client) stream data, and requests a key
    update each time another ``UPDATE_EVERY`` bytes arrived."""

    echo = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.since_update = 0
        self.updates_requested = 0
        self.received = bytearray()
        self.finished = asyncio.get_running_loop().create_future()
        self.error: Any = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived):
            self.since_update += len(event.data)
            if self.echo:
                self._quic.send_stream_data(event.stream_id, event.data, end_stream=event.end_stream)
            else:
                self.received += event.data
                if event.end_stream and not self.finished.done():
                    self.finished.set_result(None)
            if self.since_update >= UPDATE_EVERY:
                self.since_update = 0
                self.updates_requested += 1
                self._quic.request_key_update()
            self.transmit()
        elif isinstance(event, ConnectionTerminated):
            self.error = event
            if not self.finished.done():
                self.finished.set_result(None)


class KeyUpdatingClient(KeyUpdatingPeer):
    echo = False


@pytest.fixture(scope="module")
def server_tls() -> quic.TLSConfig:
    return quic.TLSConfig.self_signed(alpn=["TEST"])


def check_updates(ours: KeyTracer, key_phase: int, theirs: int) -> None:
    assert ours.local_key_updates >= 2, ours.local_key_updates
    assert theirs >= 5, theirs
    # Every phase change on our side was our initiation or our answer to aioquic's (RFC 9001 §6.2); an
    # update of each side at the same time makes one phase. Most of aioquic's updates were answered.
    followed = key_phase - ours.local_key_updates
    assert followed >= theirs // 4, (key_phase, ours.local_key_updates, theirs)
    assert ours.drops[("ONE_RTT", DropReason.PAYLOAD_DECRYPT_ERROR)] == 0, ours.drops


@pytest.mark.parametrize(
    "suite",
    [
        AioCipherSuite.AES_128_GCM_SHA256,
        AioCipherSuite.AES_256_GCM_SHA384,
        AioCipherSuite.CHACHA20_POLY1305_SHA256,
    ],
    ids=["aes128gcm", "aes256gcm-sha384", "chacha20"],
)
async def test_our_client_aioquic_server_key_updates_both_ways(
    server_tls: quic.TLSConfig, suite: AioCipherSuite
) -> None:
    peers: list[KeyUpdatingPeer] = []

    def make_peer(*args: Any, **kwargs: Any) -> KeyUpdatingPeer:
        peers.append(KeyUpdatingPeer(*args, **kwargs))
        return peers[-1]

    # RFC 9001 §6.1: the next generation's secret is HKDF-Expand-Label(secret, "quic ku") with the
    # suite's hash; aioquic derives it independently for each suite.
    config = QuicConfiguration(is_client=False, alpn_protocols=["TEST"], cipher_suites=[suite])
    config.certificate = server_tls.certificate_chain[0]
    config.private_key = server_tls.private_key
    server = await serve("127.0.0.1", 0, configuration=config, create_protocol=make_peer)
    port = int(server._transport.get_extra_info("sockname")[1])
    tracers: list[KeyTracer] = []
    try:
        async with asyncio.timeout(60):
            conn = await quic.dial_addr(
                f"127.0.0.1:{port}", quic.TLSConfig(alpn=["TEST"], verify=False), our_config(tracers)
            )
            payload = os.urandom(3_000_000)
            stream = await conn.open_stream_sync()
            reader = asyncio.create_task(stream.read())
            view = memoryview(payload)
            for i in range(0, len(payload), 65536):
                await stream.write(view[i : i + 65536])
            await stream.close()
            assert await reader == payload
            key_phase = conn.stats()["key_phase"]
            assert int(conn._core._packer.one_rtt.send_keys.suite) == int(suite)
            conn.close()
            await conn.wait_closed()
    finally:
        server.close()
    (peer,) = peers
    assert peer.error is None or peer.error.error_code == 0, peer.error
    check_updates(tracers[0], key_phase, peer.updates_requested)


async def test_aioquic_client_our_server_key_updates_both_ways(server_tls: quic.TLSConfig) -> None:
    tracers: list[KeyTracer] = []
    listener = await quic.listen_addr(("127.0.0.1", 0), server_tls, our_config(tracers))
    served: list[quic.Connection] = []

    async def echo(stream: quic.Stream) -> None:
        try:
            async for chunk in stream:
                await stream.write(chunk)
            await stream.close()
        except quic.QuicError:
            pass  # the client may close before our FIN was acknowledged

    async def accept() -> None:
        async for conn in listener:
            served.append(conn)
            await echo(await conn.accept_stream())

    server_task = asyncio.create_task(accept())
    config = QuicConfiguration(is_client=True, alpn_protocols=["TEST"], verify_mode=False)
    try:
        async with (
            asyncio.timeout(60),
            connect(
                "127.0.0.1", listener.local_addr[1], configuration=config, create_protocol=KeyUpdatingClient
            ) as client,
        ):
            assert isinstance(client, KeyUpdatingClient)
            payload = os.urandom(3_000_000)
            stream_id = client._quic.get_next_available_stream_id()
            client._quic.send_stream_data(stream_id, payload, end_stream=True)
            client.transmit()
            await client.finished
            assert client.error is None, client.error
            assert bytes(client.received) == payload
            key_phase = served[0].stats()["key_phase"]
    finally:
        listener.close()
        await asyncio.wait_for(server_task, 5)
    check_updates(tracers[0], key_phase, client.updates_requested)
