"""Server preferred address (RFC 9000 §9.6) over real loopback sockets: the server listens on
127.0.0.1 and offers a second Transport of the same process (another port) as its preferred
address; the client moves there after confirmation and the transfer goes on over it."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace

import pytest

import quicsilver as quic

from .test_keyupdate_migration import HOSTS
from .test_loopback import client_tls, echo_server, roundtrip, url


@pytest.fixture(scope="module")
def tls() -> quic.TLSConfig:
    return quic.TLSConfig.self_signed(alpn=["TEST"])


@pytest.mark.parametrize("host", HOSTS)
async def test_client_moves_to_the_preferred_address_on_loopback(tls: quic.TLSConfig, host: str) -> None:
    bind = f"[{host}]:0" if ":" in host else f"{host}:0"
    preferred = quic.Transport(bind)
    try:
        config = quic.Config(extra={"preferred_transport": preferred})
        async with asyncio.timeout(20), await quic.listen_addr(bind, tls, config) as listener:
            task = asyncio.create_task(echo_server(listener))
            try:
                conn = await quic.dial_addr(url(listener, host), client_tls())
                assert await roundtrip(conn, b"before") == b"before"  # the handshake is confirmed by now
                target = tuple(preferred.local_addr)  # (host, port), or (host, port, 0, 0) for IPv6
                for _ in range(300):
                    if conn._core._peer_addr == target:  # the active path's address (RFC 9000 §9.6.1)
                        break
                    await asyncio.sleep(0.01)
                assert conn._core._peer_addr == target
                payload = os.urandom(400_000)
                assert await roundtrip(conn, payload) == payload  # over the preferred address
                assert preferred.stats().datagrams_received > 100
                assert preferred.stats().datagrams_sent > 100  # the server answers from that socket
                conn.close()
            finally:
                listener.close()
                await task
    finally:
        preferred.close()


async def test_a_client_told_to_ignore_it_stays_on_the_original_address(tls: quic.TLSConfig) -> None:
    preferred = quic.Transport("127.0.0.1:0")
    try:
        config = quic.Config(extra={"preferred_transport": preferred})
        async with asyncio.timeout(20), await quic.listen_addr("127.0.0.1:0", tls, config) as listener:
            task = asyncio.create_task(echo_server(listener))
            try:
                client_config = replace(quic.Config(), extra={"ignore_preferred_address": True})
                conn = await quic.dial_addr(url(listener), client_tls(), client_config)
                payload = os.urandom(100_000)
                assert await roundtrip(conn, payload) == payload
                assert conn.remote_addr[1] == listener.local_addr[1]
                assert preferred.stats().datagrams_received == 0
                conn.close()
            finally:
                listener.close()
                await task
    finally:
        preferred.close()
