"""Datagram queues (RFC 9221)."""

from __future__ import annotations

import pytest

from quicsilver.config import Config
from quicsilver.core.datagram_queue import DatagramQueue
from quicsilver.core.events import DatagramReceived, Event
from quicsilver.errors import DatagramTooLargeError, TransportError, TransportErrorCode
from quicsilver.wire.frames import DatagramFrame

from .sim import Link, Sim


def make_queue(peer: int | None = 1200, local: int | None = 16383, **kwargs: int) -> DatagramQueue:
    queue = DatagramQueue(local_max_frame_size=local, **kwargs)
    queue.set_peer_max_frame_size(peer)
    return queue


def test_datagrams_round_trip_in_order() -> None:
    sender = make_queue()
    receiver = make_queue()
    for i in range(5):
        sender.send(f"datagram {i}".encode())
    while (frame := sender.pop_datagram_frame(1200)) is not None:
        receiver.handle_datagram_frame(frame)
    assert [receiver.receive() for _ in range(5)] == [f"datagram {i}".encode() for i in range(5)]
    assert receiver.receive() is None


def test_oversized_datagram_raises_at_the_call() -> None:
    queue = make_queue(peer=100)
    assert queue.max_datagram_size() == 97  # type byte + 2-byte length + 97 = 100
    queue.send(b"x" * 97)
    with pytest.raises(DatagramTooLargeError) as exc:
        queue.send(b"x" * 98)
    assert exc.value.size == 98 and exc.value.max_size == 97


def test_path_payload_limits_datagram_size() -> None:
    queue = make_queue(peer=65535, max_payload_size=1000)
    with pytest.raises(DatagramTooLargeError):
        queue.send(b"x" * 1000)
    queue.send(b"x" * queue.max_datagram_size())


def test_no_datagrams_before_peer_allows_them() -> None:
    queue = make_queue(peer=None)
    assert queue.max_datagram_size() == 0
    with pytest.raises(DatagramTooLargeError):
        queue.send(b"hi")
    queue.set_peer_max_frame_size(0)
    with pytest.raises(DatagramTooLargeError):
        queue.send(b"")


def test_datagram_waits_for_a_packet_with_room() -> None:
    queue = make_queue()
    queue.send(b"y" * 500)
    assert queue.pop_datagram_frame(100) is None
    assert queue.has_data()
    assert queue.pop_datagram_frame(600) == DatagramFrame(b"y" * 500)
    assert not queue.has_data()


def test_datagram_that_no_longer_fits_the_path_is_dropped() -> None:
    queue = make_queue()
    queue.send(b"z" * 1100)
    queue.send(b"small")
    queue.set_max_payload_size(800)
    assert queue.pop_datagram_frame(800) == DatagramFrame(b"small")
    assert queue.send_dropped == 1


def test_send_queue_drops_oldest_when_full() -> None:
    queue = make_queue(send_queue_size=3)
    for i in range(5):
        queue.send(bytes([i]))
    assert queue.send_dropped == 2
    frames = []
    while (frame := queue.pop_datagram_frame(100)) is not None:
        frames.append(frame.data)
    assert frames == [b"\x02", b"\x03", b"\x04"]


def test_receive_queue_drops_oldest_when_full() -> None:
    queue = make_queue(receive_queue_size=4)
    for i in range(10):
        queue.handle_datagram_frame(DatagramFrame(bytes([i])))
    assert queue.received_dropped == 6
    assert queue.pending_received() == 4
    assert [queue.receive() for _ in range(4)] == [bytes([i]) for i in range(6, 10)]


def test_datagram_without_negotiation_is_protocol_violation() -> None:
    queue = make_queue(local=None)
    with pytest.raises(TransportError) as exc:
        queue.handle_datagram_frame(DatagramFrame(b"unexpected"))
    assert exc.value.code == TransportErrorCode.PROTOCOL_VIOLATION


def test_datagram_larger_than_we_advertised_is_protocol_violation() -> None:
    queue = make_queue(local=50)
    queue.handle_datagram_frame(DatagramFrame(b"a" * 49))  # 1 + 49 = 50 fits
    with pytest.raises(TransportError) as exc:
        queue.handle_datagram_frame(DatagramFrame(b"a" * 50))
    assert exc.value.code == TransportErrorCode.PROTOCOL_VIOLATION


def test_received_memoryview_is_copied() -> None:
    queue = make_queue()
    packet = bytearray(b"payload")
    queue.handle_datagram_frame(DatagramFrame(memoryview(packet)))
    packet[:] = b"changed"
    assert queue.receive() == b"payload"


# -- through two QuicConnections in the simulated network -------------------------------------------


def _connected(enable: bool = True, **link: float) -> Sim:
    sim = Sim(config=Config(enable_datagrams=enable), seed=6, to_server=Link(**link), to_client=Link(**link))
    assert sim.run_until(lambda: sim.client._handshake_complete and sim.server._handshake_complete, 5)
    return sim


def _received(events: list[Event]) -> list[bytes]:
    return [e.data for e in events if isinstance(e, DatagramReceived)]


def test_datagrams_round_trip_between_connections() -> None:
    sim = _connected()
    for i in range(20):
        sim.client.send_datagram(f"up {i}".encode())
    sim.server.send_datagram(b"down")
    sim.run_until(lambda: len(_received(sim.server_events)) == 20 and _received(sim.client_events), 2)
    assert _received(sim.server_events) == [f"up {i}".encode() for i in range(20)]
    assert _received(sim.client_events) == [b"down"]


def test_oversized_datagram_raises_at_the_connection_call() -> None:
    sim = _connected()
    limit = sim.client.max_datagram_payload()
    assert 1000 < limit < 1500
    sim.client.send_datagram(b"x" * limit)
    with pytest.raises(DatagramTooLargeError) as exc:
        sim.client.send_datagram(b"x" * (limit + 1))
    assert exc.value.max_size == limit
    sim.run_until(lambda: bool(_received(sim.server_events)), 2)
    assert _received(sim.server_events) == [b"x" * limit]


def test_datagrams_not_negotiated_raise_at_the_call() -> None:
    sim = _connected(enable=False)
    assert sim.client.max_datagram_payload() == 0
    with pytest.raises(DatagramTooLargeError):
        sim.client.send_datagram(b"hi")


def test_lost_datagrams_are_not_retransmitted() -> None:
    sim = _connected(loss=0.3)
    for i in range(100):
        sim.client.send_datagram(bytes([i]))
        sim.run_until(lambda: False, sim.now + 0.002)
    sim.run_until(lambda: False, sim.now + 2)
    got = _received(sim.server_events)
    assert 30 < len(got) < 100  # unreliable: about 30 % never arrive, and none twice
    assert len(set(got)) == len(got)
