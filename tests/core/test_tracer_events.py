"""Connection-level tracer events for the connection's life: started, state changes, closed (the qlog
connectivity events; quic-go's StartedConnection / UpdatedState / ClosedConnection)."""

from __future__ import annotations

from typing import Any

from quicsilver.config import Config
from quicsilver.qlog.tracer import ConnectionTracer

from .sim import Sim


class Recorder(ConnectionTracer):
    def __init__(self) -> None:
        self.started: list[tuple[Any, ...]] = []
        self.states: list[tuple[str, str]] = []
        self.closed: list[Exception] = []

    def started_connection(self, local: Any, remote: Any, src_cid: bytes, dest_cid: bytes) -> None:
        self.started.append((remote, src_cid, dest_cid))

    def updated_state(self, old: str, new: str) -> None:
        self.states.append((old, new))

    def closed_connection(self, error: Exception) -> None:
        self.closed.append(error)


def test_tracer_sees_start_handshake_states_and_close() -> None:
    tracers: dict[str, Recorder] = {}

    def factory(perspective: Any, odcid: bytes) -> Recorder:
        rec = Recorder()
        tracers[perspective.name.lower()] = rec
        return rec

    sim = Sim(config=Config(tracer=factory))
    assert sim.run_until(sim.handshake_confirmed, max_time=5)
    client, server = tracers["client"], tracers["server"]
    for rec in (client, server):
        assert len(rec.started) == 1
        assert rec.states[:2] == [
            ("handshake_started", "handshake_complete"),
            ("handshake_complete", "handshake_confirmed"),
        ]
    assert client.started[0][1] and server.started[0][1]  # each side's own source CID
    sim.client.close(0, "bye")
    sim.run_until(lambda: bool(server.closed) and ("draining", "closed") in server.states, max_time=5)
    assert ("active", "closing") in client.states
    assert ("active", "draining") in server.states and ("draining", "closed") in server.states
    assert len(client.closed) == 1 and len(server.closed) == 1
