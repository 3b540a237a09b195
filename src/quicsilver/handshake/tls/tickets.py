"""Session tickets: what a client keeps, and what a server seals into the ticket it issues.

RFC 8446 §4.6.1 (NewSessionTicket, ticket lifetime at most 7 days, ticket_age_add), §4.2.11
(resumption PSK), §8 (0-RTT freshness); RFC 9001 §4.6 (0-RTT in QUIC, max_early_data_size
0xffffffff); RFC 9000 §7.4.1 (the transport parameters a client remembers for 0-RTT).

A server keeps no per-ticket state: the ticket is the resumption state sealed with AES-GCM under the
server's ticket key (:class:`TicketProtector`), so any process holding the key can resume it.
"""

from __future__ import annotations

import os
import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ...errors import TransportError
from ..protection import CipherSuite
from .messages import Reader

__all__ = [
    "EARLY_DATA_WINDOW",
    "MAX_TICKET_LIFETIME",
    "QUIC_MAX_EARLY_DATA",
    "EarlyDataReplayFilter",
    "MemorySessionTicketStore",
    "ServerTicketState",
    "SessionTicket",
    "SessionTicketStore",
    "TicketProtector",
]

MAX_TICKET_LIFETIME = 604800  # RFC 8446 §4.6.1: "Servers MUST NOT use any value greater than 604800 seconds"
QUIC_MAX_EARLY_DATA = 0xFFFFFFFF  # RFC 9001 §4.6.1: the only max_early_data_size allowed in QUIC


@dataclass(frozen=True, slots=True)
class SessionTicket:
    """A ticket as a client stores it (RFC 8446 §4.6.1).

    ``received_at`` is the monotonic time (seconds) of receipt; ``resumption_secret`` the PSK;
    ``transport_parameters`` the server's encoded transport parameters of the connection that
    issued the ticket, which RFC 9000 §7.4.1 makes the client remember for 0-RTT.
    """

    ticket: bytes
    resumption_secret: bytes
    suite: CipherSuite
    alpn: str
    server_name: str | None
    age_add: int
    lifetime: int
    max_early_data: int
    received_at: float
    transport_parameters: bytes

    def is_expired(self, now: float) -> bool:
        return now - self.received_at >= self.lifetime

    def obfuscated_age(self, now: float) -> int:
        """obfuscated_ticket_age: the age in milliseconds plus age_add, modulo 2^32 (RFC 8446 §4.2.11.1)."""
        return (int((now - self.received_at) * 1000) + self.age_add) & 0xFFFFFFFF


class SessionTicketStore(Protocol):
    """Where a client keeps tickets, by server name (quic-go/Go's ClientSessionCache)."""

    def put(self, server_name: str, ticket: SessionTicket) -> None: ...

    def pop(self, server_name: str, now: float) -> SessionTicket | None:
        """The newest unexpired ticket for ``server_name``, removed: tickets are single-use
        (RFC 8446 §C.4: "Clients SHOULD NOT reuse a ticket for multiple connections")."""


class MemorySessionTicketStore:
    """An in-memory LRU ticket store: up to ``max_servers`` servers, ``per_server`` tickets each."""

    def __init__(self, max_servers: int = 64, per_server: int = 4) -> None:
        self._max_servers = max_servers
        self._per_server = per_server
        self._tickets: OrderedDict[str, list[SessionTicket]] = OrderedDict()

    def put(self, server_name: str, ticket: SessionTicket) -> None:
        tickets = self._tickets.setdefault(server_name, [])
        self._tickets.move_to_end(server_name)
        tickets.append(ticket)
        if len(tickets) > self._per_server:
            del tickets[0]
        if len(self._tickets) > self._max_servers:
            self._tickets.popitem(last=False)

    def pop(self, server_name: str, now: float) -> SessionTicket | None:
        tickets = self._tickets.get(server_name)
        while tickets:
            ticket = tickets.pop()
            if not ticket.is_expired(now):
                return ticket
        return None

    def __len__(self) -> int:
        return sum(len(t) for t in self._tickets.values())


