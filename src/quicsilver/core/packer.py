"""The packet packer: frames into packets, packets into one datagram (RFC 9000 §12.2, §14.1, §17;
RFC 9001 §5.4; RFC 9002 §2).

A datagram is built in one bytearray. Levels are coalesced in order Initial, Handshake, then 0-RTT or
1-RTT (a short-header packet must come last: it has no Length field, RFC 9000 §12.2). Inside a
packet frames go in priority order: ACK, CRYPTO, connection control frames, stream control frames,
STREAM data (round robin, owned by the streams map), DATAGRAM frames, then PING if a probe needs an
ack-eliciting packet. RFC 9000 §14.1: a client pads every datagram carrying an Initial packet to at
least 1200 bytes, a server every datagram carrying an ack-eliciting Initial packet.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

from quicsilver.ackhandler.packet import SentPacket
from quicsilver.ackhandler.sent import SentPacketHandler
from quicsilver.core.datagram_queue import DatagramQueue
from quicsilver.core.key_phase import OneRTTKeys
from quicsilver.core.spaces import PacketSpace
from quicsilver.handshake.protection import PacketKeys, protect_packet_into
from quicsilver.protocol import ECN, MIN_INITIAL_PACKET_SIZE, EncryptionLevel, PacketNumberSpace, Perspective
from quicsilver.wire.frames import (
    AckFrame,
    ConnectionCloseFrame,
    Frame,
    PaddingFrame,
    PingFrame,
    StreamFrame,
)
from quicsilver.wire.header import PacketType, build_long_header, build_short_header
from quicsilver.wire.packet_number import encode_packet_number, packet_number_length
from quicsilver.wire.varint import varint_len

__all__ = ["SHORT_HEADER_OVERHEAD", "AppFrameSource", "PacketPacker"]

# Enum members used per packet, as module constants (Final: the compiled build reads a C static
# instead of looking the member up on its class).
_ECN_NOT_ECT: Final = ECN.NOT_ECT
_LEVEL_INITIAL: Final = EncryptionLevel.INITIAL
_LEVEL_ONE_RTT: Final = EncryptionLevel.ONE_RTT
_LEVEL_ZERO_RTT: Final = EncryptionLevel.ZERO_RTT
_PERSPECTIVE_CLIENT: Final = Perspective.CLIENT

if TYPE_CHECKING:
    from quicsilver.core.send_stream import SendStream


TAG_LEN: Final = 16
SHORT_HEADER_OVERHEAD: Final = 1 + 20 + 4 + TAG_LEN  # first byte, longest CID, packet number, AEAD tag
_MIN_PAYLOAD_FOR_SAMPLE: Final = 4  # RFC 9001 §5.4.2: pn_len + payload >= 4 bytes

_LONG_TYPE: Final = {
    EncryptionLevel.INITIAL: PacketType.INITIAL,
    EncryptionLevel.HANDSHAKE: PacketType.HANDSHAKE,
    EncryptionLevel.ZERO_RTT: PacketType.ZERO_RTT,
}
_APPLICATION: Final = PacketNumberSpace.APPLICATION
_SPACE: Final = {
    EncryptionLevel.INITIAL: PacketNumberSpace.INITIAL,
    EncryptionLevel.HANDSHAKE: PacketNumberSpace.HANDSHAKE,
    EncryptionLevel.ZERO_RTT: PacketNumberSpace.APPLICATION,
    EncryptionLevel.ONE_RTT: PacketNumberSpace.APPLICATION,
}


class AppFrameSource(Protocol):
    """Where application-level frames come from (the streams map and the datagram queue)."""

    def has_data(self) -> bool: ...

    def pop_control_frame(self, max_size: int) -> Frame | None: ...

    def pop_stream_frame(self, max_size: int) -> StreamFrame | None: ...

    def sole_sending_stream(self) -> SendStream | None: ...


class _Pending:
    """A packet being filled (plain and slotted: made per packet, see ackhandler.packet.SentPacket)."""

    __slots__ = (
        "ack_eliciting",
        "frames",
        "has_padding",
        "header_len",
        "largest_acked",
        "level",
        "payload",
        "pn",
        "pn_len",
    )

    def __init__(
        self,
        level: EncryptionLevel,
        pn: int,
        pn_len: int,
        header_len: int,
        payload: bytearray,
        frames: list[Frame],
        ack_eliciting: bool,
        has_padding: bool,
        largest_acked: int | None,
    ) -> None:
        self.level = level
        self.pn = pn
        self.pn_len = pn_len
        self.header_len = header_len
        self.payload = payload
        self.frames = frames
        self.ack_eliciting = ack_eliciting
        self.has_padding = has_padding
        self.largest_acked = largest_acked


class PacketPacker:
    """Builds datagrams for one connection; the connection owns every source it reads from."""

    def __init__(
        self,
        perspective: Perspective,
        spaces: dict[PacketNumberSpace, PacketSpace],
        sph: SentPacketHandler,
    ) -> None:
        self.perspective = perspective
        self.spaces = spaces
        self.sph = sph
        self.version = 0
        self.dcid = b""
        self.scid = b""
        self.token = b""
        self.keys: dict[EncryptionLevel, PacketKeys] = {}
        self.one_rtt: OneRTTKeys | None = None
        self.control_frames: deque[Frame] = deque()
        self.app_source: AppFrameSource | None = None
        self.datagrams: DatagramQueue | None = None
        # Called once per 1-RTT packet before it is sealed (the connection may roll keys here).
        self.before_one_rtt_packet: Callable[[], None] | None = None

    # -- sizes --------------------------------------------------------------------------------------

    def _header_len(self, level: EncryptionLevel, pn_len: int) -> int:
        if level == _LEVEL_ONE_RTT:
            return 1 + len(self.dcid) + pn_len
        n = 1 + 4 + 1 + len(self.dcid) + 1 + len(self.scid) + 2 + pn_len
        if level == _LEVEL_INITIAL:
            n += varint_len(len(self.token)) + len(self.token)
        return n

    def can_send(self, level: EncryptionLevel) -> bool:
        if level == _LEVEL_ONE_RTT:
            return self.one_rtt is not None
        return level in self.keys

    # -- datagrams ----------------------------------------------------------------------------------

    def pack_datagram(
        self,
        now: float,
        max_size: int,
        *,
        levels: tuple[EncryptionLevel, ...],
        send_data: bool,
        ping_levels: frozenset[EncryptionLevel] = frozenset(),
        pad_to: int = 0,
        with_ack: bool = True,
    ) -> tuple[bytearray, list[SentPacket]] | None:
        """Coalesce one packet per level in ``levels`` (those with something to send) into a datagram.

        ``send_data`` False restricts packets to ACK frames (congestion-limited, RFC 9002 §7);
        ``ping_levels`` must each carry an ack-eliciting packet (PTO probes, keep-alives);
        ``pad_to`` forces the datagram to at least that many bytes (PATH/MTU probes);
        ``with_ack`` False leaves ACK frames for the next packet (MTU probes, which may well be lost).
        """
        pending: list[_Pending] = []
        remaining = max_size
        for level in levels:
            if not self.can_send(level):
                continue
            pkt = self._fill_packet(now, level, remaining, send_data, level in ping_levels, with_ack)
            if pkt is None:
                continue
            pending.append(pkt)
            remaining -= pkt.header_len + len(pkt.payload) + TAG_LEN
            if level == _LEVEL_ONE_RTT:
                break
        if not pending:
            return None
        # RFC 9000 §14.1: Initial-carrying datagrams from a client (or ack-eliciting ones from a server)
        # are expanded to at least 1200 bytes.
        target = pad_to
        for p in pending:
            if p.level == _LEVEL_INITIAL and (self.perspective == _PERSPECTIVE_CLIENT or p.ack_eliciting):
                target = max(target, max_size)
        if target:
            total = sum(p.header_len + len(p.payload) + TAG_LEN for p in pending)
            if total < target:
                last = pending[-1]
                last.payload += bytes(target - total)
                last.has_padding = True
        return self._seal(pending, now)

    def _fill_packet(
        self,
        now: float,
        level: EncryptionLevel,
        room: int,
        send_data: bool,
        need_ping: bool,
        with_ack: bool = True,
    ) -> _Pending | None:
        space_id = _SPACE[level]
        space = self.spaces[space_id]
        sph = self.sph
        pn = sph.peek_packet_number(space_id)
        pn_len = packet_number_length(pn, sph.largest_acked(space_id))
        if level is _LEVEL_ONE_RTT:
            header_len = 1 + len(self.dcid) + pn_len
        else:
            header_len = self._header_len(level, pn_len)
        avail = room - header_len - TAG_LEN
        if avail < 1:
            return None
        payload = bytearray()
        frames: list[Frame] = []
        ack_eliciting = False
        largest_acked: int | None = None
        tracker = space.ack_tracker
        # ACK first (not in 0-RTT packets, RFC 9000 §12.4 Table 3); has_new_ack first, as a cheap
        # pre-check that skips the has-data question for most data packets.
        if with_ack and level is not _LEVEL_ZERO_RTT and tracker.has_new_ack:
            has_other = need_ping or (send_data and self._has_data(level))
            ack = tracker.get_ack_frame(now, only_if_queued=not has_other)
            if ack is not None:
                ack = _fit_ack(ack, avail)
                if ack is not None:
                    ack.append(payload)
                    frames.append(ack)
                    largest_acked = ack.largest_acked
        if send_data:
            ack_eliciting = self._fill_data(level, space, payload, frames, avail)
        if need_ping and not ack_eliciting and avail - len(payload) >= 1:
            ping = PingFrame()
            ping.append(payload)
            frames.append(ping)
            ack_eliciting = True
        if not frames:
            return None
        padding = False
        if pn_len + len(payload) < _MIN_PAYLOAD_FOR_SAMPLE:
            payload += bytes(_MIN_PAYLOAD_FOR_SAMPLE - pn_len - len(payload))
            padding = True
        sph.pop_packet_number(space_id)
        return _Pending(level, pn, pn_len, header_len, payload, frames, ack_eliciting, padding, largest_acked)

    def has_pending_data(self) -> bool:
        """Whether any level has ack-eliciting data waiting (for pacing and congestion decisions)."""
        return any(self._has_data(level) for level in self.keys) or (
            self.one_rtt is not None and self._has_data(_LEVEL_ONE_RTT)
        )

    def _has_data(self, level: EncryptionLevel) -> bool:
        if level == _LEVEL_ZERO_RTT:
            return self.app_source is not None and self.app_source.has_data()
        space = self.spaces[_SPACE[level]]
        if space.crypto.has_data():
            return True
        if level != _LEVEL_ONE_RTT:
            return False
        return (
            bool(self.control_frames)
            or (self.datagrams is not None and self.datagrams.has_data())
            or (self.app_source is not None and self.app_source.has_data())
        )

    def _fill_data(
        self, level: EncryptionLevel, space: PacketSpace, payload: bytearray, frames: list[Frame], avail: int
    ) -> bool:
        eliciting = False
        if level != _LEVEL_ZERO_RTT:
            crypto = space.crypto
            while crypto.has_data():
                frame = crypto.pop_crypto_frame(avail - len(payload))
                if frame is None:
                    break
                frame.append(payload)
                frames.append(frame)
                eliciting = True
            if level != _LEVEL_ONE_RTT:
                return eliciting
            control = self.control_frames
            while control:
                cf = control[0]
                if cf.length() > avail - len(payload):
                    break
                control.popleft()
                cf.append(payload)
                frames.append(cf)
                eliciting = True
        source = self.app_source
        if source is not None:
            while True:
                room = avail - len(payload)
                if room < 2:
                    break
                cframe = source.pop_control_frame(room)
                if cframe is None:
                    break
                cframe.append(payload)
                frames.append(cframe)
                eliciting = True
            while True:
                room = avail - len(payload)
                if room < 3:
                    break
                sframe = source.pop_stream_frame(room)
                if sframe is None:
                    break
                sframe.append(payload)
                frames.append(sframe)
                eliciting = True
        datagrams = self.datagrams
        if datagrams is not None and level == _LEVEL_ONE_RTT:
            while (dframe := datagrams.pop_datagram_frame(avail - len(payload))) is not None:
                dframe.append(payload)
                frames.append(dframe)
                eliciting = True
        return eliciting

    def _seal(self, pending: list[_Pending], now: float) -> tuple[bytearray, list[SentPacket]]:
        buf = bytearray()
        packed: list[SentPacket] = []
        # RFC 9000 §13.4.2: 1-RTT packets carry the ECN codepoint under validation; one per datagram.
        ecn = _ECN_NOT_ECT
        if pending[-1].level == _LEVEL_ONE_RTT or pending[-1].level == _LEVEL_ZERO_RTT:
            ecn = self.sph.ecn_marking(_APPLICATION)
        for p in pending:
            start = len(buf)
            if p.level == _LEVEL_ONE_RTT:
                one_rtt = self.one_rtt
                assert one_rtt is not None
                if self.before_one_rtt_packet is not None:
                    self.before_one_rtt_packet()
                pn_offset = build_short_header(buf, self.dcid, p.pn, p.pn_len, one_rtt.phase_bit)
                keys = one_rtt.send_keys
                one_rtt.on_packet_sent(p.pn)
            else:
                length = p.pn_len + len(p.payload) + TAG_LEN
                token = self.token if p.level == _LEVEL_INITIAL else b""
                pn_offset = build_long_header(
                    buf,
                    self.version,
                    _LONG_TYPE[p.level],
                    self.dcid,
                    self.scid,
                    token,
                    length,
                    p.pn,
                    p.pn_len,
                )
                keys = self.keys[p.level]
            size = protect_packet_into(keys, buf, pn_offset, p.pn_len, p.pn, p.payload, header_offset=start)
            if p.has_padding:
                p.frames.append(PaddingFrame(1))
            space = _SPACE[p.level]
            # Positional arguments (the field order of SentPacket): this runs for every packet.
            packed.append(
                SentPacket(
                    p.pn,
                    space,
                    now,
                    size,
                    p.ack_eliciting,
                    p.ack_eliciting or p.has_padding,
                    p.frames,
                    False,
                    ecn if space is _APPLICATION else _ECN_NOT_ECT,
                    p.largest_acked,
                    p.level is _LEVEL_ZERO_RTT,
                )
            )
        return buf, packed

    # -- bursts of STREAM packets ------------------------------------------------------------------

    def burst_stream(self) -> SendStream | None:
        """The stream a burst may cut packets from: 1-RTT keys, and nothing due but one stream's new
        data (no ACK, CRYPTO, control frame or DATAGRAM; see ``pack_stream_burst``)."""
        if self.one_rtt is None or self.control_frames or self.app_source is None:
            return None
        datagrams = self.datagrams
        if datagrams is not None and datagrams.has_data():
            return None
        space = self.spaces[_APPLICATION]
        if space.ack_tracker.has_new_ack or space.crypto.has_data():
            return None
        return self.app_source.sole_sending_stream()

    def pack_stream_burst(
        self,
        now: float,
        max_size: int,
        stream: SendStream,
        allowance: tuple[int, int, int, ECN],
        max_datagrams: int,
    ) -> tuple[list[bytes], list[SentPacket]]:
        """Up to ``max_datagrams`` 1-RTT datagrams of one STREAM frame each, cut from ``stream``'s new
        data while ``allowance`` (``SentPacketHandler.burst_allowance``) lasts, and their packets; the
        caller records them as sent. ``stream`` comes from ``burst_stream()``: nothing else is due, so
        each packet is the one ``pack_datagram`` would build, without deciding the send mode, the frame
        sources and the padding again for every packet. Stops early once the stream cannot send more."""
        one_rtt = self.one_rtt
        assert one_rtt is not None
        sph = self.sph
        largest_acked = sph.largest_acked(_APPLICATION)
        dcid = self.dcid
        overhead = 1 + len(dcid) + TAG_LEN
        before = self.before_one_rtt_packet
        window_room, pacing_room, left, ecn = allowance
        if left > max_datagrams:
            left = max_datagrams
        datagrams: list[bytes] = []
        packets: list[SentPacket] = []
        while left > 0 and window_room > 0 and pacing_room >= 0:
            pn = sph.peek_packet_number(_APPLICATION)
            pn_len = packet_number_length(pn, largest_acked)
            frame = stream.pop_new_data(max_size - overhead - pn_len)
            if frame is None:
                break
            sph.pop_packet_number(_APPLICATION)
            payload = bytearray()
            frame.append(payload)
            frames: list[Frame] = [frame]
            if pn_len + len(payload) < _MIN_PAYLOAD_FOR_SAMPLE:
                payload += bytes(_MIN_PAYLOAD_FOR_SAMPLE - pn_len - len(payload))
                frames.append(PaddingFrame(1))
            if before is not None:
                before()
            buf = bytearray()
            pn_offset = build_short_header(buf, dcid, pn, pn_len, one_rtt.phase_bit)
            size = protect_packet_into(one_rtt.send_keys, buf, pn_offset, pn_len, pn, payload)
            one_rtt.on_packet_sent(pn)
            # Positional arguments (the field order of SentPacket), as in _seal.
            datagrams.append(bytes(buf))
            packets.append(SentPacket(pn, _APPLICATION, now, size, True, True, frames, False, ecn, None))
            window_room -= size
            pacing_room -= size
            left -= 1
            if not stream.can_send_now():
                break
        return datagrams, packets

    # -- path probes -------------------------------------------------------------------------------

    def pack_path_probe(
        self, now: float, frames: tuple[Frame, ...], dcid: bytes, min_size: int, max_size: int
    ) -> tuple[bytearray, list[SentPacket]] | None:
        """One 1-RTT packet with PATH_CHALLENGE / PATH_RESPONSE ``frames`` sent with ``dcid``,
        expanded to ``min_size`` bytes (RFC 9000 §8.2.1, §8.2.2). None without 1-RTT keys."""
        if self.one_rtt is None:
            return None
        saved = self.dcid
        self.dcid = dcid
        try:
            sph = self.sph
            space_id = _APPLICATION
            pn = sph.peek_packet_number(space_id)
            _, pn_len = encode_packet_number(pn, sph.largest_acked(space_id))
            header_len = self._header_len(_LEVEL_ONE_RTT, pn_len)
            payload = bytearray()
            for f in frames:
                f.append(payload)
            total = header_len + len(payload) + TAG_LEN
            if total > max_size:
                return None
            target = min(min_size, max_size)
            padding = total < target
            if padding:
                payload += bytes(target - total)
            sph.pop_packet_number(space_id)
            pending = _Pending(
                _LEVEL_ONE_RTT, pn, pn_len, header_len, payload, list(frames), True, padding, None
            )
            return self._seal([pending], now)
        finally:
            self.dcid = saved

    # -- CONNECTION_CLOSE ---------------------------------------------------------------------------

    def pack_close(
        self, frames: dict[EncryptionLevel, ConnectionCloseFrame], max_size: int, now: float
    ) -> bytearray:
        """A datagram with a CONNECTION_CLOSE in each level we have keys for (RFC 9000 §10.2.3)."""
        pending: list[_Pending] = []
        for level, frame in frames.items():
            if not self.can_send(level):
                continue
            space_id = _SPACE[level]
            pn = self.sph.pop_packet_number(space_id)
            _, pn_len = encode_packet_number(pn, self.sph.largest_acked(space_id))
            payload = bytearray()
            frame.append(payload)
            if pn_len + len(payload) < _MIN_PAYLOAD_FOR_SAMPLE:
                payload += bytes(_MIN_PAYLOAD_FOR_SAMPLE - pn_len - len(payload))
            pending.append(
                _Pending(
                    level, pn, pn_len, self._header_len(level, pn_len), payload, [frame], False, False, None
                )
            )
        if not pending:
            return bytearray()
        if self.perspective == _PERSPECTIVE_CLIENT and pending[0].level == _LEVEL_INITIAL:
            total = sum(p.header_len + len(p.payload) + TAG_LEN for p in pending)
            if total < MIN_INITIAL_PACKET_SIZE:
                pending[-1].payload += bytes(MIN_INITIAL_PACKET_SIZE - total)
        buf, _ = self._seal(pending, now)
        return buf


def _fit_ack(ack: AckFrame, avail: int) -> AckFrame | None:
    """Drop the oldest ACK ranges until the frame fits ``avail`` bytes (RFC 9000 §13.2.4)."""
    if ack.length() <= avail:
        return ack
    ranges = ack.ranges
    while len(ranges) > 1:
        ranges = ranges[:-1]
        candidate = AckFrame(ranges, ack.delay, ack.ecn)
        if candidate.length() <= avail:
            return candidate
    return None
