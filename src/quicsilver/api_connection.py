"""The asyncio Connection: drives one sans-IO core on the event loop (quic-go ``Connection``).

The Transport feeds received datagrams in (``handle_datagram``) and calls ``flush`` once per receive
batch; application calls (stream writes, reads that free flow-control credit, opening streams,
datagrams, close) schedule one flush per loop iteration with ``call_soon``. A flush turns the
core's events into wake-ups of waiting coroutines, pulls the datagrams due now into the Transport's
send queue, and re-arms the connection's single timer (``loop.call_at`` at ``core.get_timer()``,
only when the deadline changed).

Waiting is done with futures that carry no data: a woken coroutine takes its data from the core
(or the accept queues) itself, so cancelling a pending ``read`` / ``accept_stream`` loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .core import events as ev
from .errors import (
    ApplicationError,
    StatelessResetError,
    StreamLimitReachedError,
    TransportClosedError,
    TransportError,
    TransportErrorCode,
    raisable_copy,
)
from .stream import ReceiveStream, SendStream, Stream
from .sys import Address, OutgoingDatagram, PacketInfo, ReceivedDatagram
from .transport import PerDatagramHandler

if TYPE_CHECKING:
    from .core.connection import QuicConnection
    from .transport import Transport

__all__ = ["Connection", "ConnectionState"]

logger = logging.getLogger("quicsilver.connection")


@dataclass(frozen=True, slots=True)
class ConnectionState:
    """What the handshake negotiated, and the path's current figures (quic-go ``ConnectionState``)."""

    handshake_complete: bool
    version: int | None
    alpn: str | None
    session_resumed: bool
    used_0rtt: bool
    smoothed_rtt: float | None
    extra: dict[str, Any] = field(default_factory=dict)
    """The core's ``stats()`` at the time of the call: further facts, by name."""


class _PreferredPath(PerDatagramHandler):
    """Routes a server connection's datagrams from its preferred address's Transport (RFC 9000 §9.6),
    naming that socket's address as the local address of their path. On a wildcard-bound socket the
    answers leave from the address the client sent to (its pktinfo echoed), the one it validates."""

    __slots__ = ("conn", "local", "pktinfo", "transport")

    def __init__(self, conn: Connection, transport: Transport) -> None:
        self.conn = conn
        self.transport = transport
        self.local = transport.local_addr
        self.pktinfo: PacketInfo | None = None

    def handle_datagram(
        self, data: bytes | memoryview, addr: Address, ecn: int, pktinfo: PacketInfo | None, now: float
    ) -> None:
        self.pktinfo = pktinfo
        self.conn._handle_datagram_at(data, addr, ecn, now, self.local)

    def flush(self, now: float) -> None:
        self.conn.flush(now)


def _wake(waiters: list[asyncio.Future[None]]) -> None:
    for fut in waiters:
        if not fut.done():
            fut.set_result(None)
    waiters.clear()


