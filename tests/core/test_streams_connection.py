"""Streams and flow control through two real QuicConnections in the simulated network (issue 5 proofs).

RFC 9000 §2-§4: many concurrent streams at 5 % loss arrive intact; a reset mid-transfer reaches
the reader with its code; a peer writing past our window gets FLOW_CONTROL_ERROR; the receive
window auto-tunes from 1 MB toward 6 MB on a high-BDP path and never past it; MAX_STREAMS is
re-granted so 10,000 streams succeed with max_incoming_streams=100.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from quicsilver.config import Config
from quicsilver.core.events import (
    Event,
    StreamOpened,
    StreamReadable,
    StreamReset,
    StreamsAvailable,
    StreamWritable,
)
from quicsilver.errors import StreamError, StreamLimitReachedError, TransportError, TransportErrorCode

from .sim import Link, Sim

MB = 1_000_000


class ServerReader(Sim):
    """The server reads every stream as data arrives; ``received[id]`` and ``eof`` / ``reset_codes``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.received: dict[int, bytearray] = {}
        self.eof: set[int] = set()
        self.reset_codes: dict[int, int] = {}

    def on_server_event(self, ev: Event) -> None:
        if isinstance(ev, StreamOpened):
            self.received.setdefault(ev.stream_id, bytearray())
        elif isinstance(ev, StreamReadable | StreamReset):
            self._drain(ev.stream_id)

    def _drain(self, sid: int) -> None:
        if sid in self.eof or sid in self.reset_codes:
            return
        try:
            while data := self.server.stream_read(sid, 1 << 20):
                self.received.setdefault(sid, bytearray()).extend(data)
            if self.server.stream_at_eof(sid):
                self.eof.add(sid)
        except StreamError as exc:
            self.reset_codes[sid] = exc.code
        except ValueError:
            self.eof.add(sid)  # the core forgot the stream: everything up to the FIN was read


def handshake(sim: Sim) -> None:
    assert sim.run_until(lambda: sim.client._handshake_complete and sim.server._handshake_complete, 5)


def test_1000_concurrent_streams_arrive_intact_at_5_percent_loss() -> None:
    config = Config(max_incoming_streams=1000, max_incoming_uni_streams=1000)
    sim = ServerReader(
        config=config,
        seed=5,
        to_server=Link(loss=0.05, reorder=0.05),
        to_client=Link(loss=0.05, reorder=0.05),
    )
    handshake(sim)
    rng = random.Random(11)
    payloads: dict[int, bytes] = {}
    for i in range(1000):
        sid = sim.client.open_stream(bidi=i % 2 == 0)
        payloads[sid] = rng.randbytes(rng.randrange(0, 2000))
        assert sim.client.stream_write(sid, payloads[sid]) == len(payloads[sid])
        sim.client.stream_close(sid)
    assert sim.run_until(lambda: len(sim.eof) == 1000, max_time=120)
    assert sim.client.terminal_error is None and sim.server.terminal_error is None
    for sid, data in payloads.items():
        assert bytes(sim.received[sid]) == data, sid


def test_reset_mid_transfer_delivers_the_code_to_the_reader() -> None:
    sim = ServerReader(seed=3, to_server=Link(loss=0.05), to_client=Link(loss=0.05))
    handshake(sim)
    sid = sim.client.open_stream()
    payload = random.Random(1).randbytes(400_000)
    sim.client.stream_write(sid, payload)
    assert sim.run_until(lambda: len(sim.received.get(sid, b"")) > 50_000, max_time=30)
    sim.client.reset_stream(sid, 0xBEEF)
    assert sim.run_until(lambda: sid in sim.reset_codes, max_time=30)
    assert sim.reset_codes[sid] == 0xBEEF
    assert any(isinstance(e, StreamReset) and e.error_code == 0xBEEF for e in sim.server_events)
    got = bytes(sim.received[sid])
    assert got == payload[: len(got)] and len(got) < len(payload)
    assert sim.client.terminal_error is None and sim.server.terminal_error is None


def test_peer_writing_past_our_window_gets_flow_control_error() -> None:
    config = Config(initial_stream_receive_window=64 * 1024, max_stream_receive_window=64 * 1024)
    sim = Sim(config=config, seed=2)
    handshake(sim)
    sid = sim.client.open_stream()
    # Make the client misbehave: it ignores the server's stream limit.
    stream = sim.client._streams.get_send_stream(sid)
    assert stream is not None
    stream.flow.limit = 1 << 30
    sim.client.stream_write(sid, b"x" * (200 * 1024))
    assert sim.run_until(lambda: sim.client.terminal_error is not None, max_time=10)
    err = sim.client.terminal_error
    assert isinstance(err, TransportError) and err.remote
    assert err.code == TransportErrorCode.FLOW_CONTROL_ERROR
    server_err = sim.server.terminal_error
    assert isinstance(server_err, TransportError) and not server_err.remote
    assert server_err.code == TransportErrorCode.FLOW_CONTROL_ERROR