@dataclass(frozen=True, slots=True)
class ServerTicketState:
    """What a server seals into a ticket: enough to resume and to decide on 0-RTT."""

    suite: CipherSuite
    psk: bytes
    alpn: str
    server_name: str
    created_at: float
    age_add: int
    lifetime: int
    max_early_data: int
    app_data: bytes

    def encode(self) -> bytes:
        alpn = self.alpn.encode()
        name = self.server_name.encode()
        return b"".join(
            (
                struct.pack(
                    "!BHdIII",
                    1,
                    self.suite,
                    self.created_at,
                    self.age_add,
                    self.lifetime,
                    self.max_early_data,
                ),
                bytes((len(self.psk),)),
                self.psk,
                bytes((len(alpn),)),
                alpn,
                struct.pack("!H", len(name)),
                name,
                struct.pack("!I", len(self.app_data)),
                self.app_data,
            )
        )

    @classmethod
    def decode(cls, data: bytes) -> ServerTicketState | None:
        """The state, or None for anything that is not a state this code wrote."""
        try:
            r = Reader(data)
            if r.u8() != 1:
                return None
            suite = r.u16()
            (created_at,) = struct.unpack("!d", r.raw(8))
            age_add, lifetime, max_early_data = r.u32(), r.u32(), r.u32()
            psk = r.vector(1)
            alpn = r.vector(1).decode()
            name = r.vector(2).decode()
            app_data = r.raw(r.u32())
            r.finish()
            return cls(
                CipherSuite(suite), psk, alpn, name, created_at, age_add, lifetime, max_early_data, app_data
            )
        except (TransportError, ValueError, struct.error):  # a ticket that does not decode is ignored
            return None


class TicketProtector:
    """Seals and opens ticket states with AES-GCM under the server's ticket key (16, 24 or 32 bytes)."""

    __slots__ = ("_aead",)

    _AAD = b"quicsilver session ticket v1"

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, state: ServerTicketState) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, state.encode(), self._AAD)

    def open(self, ticket: bytes) -> ServerTicketState | None:
        """The state sealed in ``ticket``; None for a forged, damaged or foreign ticket."""
        if len(ticket) < 12 + 16:
            return None
        try:
            plain = self._aead.decrypt(ticket[:12], ticket[12:], self._AAD)
        except InvalidTag:
            return None
        return ServerTicketState.decode(plain)


EARLY_DATA_WINDOW = 10.0  # seconds: 0-RTT is accepted only when the ticket ages agree this closely


class EarlyDataReplayFilter:
    """Single-use 0-RTT within the freshness window: RFC 8446 §8.2 "ClientHello recording".

    A server accepts 0-RTT only if the ticket age the client claims agrees with the ticket's real age
    to within ``EARLY_DATA_WINDOW`` (RFC 8446 §8.3), so a replayed ClientHello can only be accepted
    within that window; remembering every accepted ClientHello (by its PSK binder, which covers the
    whole hello) for the window makes each one acceptable once. The memory is bounded: when full,
    0-RTT is refused (the handshake itself goes on). Per process: servers sharing a ticket key across
    machines do not share this record.
    """

    __slots__ = ("_max_entries", "_seen", "_window")

    def __init__(self, window: float = EARLY_DATA_WINDOW, max_entries: int = 100_000) -> None:
        self._window = window
        self._max_entries = max_entries
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def first_use(self, binder: bytes, now: float) -> bool:
        """True if this ClientHello (by binder) was not accepted within the window; records it."""
        seen = self._seen
        horizon = now - self._window
        while seen:
            oldest = next(iter(seen.values()))
            if oldest >= horizon:
                break
            seen.popitem(last=False)
        if binder in seen or len(seen) >= self._max_entries:
            return False
        seen[binder] = now
        return True

    def __len__(self) -> int:
        return len(self._seen)