class Connection:
    """A QUIC connection (client or server side). Made by ``dial*`` and ``Listener.accept``.

    Streams: ``open_stream`` / ``open_stream_sync`` / ``open_uni_stream`` / ``accept_stream`` /
    ``accept_uni_stream``; datagrams (RFC 9221): ``send_datagram`` / ``receive_datagram``;
    ``close(code, reason)`` sends an application CONNECTION_CLOSE; ``wait_closed`` returns once the
    connection is gone. After the connection ends, every pending and later call raises the error
    that ended it (``ApplicationError``, ``TransportError``, ``IdleTimeoutError``, ...), which says
    whether the peer sent it (``remote``).
    """

    def __init__(
        self,
        transport: Transport,
        core: QuicConnection,
        *,
        is_client: bool,
        remote_addr: Address,
        initial_cids: list[bytes],
        token_store: Any = None,
        token_key: str | None = None,
    ) -> None:
        self._transport = transport
        self._loop = transport.loop
        self._core = core
        self.is_client = is_client
        self._remote_addr = remote_addr
        self._pktinfo: PacketInfo | None = None
        self._token_store = token_store
        self._token_key = token_key
        self._cids: set[bytes] = set()
        self._lingering: list[bytes] = []  # retired CIDs the Transport still routes to us (5 s)
        self._streams: dict[int, SendStream | ReceiveStream] = {}
        self._accept_bidi: deque[Stream] = deque()
        self._accept_uni: deque[ReceiveStream] = deque()
        self._accept_waiters: list[asyncio.Future[None]] = []
        self._open_waiters: list[asyncio.Future[None]] = []
        self._datagrams: deque[bytes] | None = None  # created with the first one (memory, issue 9)
        self._datagram_waiters: list[asyncio.Future[None]] = []
        self._handshake_waiters: list[asyncio.Future[None]] = []
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self._handshake_info: ev.HandshakeCompleted | None = None
        self._error: Exception | None = None
        self._closing_locally = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flush_scheduled = False
        self._ahead_scheduled = False
        self._woke_reader = False  # the events being delivered resolved a pending read (see flush)
        self._waiting_for_room = False
        self._previous_transports: list[Transport] = []  # sockets we migrated away from
        self._preferred: _PreferredPath | None = None  # server: our preferred address's socket
        self.datagrams_sent = 0
        """Datagrams this connection handed to the Transport."""
        self.datagrams_received = 0
        self.bytes_received = 0
        self.on_handshake_completed: Callable[[Connection], None] | None = None
        """Set by the server: called once when the handshake completes (the accept queue)."""
        self.on_closed: Callable[[Connection], None] | None = None
        """Set by the server: called once when the connection ends (handshake slot accounting)."""
        for cid in initial_cids:
            self._cids.add(cid)
            transport.add_handler(cid, self)
        transport.add_connection(self)

    def __repr__(self) -> str:
        role = "client" if self.is_client else "server"
        return f"<Connection {role} remote={self._remote_addr} closed={self._error is not None}>"

    # --- the packet handler interface (called by the Transport) ------------------------------------

    def handle_datagram(
        self, data: bytes | memoryview, addr: Address, ecn: int, pktinfo: PacketInfo | None, now: float
    ) -> None:
        if self._error is not None:
            return
        self._pktinfo = pktinfo
        self.datagrams_received += 1
        self.bytes_received += len(data)
        try:
            self._core.receive_datagram(data, addr, now, ecn)
        except Exception as exc:
            self._internal_error(exc)

    def handle_datagrams(self, items: list[ReceivedDatagram], now: float) -> None:
        if self._error is not None:
            return
        self._pktinfo = items[-1][3]
        self.datagrams_received += len(items)
        try:
            self.bytes_received += self._core.receive_datagrams(items, now)
        except Exception as exc:
            self._internal_error(exc)

    def add_preferred_transport(self, transport: Transport) -> None:
        """Server: also receive on ``transport``, the socket of our preferred address (RFC 9000
        §9.6), and send from it the datagrams of paths that arrived there."""
        self._preferred = _PreferredPath(self, transport)
        for cid in self._cids:
            transport.add_handler(cid, self._preferred)

    def _handle_datagram_at(
        self, data: bytes | memoryview, addr: Address, ecn: int, now: float, local: Address
    ) -> None:
        if self._error is not None:
            return
        self.datagrams_received += 1
        self.bytes_received += len(data)
        try:
            self._core.receive_datagram(data, addr, now, ecn, local_addr=local)
        except Exception as exc:
            self._internal_error(exc)

    def _send_on_paths(self, now: float, preferred: _PreferredPath) -> None:
        """Queue the datagrams due now, each on the socket of its path (the preferred address's or ours)."""
        datagrams = self._core.datagrams_to_send_paths(now)
        if not datagrams:
            return
        self.datagrams_sent += len(datagrams)
        self._remote_addr = datagrams[-1][1]
        local, pktinfo = preferred.local, self._pktinfo
        ours: list[OutgoingDatagram] = []
        there: list[OutgoingDatagram] = []
        for data, addr, ecn, path in datagrams:
            if path == local:
                there.append((data, addr, ecn, preferred.pktinfo))
            else:
                ours.append((data, addr, ecn, pktinfo))
        if ours:
            self._transport.enqueue(ours)
        if there:
            preferred.transport.send_now(there)

    def flush(self, now: float) -> None:
        """After a receive batch: deliver events, queue the datagrams due now, re-arm the timer. No
        socket call.

        When the batch resolved a pending read, what is due (typically an ACK) waits for the next
        loop turn, after the reader's: what the reader then writes, or the flow-control credit its
        read frees, leaves in the same datagram, and the reader's next step (a request's answer, the
        next connection) does not wait behind a datagram the peer does not need at once. Everything
        else, the end of the handshake among it, is sent now: the peer waits for it.
        """
        try:
            self._process_events()
            if self._woke_reader:
                self._woke_reader = False
                if self._error is None:
                    self._schedule_flush()
                    return
            self._send_due(now)
        except Exception as exc:
            self._internal_error(exc)

    def _flush_now(self, now: float) -> None:
        try:
            self._flush(now)
        except Exception as exc:
            self._internal_error(exc)

    def _internal_error(self, exc: Exception) -> None:
        """A bug below us must cost one connection, not the Transport's receive loop: close it with
        INTERNAL_ERROR (RFC 9000 §20.1) and fail its waiters."""
        if self._error is not None:
            return
        logger.error("internal error in %r", self, exc_info=exc)
        error = TransportError(TransportErrorCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
        close: list[OutgoingDatagram] = []
        try:
            self._core.close(TransportErrorCode.INTERNAL_ERROR, "internal error", is_application=False)
            close = self._pull_close_datagrams()
        except Exception:
            close = []
        self._terminate(error, close)

    def _flush(self, now: float) -> None:
        self._process_events()
        self._send_due(now)

    def _send_due(self, now: float) -> None:
        """Queue the datagrams due now, deliver the events sending made, re-arm the timer."""
        if self._error is None:
            if self._transport.send_queue_full:
                if not self._waiting_for_room:
                    self._waiting_for_room = True
                    self._transport.wait_for_room(self)
            elif self._preferred is not None:
                self._send_on_paths(now, self._preferred)
                self._process_events()
            else:
                # (data, addr, ECN codepoint): the core marks ECT(0) while ECN is being validated or
                # works, and stops when the path bleaches or mangles it (RFC 9000 §13.4).
                datagrams = self._core.datagrams_to_send_ecn(now)
                if datagrams:
                    self.datagrams_sent += len(datagrams)
                    # path probes come first, the active path last (RFC 9000 §9.3: the server
                    # follows a NAT rebinding, so the peer's address can change)
                    self._remote_addr = datagrams[-1][1]
                    pktinfo = self._pktinfo
                    self._transport.enqueue([(data, addr, ecn, pktinfo) for data, addr, ecn in datagrams])
                self._process_events()
            if self._core.flight_pending and not self._transport.send_queue_full and self._error is None:
                # A server's ServerHello is queued: on the wire with it, then build the rest of the
                # flight while the client works on it (QuicConnection.flight_pending).
                self._transport.flush_sends()
                self._core.finish_flight(now)
                self._send_due(now)
                return
        if self._open_waiters:
            _wake(self._open_waiters)  # a MAX_STREAMS may have arrived: open_stream_sync retries
        if self._error is None:
            self._arm_timer()
            if self._core.wants_work_ahead and not self._ahead_scheduled:
                # after this callback, which puts the datagrams due on the wire (see _work_ahead)
                self._ahead_scheduled = True
                self._loop.call_soon(self._work_ahead)

    def on_send_room(self) -> None:
        """The Transport's send queue drained: produce again."""
        self._waiting_for_room = False
        self._schedule_flush()

    def try_stateless_reset(self, data: bytes | memoryview, addr: Address, ecn: int, now: float) -> bool:
        """Client: whether an unroutable datagram is a stateless reset from our peer (RFC 9000 §10.3.1).

        The packet's DCID is random, so it cannot be routed; the core recognises the peer's reset
        token at the end of a packet it cannot decrypt, and then ends the connection.
        """
        if self._error is not None or not self.is_client:
            return False
        self._core.receive_datagram(data, addr, now, ecn)
        if isinstance(self._core.terminal_error, StatelessResetError):
            self._process_events()  # ConnectionTerminated(StatelessResetError) ends us
            return True
        return False

    def abort_on_transport_close(self) -> None:
        """The Transport is closing: send CONNECTION_CLOSE (NO_ERROR) and end now."""
        if self._error is not None:
            return
        self._closing_locally = True
        self._core.close(TransportErrorCode.NO_ERROR, "transport closed", is_application=False)
        self._terminate(TransportClosedError(), self._pull_close_datagrams())

    def _pull_close_datagrams(self) -> list[OutgoingDatagram]:
        """The CONNECTION_CLOSE the core queued when it entered the closing state (none when draining)."""
        datagrams = self._core.datagrams_to_send_ecn(self._loop.time())
        out = [(data, addr, ecn, self._pktinfo) for data, addr, ecn in datagrams]
        if out:
            self._transport.enqueue(out)
        return out

    # --- scheduling --------------------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        if self._error is not None:
            return
        self._flush_now(self._loop.time())
        self._transport.flush_sends()

    def _work_ahead(self) -> None:
        """Let the core derive keys before it needs them (``QuicConnection.work_ahead``): a loop turn
        after a flush, once what was due is sent and while the peer answers, so that the derivation
        delays no datagram."""
        self._ahead_scheduled = False
        if self._error is None:
            try:
                self._core.work_ahead()
            except Exception as exc:
                self._internal_error(exc)

    def _arm_timer(self) -> None:
        at = self._core.get_timer()
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = None if at is None else self._loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self._error is not None:
            return
        now = self._loop.time()
        try:
            self._core.handle_timer(now)
        except Exception as exc:
            self._internal_error(exc)
        self._flush_now(now)
        self._transport.flush_sends()

    # --- events ------------------------------------------------------------------------------------

    def _process_events(self) -> None:
        next_event = self._core.next_event
        dispatch = _DISPATCH
        while (event := next_event()) is not None:
            handler = dispatch.get(type(event))
            if handler is not None:
                handler(self, event)

    def _stream_for(self, stream_id: int) -> SendStream | ReceiveStream | None:
        return self._streams.get(stream_id)

    def _on_stream_readable(self, event: ev.StreamReadable) -> None:
        stream = self._streams.get(event.stream_id)
        if isinstance(stream, ReceiveStream) and stream._wake_reader():
            self._woke_reader = True

    def _on_stream_readable_event(self, event: ev.StreamReset) -> None:
        stream = self._streams.get(event.stream_id)
        if isinstance(stream, ReceiveStream):
            stream._wake_reader()

    def _on_stream_writable(self, event: ev.StreamWritable) -> None:
        stream = self._streams.get(event.stream_id)
        if isinstance(stream, SendStream):
            stream._wake_writer()

    def _on_stream_writable_event(self, event: ev.StopSendingReceived) -> None:
        stream = self._streams.get(event.stream_id)
        if isinstance(stream, SendStream):
            stream._wake_writer()

    def _on_stream_opened(self, event: ev.StreamOpened) -> None:
        sid = event.stream_id
        if sid in self._streams:
            return
        if sid & 0x2:
            uni = ReceiveStream(self, sid)
            self._streams[sid] = uni
            self._accept_uni.append(uni)
        else:
            bidi = Stream(self, sid)
            self._streams[sid] = bidi
            self._accept_bidi.append(bidi)
        _wake(self._accept_waiters)

    def _on_datagram(self, event: ev.DatagramReceived) -> None:
        if self._datagrams is None:
            self._datagrams = deque()
        self._datagrams.append(event.data)
        _wake(self._datagram_waiters)

    def _on_handshake_completed(self, event: ev.HandshakeCompleted) -> None:
        self._handshake_info = event
        _wake(self._handshake_waiters)
        if self.on_handshake_completed is not None:
            callback, self.on_handshake_completed = self.on_handshake_completed, None
            callback(self)

    def _on_terminated(self, event: ev.ConnectionTerminated) -> None:
        if self._error is None:
            self._terminate(event.error, self._pull_close_datagrams())

    def _on_cid_issued(self, event: ev.ConnectionIdIssued) -> None:
        self._cids.add(event.cid)
        self._transport.add_handler(event.cid, self)
        if self._preferred is not None:
            self._preferred.transport.add_handler(event.cid, self._preferred)

    def _on_cid_retired(self, event: ev.ConnectionIdRetired) -> None:
        if event.cid in self._cids:
            self._cids.discard(event.cid)
            if len(self._lingering) >= 16:  # forget those whose linger is over
                routes = self._transport.handler_for
                self._lingering = [cid for cid in self._lingering if routes(cid) is self]
            self._lingering.append(event.cid)
            self._transport.retire_cid(event.cid, self)
            if self._preferred is not None:
                self._preferred.transport.retire_cid(event.cid, self._preferred)

    def _on_new_token(self, event: ev.NewTokenReceived) -> None:
        if self._token_store is not None and self._token_key is not None:
            self._token_store.put(self._token_key, event.token)

    def _terminate(self, error: Exception, close_datagrams: list[OutgoingDatagram]) -> None:
        if self._error is not None:
            return
        self._error = error
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        _wake(self._handshake_waiters)
        _wake(self._accept_waiters)
        _wake(self._open_waiters)
        _wake(self._datagram_waiters)
        for stream in self._streams.values():
            stream._wake_all()
        # the lingering retired IDs too: they then route to the closed handler, not to us
        ended_cids = [*self._cids, *self._lingering]
        self._transport.connection_closed(self, ended_cids, close_datagrams)
        if self._preferred is not None:
            for cid in self._cids:
                self._preferred.transport.retire_cid(cid, self._preferred)
        for old in self._previous_transports:
            old.connection_closed(self, ended_cids, [])
        self._previous_transports.clear()
        if not self._closed.done():
            self._closed.set_result(None)
        if self.on_closed is not None:
            callback, self.on_closed = self.on_closed, None
            callback(self)

    def _raise_if_closed(self) -> None:
        if self._error is not None:
            raise raisable_copy(self._error)

    # --- stream plumbing used by stream.py ---------------------------------------------------------

    def _forget_stream(self, stream_id: int, stream: object) -> None:
        """The application is done with every side of ``stream``: drop our handle (the core keeps its
        own state until the peer has acknowledged everything)."""
        if self._streams.get(stream_id) is stream:
            del self._streams[stream_id]

    @property
    def open_stream_count(self) -> int:
        """Streams the application still uses (for tests and diagnostics)."""
        return len(self._streams)

    def _stream_read(self, stream_id: int, n: int) -> tuple[bytes, bool]:
        """Up to ``n`` bytes, and whether the stream ended with them (its FIN read)."""
        data, fin = self._core.stream_read_fin(stream_id, n)
        if data:
            self._schedule_flush()  # reading frees flow-control credit: MAX_STREAM_DATA may be due
        return data, fin

    def _stream_write(self, stream_id: int, data: memoryview) -> int:
        n: int = self._core.stream_write(stream_id, data)
        if n:
            self._schedule_flush()
        return n

    def _stream_close(self, stream_id: int) -> None:
        self._core.stream_close(stream_id)
        self._schedule_flush()

    def _stream_reset(self, stream_id: int, code: int) -> None:
        self._core.reset_stream(stream_id, code)
        self._schedule_flush()

    def _stream_stop_sending(self, stream_id: int, code: int) -> None:
        self._core.stop_sending(stream_id, code)
        self._schedule_flush()

    @property
    def error(self) -> Exception | None:
        """The error that ended the connection, None while it is alive."""
        return self._error

    # --- public API --------------------------------------------------------------------------------

    @property
    def local_addr(self) -> Address:
        return self._transport.local_addr

    @property
    def remote_addr(self) -> Address:
        """The peer's address: the one the connection last sent to (it follows a NAT rebinding)."""
        return self._remote_addr

    @property
    def transport(self) -> Transport:
        return self._transport

    @property
    def handshake_complete(self) -> bool:
        return self._handshake_info is not None

    async def wait_handshake(self) -> None:
        """Return once the handshake completed; raise the connection's error if it failed."""
        # A future per waiter (_wait), woken by the end of the handshake or of the connection: no
        # shared future to shield (shield's relay cost the dial a loop turn).
        while self._handshake_info is None:
            await self._wait(self._handshake_waiters)  # raises the error once the connection ended

    def _open(self, bidi: bool) -> int:
        self._raise_if_closed()
        stream_id: int = self._core.open_stream(bidi)
        return stream_id

    def open_stream(self) -> Stream:
        """A new bidirectional stream; StreamLimitReachedError if the peer's MAX_STREAMS forbids it."""
        sid = self._open(True)
        stream = Stream(self, sid)
        self._streams[sid] = stream
        return stream

    def open_uni_stream(self) -> SendStream:
        """A new unidirectional (send-only) stream; StreamLimitReachedError at the peer's limit."""
        sid = self._open(False)
        stream = SendStream(self, sid)
        self._streams[sid] = stream
        return stream

    async def open_stream_sync(self) -> Stream:
        """A new bidirectional stream, waiting for the peer to raise MAX_STREAMS if needed."""
        while True:
            try:
                return self.open_stream()
            except StreamLimitReachedError:
                await self._wait(self._open_waiters)

    async def open_uni_stream_sync(self) -> SendStream:
        """A new unidirectional stream, waiting for MAX_STREAMS if needed."""
        while True:
            try:
                return self.open_uni_stream()
            except StreamLimitReachedError:
                await self._wait(self._open_waiters)

    async def _wait(self, waiters: list[asyncio.Future[None]]) -> None:
        self._raise_if_closed()
        fut: asyncio.Future[None] = self._loop.create_future()
        waiters.append(fut)
        try:
            await fut
        finally:
            if fut in waiters:
                waiters.remove(fut)

    async def accept_stream(self) -> Stream:
        """The next bidirectional stream the peer opened (waits for one)."""
        while not self._accept_bidi:
            await self._wait(self._accept_waiters)
        return self._accept_bidi.popleft()

    async def accept_uni_stream(self) -> ReceiveStream:
        """The next unidirectional stream the peer opened (waits for one)."""
        while not self._accept_uni:
            await self._wait(self._accept_waiters)
        return self._accept_uni.popleft()

    def send_datagram(self, data: bytes) -> None:
        """Send an unreliable DATAGRAM frame (RFC 9221). DatagramTooLargeError if it cannot fit."""
        self._raise_if_closed()
        self._core.send_datagram(bytes(data))
        self._schedule_flush()

    async def receive_datagram(self) -> bytes:
        """The next received DATAGRAM payload (waits for one)."""
        while not self._datagrams:
            await self._wait(self._datagram_waiters)
        assert self._datagrams is not None
        return self._datagrams.popleft()

    def migrate(self, transport: Transport | None = None) -> None:
        """Client: move the connection to another local socket (active migration, RFC 9000 §9.2).

        ``transport``: the Transport to send from (it must use our connection ID length); None binds
        a new one on an ephemeral port, closed with the connection. The core then validates the new
        path; packets still arriving on the old socket are accepted until the connection ends.
        Raises RuntimeError for a server connection, before the handshake is confirmed, when the
        server sent disable_active_migration or issued no spare connection ID; ValueError for a
        Transport with another connection ID length.
        """
        self._raise_if_closed()
        if not self.is_client:
            raise RuntimeError("only a client migrates actively (RFC 9000 §9)")
        old = self._transport
        owned = transport is None
        if transport is None:
            from .transport import Transport as _Transport

            host = "::" if old.family == socket.AF_INET6 else "0.0.0.0"
            transport = _Transport((host, 0), connection_id_length=old.connection_id_length, _single_use=True)
        elif transport.connection_id_length != old.connection_id_length:
            raise ValueError(
                f"the new Transport uses {transport.connection_id_length}-byte connection IDs, "
                f"this connection {old.connection_id_length}-byte ones"
            )
        transport._start()
        for cid in self._cids:
            transport.add_handler(cid, self)
        transport.add_connection(self)
        self._transport = transport
        self._pktinfo = None
        try:
            self._core.migrate(self._loop.time())
        except Exception:
            self._transport = old
            transport.connection_closed(self, list(self._cids), [])
            if owned:
                transport.close()
            raise
        self._previous_transports.append(old)
        self._schedule_flush()

    def close(self, code: int = 0, reason: str = "") -> None:
        """Close with an application error code (CONNECTION_CLOSE type 0x1d); no-op if already closed."""
        if self._error is not None or self._closing_locally:
            return
        self._closing_locally = True
        self._core.close(code, reason, is_application=True)
        now = self._loop.time()
        self._flush_now(now)
        self._transport.flush_sends()
        if self._error is None:
            self._terminate(ApplicationError(code, reason, remote=False), self._pull_close_datagrams())

    def close_with_transport_error(self, code: int, reason: str) -> None:
        """Close with a transport error code (CONNECTION_CLOSE type 0x1c), e.g. CONNECTION_REFUSED."""
        if self._error is not None or self._closing_locally:
            return
        self._closing_locally = True
        self._core.close(code, reason, is_application=False)
        self._scheduled_flush()

    async def wait_closed(self) -> None:
        """Return once the connection has ended (for any reason)."""
        await asyncio.shield(self._closed)

    def connection_state(self) -> ConnectionState:
        info = self._handshake_info
        stats = self.stats()
        return ConnectionState(
            handshake_complete=info is not None,
            version=info.version if info is not None else None,
            alpn=info.alpn if info is not None else None,
            session_resumed=info.session_resumed if info is not None else False,
            used_0rtt=info.early_data_accepted if info is not None else False,
            smoothed_rtt=stats.get("smoothed_rtt"),
            extra=stats,  # whatever else the core reports (cipher suite, group, ...)
        )

    def stats(self) -> dict[str, Any]:
        """The core's counters (RTT, cwnd, bytes and packets sent / received / lost), and ours."""
        stats: dict[str, Any] = dict(self._core.stats())
        stats["datagrams_queued"] = self.datagrams_sent
        stats["datagrams_received"] = self.datagrams_received
        stats["bytes_received"] = self.bytes_received
        return stats

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close(0, "" if exc is None else type(exc).__name__)
        await self.wait_closed()


# What each core event does to the asyncio side; one table for all connections (a per-connection dict
# of bound methods cost ~2 KB per idle connection). SessionTicketReceived needs nothing: the TLS engine
# already stored the ticket in its TLSConfig's store.
_DISPATCH: dict[type, Callable[[Connection, Any], None]] = {
    ev.StreamReadable: Connection._on_stream_readable,
    ev.StreamWritable: Connection._on_stream_writable,
    ev.StreamOpened: Connection._on_stream_opened,
    ev.StreamReset: Connection._on_stream_readable_event,
    ev.StopSendingReceived: Connection._on_stream_writable_event,
    ev.DatagramReceived: Connection._on_datagram,
    ev.HandshakeCompleted: Connection._on_handshake_completed,
    ev.ConnectionTerminated: Connection._on_terminated,
    ev.ConnectionIdIssued: Connection._on_cid_issued,
    ev.ConnectionIdRetired: Connection._on_cid_retired,
    ev.NewTokenReceived: Connection._on_new_token,
}
