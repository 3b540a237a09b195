"""Perf-protocol server and client on the public asyncio API of aioquic or qh3 (``--lib``).

Both libraries share aioquic's shape: a ``QuicConnectionProtocol`` subclass receives events and
queues stream data with ``send_stream_data``. Neither applies backpressure to a writer, so we feed
each response or upload in 64 KiB chunks while less than ``HIGH_WATER`` bytes wait in the stream's
send buffer, topping up every time the stack transmits (after each received datagram or timer).
That keeps memory bounded and avoids penalising aioquic's buffer for a 100 MB write made at once.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from scenarios import (
    ALPN,
    CHUNK,
    HEADER,
    ZEROS,
    announce_listening,
    install_loop,
    peer_arguments,
    run_client,
)

HIGH_WATER = int(os.environ.get("BENCH_HIGH_WATER", 1 << 20))


class _Lib:
    def __init__(self, name: str, no_gso: bool) -> None:
        self.name = name
        self.aio = importlib.import_module(f"{name}.asyncio")
        self.events = importlib.import_module(f"{name}.quic.events")
        self.configuration = importlib.import_module(f"{name}.quic.configuration")
        if no_gso and name == "qh3":
            transport = importlib.import_module("qh3.asyncio._transport")
            transport.has_gso = lambda sock: False
            transport.enable_gro = lambda sock: False


def _buffered(quic: Any, stream_id: int) -> int:
    """Bytes queued on a stream and not yet acknowledged."""
    size = getattr(quic, "get_send_buffer_size", None)
    if size is not None:  # qh3 exposes it
        return int(size(stream_id))
    stream = quic._streams.get(stream_id)  # aioquic has no public accessor
    if stream is None:
        return 0
    return len(stream.sender._buffer)


class _Sender:
    """Chunked writer of ``remaining`` zero bytes (after an optional prefix) on one stream."""

    __slots__ = ("prefix", "remaining", "stream_id")

    def __init__(self, stream_id: int, remaining: int, prefix: bytes = b"") -> None:
        self.stream_id = stream_id
        self.remaining = remaining
        self.prefix = prefix

    def pump(self, quic: Any) -> bool:
        """Queue data up to the high-water mark; returns True once FIN is queued."""
        if self.prefix or self.remaining == 0:
            quic.send_stream_data(self.stream_id, self.prefix, end_stream=self.remaining == 0)
            self.prefix = b""
            if self.remaining == 0:
                return True
        while self.remaining > 0 and _buffered(quic, self.stream_id) < HIGH_WATER:
            n = min(self.remaining, CHUNK)
            self.remaining -= n
            quic.send_stream_data(
                self.stream_id, ZEROS if n == CHUNK else ZEROS[:n], end_stream=self.remaining == 0
            )
        return self.remaining == 0


def protocol_classes(lib: _Lib) -> tuple[type, type]:
    events = lib.events
    base = lib.aio.QuicConnectionProtocol

    class PumpingProtocol(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._senders: dict[int, _Sender] = {}

        def start_sender(self, sender: _Sender) -> None:
            if not sender.pump(self._quic):
                self._senders[sender.stream_id] = sender
            self.transmit()

        def transmit(self) -> None:
            if self._senders:
                done = [sid for sid, s in self._senders.items() if s.pump(self._quic)]
                for sid in done:
                    del self._senders[sid]
            super().transmit()

    class ServerProtocol(PumpingProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._requests: dict[int, bytearray] = {}

        def quic_event_received(self, event: Any) -> None:
            if isinstance(event, events.StreamDataReceived):
                head = self._requests.setdefault(event.stream_id, bytearray())
                if len(head) < HEADER.size:
                    head += event.data[: HEADER.size - len(head)]
                if event.end_stream:
                    del self._requests[event.stream_id]
                    if len(head) < HEADER.size:
                        self._quic.reset_stream(event.stream_id, 1)
                        return
                    (size,) = HEADER.unpack(head)
                    self.start_sender(_Sender(event.stream_id, size))

    class ClientProtocol(PumpingProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._waiting: dict[int, list[Any]] = {}  # stream id -> [future, bytes received]
            self._progress: asyncio.Future[None] | None = None

        async def request(self, download: int, upload: int) -> int:
            loop = asyncio.get_running_loop()
            quic = self._quic
            limited = hasattr(type(quic), "max_concurrent_bidi_streams")
            while limited and quic.get_next_available_stream_id() // 4 >= quic.max_concurrent_bidi_streams:
                # qh3 refuses a stream beyond the peer's MAX_STREAMS (aioquic queues it itself):
                # wait for the next datagram, which may raise the limit.
                if self._progress is None or self._progress.done():
                    self._progress = loop.create_future()
                await self._progress
            stream_id = self._quic.get_next_available_stream_id()
            self._quic.send_stream_data(stream_id, HEADER.pack(download), end_stream=upload == 0)
            future = loop.create_future()
            self._waiting[stream_id] = [future, 0]
            if upload:
                self.start_sender(_Sender(stream_id, upload))
            else:
                self.transmit()
            return int(await future)

        def transmit(self) -> None:
            super().transmit()
            if self._progress is not None and not self._progress.done():
                self._progress.set_result(None)

        def quic_event_received(self, event: Any) -> None:
            if isinstance(event, events.StreamDataReceived):
                entry = self._waiting.get(event.stream_id)
                if entry is None:
                    return
                entry[1] += len(event.data)
                if event.end_stream:
                    del self._waiting[event.stream_id]
                    entry[0].set_result(entry[1])
            elif isinstance(event, events.StreamReset):
                entry = self._waiting.pop(event.stream_id, None)
                if entry is not None:
                    entry[0].set_exception(ConnectionError(f"stream {event.stream_id} reset"))
            elif isinstance(event, events.ConnectionTerminated):
                if self._waiting:
                    reason = f"{event.error_code:#x} {event.reason_phrase}"
                    print(f"connection terminated: {reason}", file=sys.stderr)
                for future, _ in self._waiting.values():
                    if not future.done():
                        future.set_exception(ConnectionError(event.reason_phrase))
                self._waiting.clear()

    return ServerProtocol, ClientProtocol


def _configuration(lib: _Lib, is_client: bool) -> Any:
    conf = lib.configuration.QuicConfiguration(
        is_client=is_client, alpn_protocols=[ALPN], max_datagram_size=1452
    )
    if is_client:
        conf.verify_mode = ssl.CERT_NONE
    return conf


async def serve(lib: _Lib, args: argparse.Namespace) -> None:
    server_protocol, _ = protocol_classes(lib)
    conf = _configuration(lib, is_client=False)
    conf.load_cert_chain(args.cert, args.key)
    server = await lib.aio.serve(args.host, args.port, configuration=conf, create_protocol=server_protocol)
    port = server._transport.get_extra_info("sockname")[1]
    announce_listening(port)
    await asyncio.Event().wait()


async def client(lib: _Lib, args: argparse.Namespace) -> None:
    _, client_protocol = protocol_classes(lib)

    @asynccontextmanager
    async def dial() -> AsyncIterator[Any]:
        async with lib.aio.connect(
            args.host, args.port, configuration=_configuration(lib, True), create_protocol=client_protocol
        ) as conn:
            yield conn

    await run_client(args, dial)


def main() -> None:
    parser = peer_arguments("perf peer on aioquic / qh3")
    parser.add_argument("--lib", choices=["aioquic", "qh3"], default="aioquic")
    args, rest = parser.parse_known_args()
    if rest:  # --lib given after the subcommand
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    install_loop(args)
    lib = _Lib(args.lib, args.no_gso)
    asyncio.run(serve(lib, args) if args.role == "server" else client(lib, args))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
