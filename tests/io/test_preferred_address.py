"""Server preferred address (RFC 9000 §9.6) over real loopback sockets, through the public API:
``listen_addr(..., preferred_addr=...)`` (a second socket the listener owns), ``Transport.listen(...,
preferred=transport)`` and ``Config.preferred_address`` (the address advertised, e.g. behind a NAT).
The client moves after confirmation and the transfer goes on over the preferred socket."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import pytest

import quicsilver as quic

from .test_keyupdate_migration import HOSTS
from .test_loopback import client_tls, echo_server, roundtrip, url
from .udp_relay import UDPRelay


@pytest.fixture(scope="module")
def tls() -> quic.TLSConfig:
    return quic.TLSConfig.self_signed(alpn=["TEST"])


def advertised(conn: quic.Connection) -> tuple[Any, Any]:
    """(IPv4, IPv6) of the preferred_address transport parameter the client received (§18.2)."""
    params = conn._core._peer_params
    assert params is not None and params.preferred_address is not None
    return params.preferred_address.ipv4_address, params.preferred_address.ipv6_address


async def wait_for_peer(conn: quic.Connection, target: tuple[Any, ...]) -> None:
    """Until the client's active path leads to ``target`` (RFC 9000 §9.6.1: once validated)."""
    for _ in range(300):
        if conn._core._peer_addr == target:
            return
        await asyncio.sleep(0.01)
    assert conn._core._peer_addr == target


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def can_bind(host: str, port: int) -> bool:
    """Whether (host, port) is free: a socket left open by a failed listen would hold it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize("host", HOSTS)
async def test_listen_addr_preferred_addr_moves_the_client_to_the_owned_socket(
    tls: quic.TLSConfig, host: str
) -> None:
    bind = f"[{host}]:0" if ":" in host else f"{host}:0"
    async with asyncio.timeout(20):
        listener = await quic.listen_addr(bind, tls, preferred_addr=bind)
        preferred = listener.preferred_transport
        assert preferred is not None and preferred is not listener.transport
        task = asyncio.create_task(echo_server(listener))
        try:
            conn = await quic.dial_addr(url(listener, host), client_tls())
            # Advertised as bound, in its own family only.
            port = preferred.local_addr[1]
            assert advertised(conn) == (((host, port), None) if ":" not in host else (None, (host, port)))
            assert await roundtrip(conn, b"before") == b"before"  # the handshake is confirmed by now
            target = tuple(preferred.local_addr)  # (host, port), or (host, port, 0, 0) for IPv6
            await wait_for_peer(conn, target)
            payload = os.urandom(400_000)
            assert await roundtrip(conn, payload) == payload  # over the preferred address
            assert preferred.stats().datagrams_received > 100
            assert preferred.stats().datagrams_sent > 100  # the server answers from that socket
            conn.close()
        finally:
            listener.close()
            await task
    # The listener owned the preferred socket: closing it released both.
    assert listener.transport.closed and preferred.closed
    assert preferred.packet_conn.fileno() == -1


async def test_listen_addr_early_offers_the_preferred_address_too(tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(20):
        listener = await quic.listen_addr_early("127.0.0.1:0", tls, preferred_addr=("127.0.0.1", 0))
        assert isinstance(listener, quic.EarlyListener)
        preferred = listener.preferred_transport
        assert preferred is not None
        task = asyncio.create_task(echo_server(listener))
        try:
            conn = await quic.dial_addr(url(listener), client_tls())
            assert await roundtrip(conn, b"x" * 1000) == b"x" * 1000
            await wait_for_peer(conn, tuple(preferred.local_addr))
            assert await roundtrip(conn, b"after") == b"after"
            conn.close()
        finally:
            listener.close()
            await task
    assert preferred.closed


async def test_config_preferred_address_overrides_the_advertised_address_behind_a_nat(
    tls: quic.TLSConfig,
) -> None:
    # The preferred socket is reachable only through a relay (a NAT): Config.preferred_address
    # advertises the relay's address, and the client moving there reaches the preferred socket.
    main, preferred = quic.Transport("127.0.0.1:0"), quic.Transport("127.0.0.1:0")
    try:
        async with asyncio.timeout(20), UDPRelay(preferred.local_addr, lifetime=30) as relay:
            relay_host, relay_port = relay.address
            config = quic.Config(preferred_address=f"{relay_host}:{relay_port}")
            listener = main.listen(tls, config, preferred=preferred)
            assert listener.preferred_transport is preferred
            task = asyncio.create_task(echo_server(listener))
            try:
                conn = await quic.dial_addr(url(listener), client_tls())
                assert advertised(conn) == ((relay_host, relay_port), None)
                assert relay_port != preferred.local_addr[1]
                assert await roundtrip(conn, b"before") == b"before"
                await wait_for_peer(conn, (relay_host, relay_port))
                payload = os.urandom(200_000)
                assert await roundtrip(conn, payload) == payload
                assert relay.to_server > 50 and relay.to_client > 50
                assert preferred.stats().datagrams_received >= relay.to_server - 5
                conn.close()
            finally:
                listener.close()
                await task
        # Not owned by the listener: the application closes it.
        assert not preferred.closed
    finally:
        main.close()
        preferred.close()


def _loopback_alias_works() -> bool:
    return can_bind("127.0.0.2", 0)


@pytest.mark.skipif(
    not _loopback_alias_works(), reason="127.0.0.2 is not a loopback address here (not Linux)"
)
async def test_a_wildcard_preferred_socket_with_config_preferred_address_answers_from_it(
    tls: quic.TLSConfig,
) -> None:
    # Bound to 0.0.0.0, advertised as 127.0.0.2: answers must leave from 127.0.0.2 (the address the
    # client validates, RFC 9000 §9.6.1), not from whatever source the kernel would pick.
    main, preferred = quic.Transport("127.0.0.1:0"), quic.Transport("0.0.0.0:0")
    try:
        port = preferred.local_addr[1]
        config = quic.Config(preferred_address=f"127.0.0.2:{port}")
        async with asyncio.timeout(20), main.listen(tls, config, preferred=preferred) as listener:
            task = asyncio.create_task(echo_server(listener))
            try:
                conn = await quic.dial_addr(url(listener), client_tls())
                assert advertised(conn) == (("127.0.0.2", port), None)
                assert await roundtrip(conn, b"before") == b"before"
                await wait_for_peer(conn, ("127.0.0.2", port))
                payload = os.urandom(200_000)
                assert await roundtrip(conn, payload) == payload
                assert preferred.stats().datagrams_sent > 50
                conn.close()
            finally:
                listener.close()
                await task
    finally:
        main.close()
        preferred.close()


async def test_a_client_told_to_ignore_it_stays_on_the_original_address(tls: quic.TLSConfig) -> None:
    async with asyncio.timeout(20):
        listener = await quic.listen_addr("127.0.0.1:0", tls, preferred_addr="127.0.0.1:0")
        preferred = listener.preferred_transport
        assert preferred is not None
        task = asyncio.create_task(echo_server(listener))
        try:
            conn = await quic.dial_addr(
                url(listener), client_tls(), quic.Config(ignore_preferred_address=True)
            )
            assert advertised(conn)[0] == ("127.0.0.1", preferred.local_addr[1])  # offered, not taken
            payload = os.urandom(100_000)
            assert await roundtrip(conn, payload) == payload
            assert conn.remote_addr[1] == listener.local_addr[1]
            assert preferred.stats().datagrams_received == 0
            conn.close()
        finally:
            listener.close()
            await task


# --- refused at the listen call ----------------------------------------------------------------------


async def test_a_wildcard_preferred_transport_without_config_preferred_address_is_refused(
    tls: quic.TLSConfig,
) -> None:
    main, preferred = quic.Transport("127.0.0.1:0"), quic.Transport("0.0.0.0:0")
    try:
        with pytest.raises(
            quic.ConfigError, match=r"wildcard address 0\.0\.0\.0.*bind it to a specific"
        ) as info:
            main.listen(tls, preferred=preferred)
        assert "Config.preferred_address" in str(info.value)
        # Nothing half-registered: the Transport can still listen.
        main.listen(tls).close()
    finally:
        main.close()
        preferred.close()


async def test_listen_addr_with_a_wildcard_preferred_addr_fails_and_leaks_no_socket(
    tls: quic.TLSConfig,
) -> None:
    port, preferred_port = free_port(), free_port()
    with pytest.raises(quic.ConfigError, match="wildcard address"):
        await quic.listen_addr(f"127.0.0.1:{port}", tls, preferred_addr=f"0.0.0.0:{preferred_port}")
    assert can_bind("127.0.0.1", port) and can_bind("0.0.0.0", preferred_port)


async def test_listen_addr_with_an_unbindable_preferred_addr_closes_the_listener_socket(
    tls: quic.TLSConfig,
) -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        with pytest.raises(OSError):
            await quic.listen_addr(f"127.0.0.1:{port}", tls, preferred_addr=taken.getsockname())
    assert can_bind("127.0.0.1", port)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda main: main, r"not the listener's own Transport", id="own-transport"),
        pytest.param(lambda main: _closed(quic.Transport("127.0.0.1:0")), r"is closed", id="closed"),
        pytest.param(
            lambda main: quic.Transport("127.0.0.1:0", connection_id_length=8),
            r"8-byte connection IDs and the listener's 4-byte ones; .*same connection_id_length",
            id="cid-length",
        ),
    ],
)
async def test_a_preferred_transport_that_cannot_serve_is_refused(
    tls: quic.TLSConfig, make: Any, message: str
) -> None:
    main = quic.Transport("127.0.0.1:0")
    preferred: quic.Transport = make(main)
    try:
        with pytest.raises(ValueError, match=message):
            main.listen(tls, preferred=preferred)
        with pytest.raises(ValueError, match=message):
            main.listen_early(tls, preferred=preferred)
    finally:
        main.close()
        preferred.close()


async def test_another_listeners_single_use_transport_is_refused_as_preferred(tls: quic.TLSConfig) -> None:
    # It closes itself with its own listener, which would silently cut our clients' preferred path.
    main = quic.Transport("127.0.0.1:0")
    try:
        async with await quic.listen_addr("127.0.0.1:0", tls) as other:
            with pytest.raises(ValueError, match="closes itself with its own listener"):
                main.listen(tls, preferred=other.transport)
    finally:
        main.close()


def _closed(transport: quic.Transport) -> quic.Transport:
    transport.close()
    return transport


async def test_zero_length_connection_ids_cannot_offer_a_preferred_address(tls: quic.TLSConfig) -> None:
    # RFC 9000 §18.2: "A server that chooses a zero-length connection ID MUST NOT provide a preferred
    # address." Refused at the listen call, whichever way the address is given, and nothing stays bound.
    port = free_port()
    with pytest.raises(quic.ConfigError, match=r"zero-length connection IDs .*§18\.2"):
        await quic.listen_addr(f"127.0.0.1:{port}", tls, preferred_addr="127.0.0.1:0", connection_id_length=0)
    config = quic.Config(preferred_address="127.0.0.1:4433")
    with pytest.raises(quic.ConfigError, match=r"preferred_address: .*zero-length connection IDs"):
        await quic.listen_addr(f"127.0.0.1:{port}", tls, config, connection_id_length=0)
    assert can_bind("127.0.0.1", port)


async def test_a_bad_config_preferred_address_is_refused_at_listen(tls: quic.TLSConfig) -> None:
    with pytest.raises(quic.ConfigError, match=r"preferred_address: .*not a literal IP address"):
        await quic.listen_addr("127.0.0.1:0", tls, quic.Config(preferred_address="example.com:443"))