class WindowWatch(ServerReader):
    """The client streams ``size`` bytes on one stream; the server records its stream window sizes."""

    def __init__(self, size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.size = size
        self.sent = 0
        self.sid: int | None = None
        self.stream_windows: list[int] = []
        self.conn_windows: list[int] = []

    def pump(self) -> None:
        if self.sid is None:
            if not self.client._handshake_complete:
                return
            self.sid = self.client.open_stream()
        while self.sent < self.size:
            n = self.client.stream_write(self.sid, b"\0" * min(65536, self.size - self.sent))
            if not n:
                break
            self.sent += n
            if self.sent == self.size:
                self.client.stream_close(self.sid)

    def on_client_event(self, ev: Event) -> None:
        if isinstance(ev, StreamWritable):
            self.pump()

    def step(self, limit: float = float("inf")) -> bool:
        self.pump()
        if self.sid is not None:
            recv = self.server._streams.get_receive_stream(self.sid)
            if recv is not None:
                self.stream_windows.append(recv.flow.window_size)
            self.conn_windows.append(self.server._streams.connection_receive_flow.window_size)
        return super().step(limit)


def test_receive_window_grows_from_1mb_toward_6mb_on_a_high_bdp_path_and_never_past_it() -> None:
    config = Config(
        initial_stream_receive_window=1 * MB,
        max_stream_receive_window=6 * MB,
        initial_connection_receive_window=2 * MB,
        max_connection_receive_window=12 * MB,
    )
    # 50 ms one way, no bottleneck: the bandwidth-delay product soon exceeds 1 MB.
    sim = WindowWatch(10 * MB, config=config, seed=4, to_server=Link(delay=0.05), to_client=Link(delay=0.05))
    assert sim.run_until(lambda: sim.sid is not None and sim.sid in sim.eof, max_time=120)
    assert len(sim.received[sim.sid]) == 10 * MB
    assert sim.stream_windows[0] == 1 * MB
    assert sorted(set(sim.stream_windows)) == [1 * MB, 2 * MB, 4 * MB, 6 * MB]  # doubled up to the cap ...
    assert all(w <= 6 * MB for w in sim.stream_windows)  # ... and never past the maximum
    assert max(sim.conn_windows) >= 9 * MB  # the connection window followed at 1.5x
    assert all(w <= 12 * MB for w in sim.conn_windows)


class SlowReader(WindowWatch):
    """The server application does not read on events; the test reads on its own schedule."""

    def on_server_event(self, ev: Event) -> None:
        pass


def test_window_does_not_grow_when_the_reader_is_slow() -> None:
    config = Config(initial_stream_receive_window=1 * MB, max_stream_receive_window=6 * MB)
    sim = SlowReader(3 * MB, config=config, seed=4, to_server=Link(delay=0.005), to_client=Link(delay=0.005))
    handshake(sim)
    # The application reads 64 KB every 100 ms: far slower than the 10 ms RTT allows.
    got = 0
    for _ in range(200):
        until = sim.now + 0.1
        sim.run_until(lambda until=until: sim.now >= until, max_time=until)  # type: ignore[misc]
        assert sim.sid is not None
        got += len(sim.server.stream_read(sim.sid, 64 * 1024))
        if sim.server.stream_at_eof(sim.sid):
            break
    assert got == 3 * MB
    assert sim.stream_windows[0] == 1 * MB
    assert max(sim.stream_windows) == 1 * MB


@pytest.mark.slow
def test_max_streams_regranted_so_10000_streams_succeed_with_limit_100() -> None:
    config = Config(max_incoming_streams=100)
    sim = ServerReader(config=config, seed=9)
    handshake(sim)
    total = 10_000
    opened = 0
    blocked = 0
    answered: set[int] = set()

    def pump() -> None:
        nonlocal opened, blocked
        while opened < total:
            try:
                sid = sim.client.open_stream()
            except StreamLimitReachedError:
                blocked += 1
                return
            opened += 1
            sim.client.stream_write(sid, b"ping")
            sim.client.stream_close(sid)

    def on_server(ev: Event) -> None:
        ServerReader.on_server_event(sim, ev)
        for sid in list(sim.eof - answered):
            answered.add(sid)
            sim.server.stream_write(sid, b"pong")
            sim.server.stream_close(sid)

    def on_client(ev: Event) -> None:
        if isinstance(ev, StreamsAvailable):
            pump()
        elif isinstance(ev, StreamReadable):
            try:
                while sim.client.stream_read(ev.stream_id, 100):
                    pass
            except ValueError:
                pass

    sim.on_server_event = on_server  # type: ignore[method-assign]
    sim.on_client_event = on_client  # type: ignore[method-assign]
    pump()
    assert sim.run_until(lambda: len(answered) == total, max_time=300)
    assert blocked > 0  # the limit was really reached, and re-granted each time
    assert sim.client.terminal_error is None and sim.server.terminal_error is None
    assert all(bytes(sim.received[sid]) == b"ping" for sid in answered)
