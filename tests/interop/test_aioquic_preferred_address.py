"""aioquic as the client against our server offering a preferred address (RFC 9000 §9.6): aioquic
validates it after confirmation and moves there; the echo goes on over our preferred socket."""

from __future__ import annotations

import asyncio
import os

import pytest

pytest.importorskip("aioquic", reason="aioquic (the test extra) is not installed")

from aioquic.asyncio import connect

import quicsilver as quic

from .peers import our_echo_server, stream_echo
from .test_aioquic_interop import aio_client_config

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def server_tls() -> quic.TLSConfig:
    return quic.TLSConfig.self_signed(alpn=["TEST"])


async def test_aioquic_client_moves_to_our_preferred_address(server_tls: quic.TLSConfig) -> None:
    async with (
        asyncio.timeout(20),
        our_echo_server(server_tls, preferred_addr="127.0.0.1:0") as (listener, _),
        connect("127.0.0.1", listener.local_addr[1], configuration=aio_client_config()) as client,
    ):
        preferred = listener.preferred_transport
        assert preferred is not None
        port = preferred.local_addr[1]
        assert port != listener.local_addr[1]
        assert await stream_echo(client, b"before") == b"before"

        def on_preferred() -> bool:
            # aioquic's dual-stack socket names IPv4 peers v4-mapped: ('::ffff:127.0.0.1', port, 0, 0)
            host, peer_port = client._quic._network_paths[0].addr[:2]
            return peer_port == port and host in ("127.0.0.1", "::ffff:127.0.0.1")

        for _ in range(300):  # aioquic switches once the path to the preferred address validates
            if on_preferred():
                break
            await asyncio.sleep(0.01)
        assert on_preferred()
        payload = os.urandom(300_000)
        assert await stream_echo(client, payload) == payload
        assert preferred.stats().datagrams_received > 50 and preferred.stats().datagrams_sent > 50
