"""dial_addr's socket made ahead of need (issue 9): once a dial's ClientHello is out, the next default
dial's Transport is made and kept for a while; the next dial takes it only if it still fits (same
process, same event loop, same socket environment, not expired), and a dial with its own transport
options neither takes nor makes one."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

import quicsilver as quic
from quicsilver import client as client_module


@pytest.fixture(scope="module")
def server_tls() -> quic.TLSConfig:
    return quic.TLSConfig.self_signed(alpn=["TEST"])


@pytest.fixture
async def listener(server_tls: quic.TLSConfig) -> AsyncIterator[quic.Listener]:
    client_module._close_spare_transports()  # a spare of an earlier test's event loop
    listener = await quic.listen_addr(("127.0.0.1", 0), server_tls)
    yield listener
    listener.close()
    client_module._close_spare_transports()


def client_tls() -> quic.TLSConfig:
    return quic.TLSConfig(alpn=["TEST"], verify=False)


def address(listener: quic.Listener) -> str:
    return f"127.0.0.1:{listener.local_addr[1]}"


def spare() -> quic.Transport | None:
    entry = client_module._spare_transports.get(socket.AF_INET)
    return None if entry is None else entry.transport


async def dial(listener: quic.Listener, **options: bool) -> quic.Connection:
    return await asyncio.wait_for(quic.dial_addr(address(listener), client_tls(), **options), 10)


async def test_the_next_dial_takes_the_socket_made_during_the_previous_one(listener: quic.Listener) -> None:
    assert spare() is None
    first = await dial(listener)
    made = spare()
    assert made is not None and not made.closed and made is not first.transport
    second = await dial(listener)
    assert second.transport is made  # taken, so its Transport closes with the connection
    replacement = spare()
    assert replacement is not None and replacement is not made
    for conn in (first, second):
        conn.close()
        await conn.wait_closed()
    await asyncio.sleep(0)
    assert made.closed and first.transport.closed
    assert not replacement.closed  # still waiting for the next dial


async def test_a_spare_made_in_another_socket_environment_is_closed_not_used(
    listener: quic.Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await dial(listener)
    made = spare()
    assert made is not None
    monkeypatch.setenv("QUICSILVER_DISABLE_GSO", "1")  # wrap_conn would prepare a socket otherwise
    second = await dial(listener)
    assert second.transport is not made and made.closed
    assert not second.transport.packet_conn.caps.gso
    for conn in (first, second):
        conn.close()


async def test_a_spare_nobody_takes_is_closed_after_its_lifetime(
    listener: quic.Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "SPARE_TRANSPORT_LIFETIME", 0.05)
    conn = await dial(listener)
    made = spare()
    assert made is not None
    await asyncio.sleep(0.2)
    assert made.closed and spare() is None
    conn.close()


async def test_a_dial_with_its_own_transport_options_neither_takes_nor_makes_a_spare(
    listener: quic.Listener,
) -> None:
    conn = await dial(listener, gso=False)
    assert spare() is None
    first = await dial(listener)
    made = spare()
    other = await dial(listener, ecn=False)
    assert other.transport is not made and spare() is made and not made.closed
    for c in (conn, first, other):
        c.close()
