"""A UDP relay for loopback tests: a NAT between one client and one server.

The client sends to the relay's address; the relay forwards each datagram to the server from its own
upstream socket and sends the server's answers back to the client. ``rebind()`` replaces the
upstream socket with a fresh one (a new source port, as a NAT rebinding does) and closes the old
one, so the server's datagrams to the old port are lost from then on. Only loopback addresses are
accepted, and the relay closes itself after ``lifetime`` seconds whatever the test does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

__all__ = ["UDPRelay"]

Address = tuple[Any, ...]


def _require_loopback(host: str) -> None:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the test relay works on loopback addresses only, not {host!r}")


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Any) -> None:
        self._on_datagram = on_datagram
        self.transport: Any = None  # asyncio's or uvloop's UDP transport (not a DatagramTransport subclass)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._on_datagram(self, data, addr)

    def error_received(self, exc: Exception) -> None:
        """ICMP errors (an old port is gone) are what a NAT would swallow too."""


class UDPRelay:
    """``async with UDPRelay(server_addr) as relay:`` dial ``relay.address``; ``await relay.rebind()``."""

    def __init__(self, server_addr: Address, *, lifetime: float = 60.0) -> None:
        host = str(server_addr[0])
        _require_loopback(host)
        self.server_addr: Address = (host, int(server_addr[1]))
        self._family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._lifetime = lifetime
        self._downstream: _Endpoint | None = None
        self._upstream: _Endpoint | None = None
        self._client: Address | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self.upstream_ports: list[int] = []
        """Every source port used towards the server, in order."""
        self.to_server = 0
        self.to_client = 0

    @property
    def address(self) -> Address:
        assert self._downstream is not None and self._downstream.transport is not None
        return tuple(self._downstream.transport.get_extra_info("sockname"))[:2]

    @property
    def url(self) -> str:
        host, port = self.address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def _endpoint(self) -> _Endpoint:
        loop = asyncio.get_running_loop()
        host = self.server_addr[0]
        _, protocol = await loop.create_datagram_endpoint(
            lambda: _Endpoint(self._on_datagram), local_addr=(host, 0), family=self._family
        )
        return protocol

    async def start(self) -> None:
        self._downstream = await self._endpoint()
        await self.rebind()
        self._expiry = asyncio.get_running_loop().call_later(self._lifetime, self.close)

    async def rebind(self) -> int:
        """Forward from a new source port from now on; the old port stops existing. Returns the port."""
        old = self._upstream
        self._upstream = await self._endpoint()
        assert self._upstream.transport is not None
        port = int(self._upstream.transport.get_extra_info("sockname")[1])
        self.upstream_ports.append(port)
        if old is not None and old.transport is not None:
            old.transport.close()
        return port

    def _on_datagram(self, endpoint: _Endpoint, data: bytes, addr: Address) -> None:
        if endpoint is self._downstream:
            self._client = addr
            upstream = self._upstream
            if upstream is not None and upstream.transport is not None:
                self.to_server += 1
                upstream.transport.sendto(data, self.server_addr)
        elif endpoint is self._upstream:
            down = self._downstream
            if self._client is not None and down is not None and down.transport is not None:
                self.to_client += 1
                down.transport.sendto(data, self._client)

    def close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        for endpoint in (self._downstream, self._upstream):
            if endpoint is not None and endpoint.transport is not None:
                endpoint.transport.close()
        self._downstream = self._upstream = None

    async def __aenter__(self) -> UDPRelay:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
