"""A one-stream bulk transfer driven through the simulated network (shared by the transfer tests)."""

from __future__ import annotations

import hashlib
from typing import Any

from quicsilver.core.events import Event, StreamReadable, StreamWritable

from .sim import Sim


class TransferSim(Sim):
    """The client sends ``payload`` on one bidirectional stream; the server reads it all."""

    def __init__(self, payload: bytes, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.payload = payload
        self.sent = 0
        self.stream_id: int | None = None
        self.received = bytearray()
        self.fin = False
        self.paused = False  # tests hold the writer back to shape the scenario

    def pump_writer(self) -> None:
        if self.paused:
            return
        if self.stream_id is None:
            if not self.client._handshake_complete:
                return
            self.stream_id = self.client.open_stream()
        while self.sent < len(self.payload):
            n = self.client.stream_write(
                self.stream_id, memoryview(self.payload)[self.sent : self.sent + 65536]
            )
            if n == 0:
                break
            self.sent += n
            if self.sent == len(self.payload):
                self.client.stream_close(self.stream_id)

    def on_client_event(self, ev: Event) -> None:
        if isinstance(ev, StreamWritable):
            self.pump_writer()

    def on_server_event(self, ev: Event) -> None:
        if isinstance(ev, StreamReadable):
            while True:
                data = self.server.stream_read(ev.stream_id, 1 << 20)
                if not data:
                    if self.server.stream_at_eof(ev.stream_id):
                        self.fin = True
                    break
                self.received += data

    def step(self, limit: float = float("inf")) -> bool:
        self.pump_writer()
        return super().step(limit)

    def done(self) -> bool:
        return self.fin

    def digest_ok(self) -> bool:
        return hashlib.sha256(self.received).digest() == hashlib.sha256(self.payload).digest()
