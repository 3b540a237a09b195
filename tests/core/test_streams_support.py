"""Fakes and a frame-level link between two StreamsMaps, shared by the stream tests.

The link plays the part of the packet packer, the network and the ACK machinery: each step
every side packs control frames then STREAM frames (as the packer does), the network drops or
reorders frames with a seeded RNG, the receiver handles what arrives, and the sender learns at
once which frames were acknowledged and which were lost.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from quicsilver.core.streams_map import StreamsMap
from quicsilver.protocol import Perspective
from quicsilver.wire.frames import Frame


@dataclass
class FakeRTT:
    smoothed_rtt: float = 0.05


@dataclass
class RecordingSender:
    """A StreamSender that records what a stream part asks for."""

    control: list[Frame] = field(default_factory=list)
    has_data: list[int] = field(default_factory=list)
    window_updates: list[int] = field(default_factory=list)
    completed: list[tuple[str, int]] = field(default_factory=list)

    def queue_control_frame(self, frame: Frame) -> None:
        self.control.append(frame)

    def on_has_stream_data(self, stream_id: int) -> None:
        self.has_data.append(stream_id)

    def on_window_update_due(self, stream_id: int) -> None:
        self.window_updates.append(stream_id)

    def on_send_side_completed(self, stream_id: int) -> None:
        self.completed.append(("send", stream_id))

    def on_receive_side_completed(self, stream_id: int) -> None:
        self.completed.append(("recv", stream_id))


@dataclass
class RecordingEvents:
    """A StreamEventSink that records notifications as tuples."""

    events: list[tuple[str, int] | tuple[str, int, int] | tuple[str, bool]] = field(default_factory=list)
    opened: list[int] = field(default_factory=list)

    def on_stream_opened(self, stream_id: int) -> None:
        self.events.append(("opened", stream_id))
        self.opened.append(stream_id)

    def on_stream_readable(self, stream_id: int) -> None:
        self.events.append(("readable", stream_id))

    def on_stream_writable(self, stream_id: int) -> None:
        self.events.append(("writable", stream_id))

    def on_stream_reset(self, stream_id: int, error_code: int) -> None:
        self.events.append(("reset", stream_id, error_code))

    def on_stop_sending(self, stream_id: int, error_code: int) -> None:
        self.events.append(("stop_sending", stream_id, error_code))

    def on_streams_available(self, bidi: bool) -> None:
        self.events.append(("available", bidi))


PEER_PARAMS = {
    "initial_max_data": 768 * 1024,
    "initial_max_stream_data_bidi_local": 512 * 1024,
    "initial_max_stream_data_bidi_remote": 512 * 1024,
    "initial_max_stream_data_uni": 512 * 1024,
    "initial_max_streams_bidi": 100,
    "initial_max_streams_uni": 100,
}


def make_map(
    perspective: Perspective = Perspective.CLIENT, *, params: dict[str, int] | None = None, **kwargs: int
) -> tuple[StreamsMap, RecordingEvents]:
    """A map with quic-go's default limits whose peer advertised ``params`` (PEER_PARAMS by default)."""
    events = RecordingEvents()
    smap = StreamsMap(perspective, rtt=FakeRTT(), events=events, **kwargs)
    smap.apply_peer_transport_parameters(**(params if params is not None else PEER_PARAMS))
    return smap, events


def params_of(smap_kwargs: dict[str, int]) -> dict[str, int]:
    """The transport parameters a map built with these keyword arguments advertises."""
    window = smap_kwargs.get("initial_stream_receive_window", 512 * 1024)
    return {
        "initial_max_data": smap_kwargs.get("initial_connection_receive_window", 768 * 1024),
        "initial_max_stream_data_bidi_local": window,
        "initial_max_stream_data_bidi_remote": window,
        "initial_max_stream_data_uni": window,
        "initial_max_streams_bidi": smap_kwargs.get("max_incoming_streams", 100),
        "initial_max_streams_uni": smap_kwargs.get("max_incoming_uni_streams", 100),
    }


class Link:
    """Two maps exchanging frames over a seeded lossy, reordering network."""

    def __init__(
        self,
        client_kwargs: dict[str, int] | None = None,
        server_kwargs: dict[str, int] | None = None,
        *,
        loss: float = 0.0,
        reorder: bool = False,
        seed: int = 1,
        packet_size: int = 1200,
        packets_per_step: int = 64,
    ) -> None:
        ckw = client_kwargs or {}
        skw = server_kwargs or {}
        self.client_events = RecordingEvents()
        self.server_events = RecordingEvents()
        self.client = StreamsMap(Perspective.CLIENT, rtt=FakeRTT(), events=self.client_events, **ckw)
        self.server = StreamsMap(Perspective.SERVER, rtt=FakeRTT(), events=self.server_events, **skw)
        self.client.apply_peer_transport_parameters(**params_of(skw))
        self.server.apply_peer_transport_parameters(**params_of(ckw))
        self.rng = random.Random(seed)
        self.loss = loss
        self.reorder = reorder
        self.packet_size = packet_size
        self.packets_per_step = packets_per_step
        self.now = 0.0
        self.frames_sent = 0

    def _pack(self, smap: StreamsMap) -> list[list[Frame]]:
        packets: list[list[Frame]] = []
        for _ in range(self.packets_per_step):
            if not smap.has_data():
                break
            room = self.packet_size
            frames: list[Frame] = []
            while room >= 2:
                cframe = smap.pop_control_frame(room)
                if cframe is None:
                    break
                frames.append(cframe)
                room -= cframe.length()
            while room >= 3:
                sframe = smap.pop_stream_frame(room)
                if sframe is None:
                    break
                assert sframe.length() <= room
                frames.append(sframe)
                room -= sframe.length()
            if not frames:
                break
            packets.append(frames)
        return packets

    def _deliver(self, sender: StreamsMap, receiver: StreamsMap, packets: list[list[Frame]]) -> None:
        if self.reorder:
            self.rng.shuffle(packets)
        for frames in packets:
            self.frames_sent += len(frames)
            if self.rng.random() < self.loss:
                for frame in frames:
                    sender.on_frame_lost(frame)
                continue
            for frame in frames:
                receiver.handle_frame(frame)
            for frame in frames:
                sender.on_frame_acked(frame)

    def step(self, dt: float = 0.001) -> bool:
        """One exchange in each direction; True if anything was sent."""
        self.now += dt
        to_server = self._pack(self.client)
        to_client = self._pack(self.server)
        self._deliver(self.client, self.server, to_server)
        self._deliver(self.server, self.client, to_client)
        return bool(to_server or to_client)


def drain(smap: StreamsMap, stream_id: int, now: float) -> bytes:
    """Read everything currently readable on a stream."""
    stream = smap.get_receive_stream(stream_id)
    assert stream is not None
    return stream.read(-1, now)
