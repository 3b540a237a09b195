"""One Transport per local address in a process (quic-go's ``connMultiplexer``).

Two Transports reading the same socket would steal each other's packets: every datagram is
consumed by exactly one ``recvmsg``. quic-go panics when it sees the same local address twice;
quicsilver raises :class:`~quicsilver.errors.AddressInUseError` naming the address, at the call
that tried.
"""

from __future__ import annotations

import socket
from typing import Any

from .errors import AddressInUseError

__all__ = ["format_address", "register", "registered", "unregister"]

_transports: dict[tuple[int, str, int], object] = {}


def _key(family: int, addr: tuple[Any, ...]) -> tuple[int, str, int]:
    return (family, str(addr[0]), int(addr[1]))


def format_address(addr: tuple[Any, ...]) -> str:
    """``host:port``, with brackets around an IPv6 host."""
    host = str(addr[0])
    return f"[{host}]:{addr[1]}" if ":" in host else f"{host}:{addr[1]}"


def register(sock: socket.socket, owner: object) -> None:
    """Claim ``sock``'s local address for ``owner``; AddressInUseError if another owner has it."""
    key = _key(sock.family, sock.getsockname())
    current = _transports.get(key)
    if current is not None and current is not owner:
        raise AddressInUseError(format_address(sock.getsockname()))
    _transports[key] = owner


def unregister(sock: socket.socket, owner: object) -> None:
    """Release the address claimed by ``owner`` (no-op if it holds none); call before closing ``sock``."""
    try:
        key = _key(sock.family, sock.getsockname())
    except OSError:
        # the socket is already closed: find the owner's entry by identity
        for k, v in list(_transports.items()):
            if v is owner:
                del _transports[k]
        return
    if _transports.get(key) is owner:
        del _transports[key]


def registered() -> int:
    """How many local addresses have a Transport (for tests and diagnostics)."""
    return len(_transports)
