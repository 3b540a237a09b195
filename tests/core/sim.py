"""A deterministic simulated network for two sans-IO connections, with a virtual clock.

Each direction is a seeded lossy link: random loss, black-hole windows, duplication, reordering
(extra delay for some datagrams), corruption (one flipped byte), a path MTU and an optional
bottleneck rate. Time only moves when nothing can happen sooner: the loop jumps to the next
delivery or timer (trio's autojump clock, by hand). The server's anti-amplification limit
(RFC 9000 §8.1) is asserted on every datagram it sends.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from quicsilver.config import Config
from quicsilver.core.connection import QuicConnection
from quicsilver.core.events import ConnectionTerminated, Event, HandshakeCompleted
from quicsilver.handshake.tls import TLSConfig

CLIENT_ADDR = ("10.0.0.1", 50000)
SERVER_ADDR = ("10.0.0.2", 443)
ALPN = ["sim"]

_SERVER_TLS: TLSConfig | None = None


def server_tls() -> TLSConfig:
    """One self-signed server config for the whole test run (key generation is the slow part)."""
    global _SERVER_TLS
    if _SERVER_TLS is None:
        _SERVER_TLS = TLSConfig.self_signed(alpn=ALPN)
    return _SERVER_TLS


def client_tls(**kwargs: Any) -> TLSConfig:
    return TLSConfig(alpn=ALPN, verify=False, **kwargs)


def send_all(conn: QuicConnection, now: float) -> list[tuple[bytes, Any, int]]:
    """What ``conn`` sends now, as the I/O layer sends it: a server's ServerHello datagram, then the
    rest of its flight (``flight_pending`` / ``finish_flight``)."""
    out = conn.datagrams_to_send_ecn(now)
    if conn.flight_pending:
        conn.finish_flight(now)
        out += conn.datagrams_to_send_ecn(now)
    return out


@dataclass
class Link:
    """One direction of the path."""

    delay: float = 0.010
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_delay: float = 0.015
    corrupt: float = 0.0
    mtu: int = 1500
    rate: float = 0.0  # bytes per second; 0 = unlimited
    black_holes: list[tuple[float, float]] = field(default_factory=list)
    drop_first: int = 0  # drop the first N datagrams (a lost first flight)
    drop_if: Callable[[bytes], bool] | None = None
    bleach_ecn: bool = False  # clear the ECN bits (a path that does not support ECN)
    ce: float = 0.0  # probability that an ECT-marked datagram is re-marked CE (congestion)
    sent: int = 0
    delivered: int = 0
    _busy_until: float = 0.0


class Sim:
    """Two connections over two Links; ``run_until(pred)`` advances the virtual clock."""

    bursts_enabled = True  # both cores' burst packer (a test compares a transfer without it)
    # as the I/O layer: once a side's datagrams are out, it derives the keys it will need next
    work_ahead = True

    def __init__(
        self,
        *,
        seed: int = 1,
        config: Config | None = None,
        server_config: Config | None = None,
        to_server: Link | None = None,
        to_client: Link | None = None,
        client_kwargs: dict[str, Any] | None = None,
        server_kwargs: dict[str, Any] | None = None,
        client_tls_kwargs: dict[str, Any] | None = None,
        start: bool = True,
    ) -> None:
        self.rng = random.Random(seed)
        self.now = 0.0
        cfg = config or Config()
        self.client = QuicConnection(
            cfg,
            client_tls(**(client_tls_kwargs or {})),
            is_client=True,
            server_name="localhost",
            **(client_kwargs or {}),
        )
        self.server = QuicConnection(
            server_config or cfg, server_tls(), is_client=False, **(server_kwargs or {})
        )
        self.client.bursts_enabled = self.server.bursts_enabled = self.bursts_enabled
        self.to_server = to_server or Link()
        self.to_client = to_client or Link()
        self._queue: list[tuple[float, int, str, bytes, int]] = []
        self._seq = 0
        self.client_events: list[Event] = []
        self.server_events: list[Event] = []
        self.server_bytes_received = 0
        self.server_bytes_sent = 0
        self.max_amplification_seen = 0.0
        self.client_addr: Any = CLIENT_ADDR  # tests change it to simulate a NAT rebinding / migration
        self.to_stale_address = 0
        self.steps = 0
        if start:
            self.client.connect(SERVER_ADDR, self.now)

    # -- plumbing --------------------------------------------------------------------------------

    def _transmit(self, link: Link, dst: str, data: bytes, ecn: int = 0) -> None:
        link.sent += 1
        if link.drop_first > 0:
            link.drop_first -= 1
            return
        if link.drop_if is not None and link.drop_if(data):
            return
        if len(data) > link.mtu:
            return
        if any(a <= self.now < b for a, b in link.black_holes):
            return
        rng = self.rng
        if rng.random() < link.loss:
            return
        start = self.now
        if link.rate:
            start = max(start, link._busy_until)
            link._busy_until = start + len(data) / link.rate
        if link.bleach_ecn:
            ecn = 0
        elif ecn and rng.random() < link.ce:
            ecn = 3  # CE
        copies = 2 if rng.random() < link.duplicate else 1
        for _ in range(copies):
            t = start + link.delay
            if rng.random() < link.reorder:
                t += rng.random() * link.reorder_delay
            payload = data
            if rng.random() < link.corrupt:
                b = bytearray(data)
                i = rng.randrange(len(b))
                b[i] ^= 1 << rng.randrange(8)
                payload = bytes(b)
            self._seq += 1
            heapq.heappush(self._queue, (t, self._seq, dst, payload, ecn))

    def _flush(self) -> None:
        for data, addr, ecn in self.client.datagrams_to_send_ecn(self.now):
            assert addr == SERVER_ADDR
            self._transmit(self.to_server, "server", data, ecn)
        for data, addr, ecn in self.server.datagrams_to_send_ecn(self.now):
            self.server_bytes_sent += len(data)
            # RFC 9000 §8.1: at most 3x the bytes received before the client's address is validated.
            if self.server._sph.amplification_budget() is not None:
                assert self.server_bytes_sent <= 3 * self.server_bytes_received, (
                    self.server_bytes_sent,
                    self.server_bytes_received,
                )
            if self.server_bytes_received:
                self.max_amplification_seen = max(
                    self.max_amplification_seen, self.server_bytes_sent / self.server_bytes_received
                )
            if addr != self.client_addr:
                self.to_stale_address += 1  # the old NAT mapping is gone
                continue
            self._transmit(self.to_client, "client", data, ecn)
        if self.work_ahead:
            for conn in (self.client, self.server):
                if conn.wants_work_ahead:
                    conn.work_ahead()

    def _drain_events(self) -> None:
        while (ev := self.client.next_event()) is not None:
            self.client_events.append(ev)
            self.on_client_event(ev)
        while (ev := self.server.next_event()) is not None:
            self.server_events.append(ev)
            self.on_server_event(ev)

    def on_client_event(self, ev: Event) -> None:
        """Hook for tests (e.g. read streams as data arrives)."""

    def on_server_event(self, ev: Event) -> None:
        """Hook for tests."""

    def step(self, limit: float = float("inf")) -> bool:
        """Send what is due, then advance to the next delivery or timer (never beyond ``limit``).
        False if nothing is left to happen."""
        self.steps += 1
        self._flush()
        self._drain_events()
        times = []
        if self._queue:
            times.append(self._queue[0][0])
        for conn in (self.client, self.server):
            t = conn.get_timer()
            if t is not None:
                times.append(t)
        if not times:
            return False
        nxt = min(times)
        if nxt > limit:
            self.now = max(self.now, limit)
            return False
        if nxt > self.now:
            self.now = nxt
        while self._queue and self._queue[0][0] <= self.now:
            _, _, dst, data, ecn = heapq.heappop(self._queue)
            self._deliver(dst, data, ecn)
        for conn in (self.client, self.server):
            t = conn.get_timer()
            if t is not None and t <= self.now:
                conn.handle_timer(self.now)
        self._drain_events()
        return True

    def _deliver(self, dst: Any, data: bytes, ecn: int) -> None:
        """Hand a datagram that arrived to its connection (subclasses route by richer destinations)."""
        if dst == "server":
            self.to_server.delivered += 1
            self.server_bytes_received += len(data)
            self.server.receive_datagram(data, self.client_addr, self.now, ecn)
        else:
            self.to_client.delivered += 1
            self.client.receive_datagram(data, SERVER_ADDR, self.now, ecn)

    def run_until(self, pred: Callable[[], bool], max_time: float = 60.0, max_steps: int = 2_000_000) -> bool:
        """Run until ``pred()`` holds (True) or the virtual time or step budget ends (False)."""
        for _ in range(max_steps):
            if pred():
                return True
            if self.now >= max_time or not self.step(max_time):
                return pred()
        return pred()

    # -- predicates ------------------------------------------------------------------------------

    def handshake_done(self) -> bool:
        return any(isinstance(e, HandshakeCompleted) for e in self.client_events) and any(
            isinstance(e, HandshakeCompleted) for e in self.server_events
        )

    def handshake_confirmed(self) -> bool:
        return bool(self.client._handshake_confirmed and self.server._handshake_confirmed)

    def terminated(self, side: str) -> ConnectionTerminated | None:
        events = self.client_events if side == "client" else self.server_events
        for e in events:
            if isinstance(e, ConnectionTerminated):
                return e
        return None
