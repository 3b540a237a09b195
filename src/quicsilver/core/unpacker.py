"""The packet unpacker: one protected packet of a datagram in, its level, packet number and frames out
(RFC 9000 §12.2, §17.2, §17.3; RFC 9001 §5.4, §5.5).

Header protection is removed in a writable copy of the datagram (one copy per datagram). Packets that
fail to decrypt, or whose keys we lack or have dropped, are reported as drops with a reason: RFC 9001
§5.5, such packets are discarded, they never close the connection. Frames are parsed from a memoryview
of the plaintext so STREAM data is not copied again.
"""

from __future__ import annotations

from typing import Final

from quicsilver.core.key_phase import OneRTTKeys
from quicsilver.core.spaces import PacketSpace
from quicsilver.errors import TransportError, TransportErrorCode
from quicsilver.handshake.protection import CipherSuite, DecryptionError, PacketKeys, unprotect_header
from quicsilver.protocol import EncryptionLevel, PacketNumberSpace
from quicsilver.qlog.tracer import DropReason
from quicsilver.wire.frames import Frame, check_frame_allowed, parse_frame, parse_frames
from quicsilver.wire.header import PacketType, parse_long_header, parse_short_header
from quicsilver.wire.packet_number import decode_packet_number

__all__ = ["Dropped", "PacketUnpacker", "UnpackedPacket", "parse_payload"]

_LEVEL_OF: Final = {
    PacketType.INITIAL: EncryptionLevel.INITIAL,
    PacketType.HANDSHAKE: EncryptionLevel.HANDSHAKE,
    PacketType.ZERO_RTT: EncryptionLevel.ZERO_RTT,
    PacketType.ONE_RTT: EncryptionLevel.ONE_RTT,
}
_SPACE_OF: Final = {
    EncryptionLevel.INITIAL: PacketNumberSpace.INITIAL,
    EncryptionLevel.HANDSHAKE: PacketNumberSpace.HANDSHAKE,
    EncryptionLevel.ZERO_RTT: PacketNumberSpace.APPLICATION,
    EncryptionLevel.ONE_RTT: PacketNumberSpace.APPLICATION,
}
_LONG_RESERVED_BITS: Final = 0x0C
_SHORT_RESERVED_BITS: Final = 0x18
_KEY_PHASE_BIT: Final = 0x04
_SAMPLE_END: Final = 4 + 16  # from the packet number field to the end of the header protection sample
# Enum members used per packet, as module constants (Final: the compiled build reads a C static
# instead of looking the member up on its class).
_ONE_RTT_TYPE: Final = PacketType.ONE_RTT
_ONE_RTT_LEVEL: Final = EncryptionLevel.ONE_RTT
_APPLICATION: Final = PacketNumberSpace.APPLICATION


class UnpackedPacket:
    """A decrypted packet: where it came from and its plaintext payload. (A plain slotted class: one
    is made per packet received, and compiled its constructor is native, see SentPacket.)"""

    __slots__ = ("dcid", "level", "packet_type", "payload", "pn", "scid", "size", "token", "version")

    def __init__(
        self,
        level: EncryptionLevel,
        packet_type: PacketType,
        pn: int,
        version: int,
        dcid: bytes,
        scid: bytes,
        token: bytes,
        size: int,
        payload: bytes,
    ) -> None:
        self.level = level
        self.packet_type = packet_type
        self.pn = pn
        self.version = version
        self.dcid = dcid
        self.scid = scid
        self.token = token
        self.size = size
        self.payload = payload

    def __repr__(self) -> str:
        return f"UnpackedPacket(level={self.level.name}, pn={self.pn}, size={self.size})"


class Dropped:
    """A packet we discarded without closing the connection, and why (a qlog DropReason)."""

    __slots__ = ("packet_type", "reason", "size")

    def __init__(self, packet_type: PacketType | None, size: int, reason: str) -> None:
        self.packet_type = packet_type
        self.size = size
        self.reason = reason

    def __repr__(self) -> str:
        return f"Dropped(packet_type={self.packet_type}, size={self.size}, reason={self.reason!r})"


class PacketUnpacker:
    """Removes packet protection with the connection's current receive keys."""

    def __init__(self, spaces: dict[PacketNumberSpace, PacketSpace], short_dcid_len: int) -> None:
        self.spaces = spaces
        self.short_dcid_len = short_dcid_len
        self.keys: dict[EncryptionLevel, PacketKeys] = {}
        # Keys installed whose derivation waits for their first packet or for ``derive_pending``
        # (QuicConnection.work_ahead, once the flight they answer is out): (suite, secret, version).
        self.pending: dict[EncryptionLevel, tuple[CipherSuite, bytes, int]] = {}
        self.one_rtt: OneRTTKeys | None = None
        # The current PTO, kept up to date by the connection when the RTT changes (it only matters
        # for how long old 1-RTT keys are kept after a key update).
        self.pto = 1.0

    def install_later(self, level: EncryptionLevel, suite: CipherSuite, secret: bytes, version: int) -> None:
        """Install the receive keys of ``level``; derive them when first needed (``derive_pending``)."""
        self.keys.pop(level, None)
        self.pending[level] = (suite, secret, version)

    def drop_keys(self, level: EncryptionLevel) -> None:
        self.keys.pop(level, None)
        self.pending.pop(level, None)

    def derive_pending(self) -> None:
        for level in list(self.pending):
            self._derive(level)

    def _derive(self, level: EncryptionLevel) -> PacketKeys | None:
        entry = self.pending.pop(level, None)
        if entry is None:
            return None
        keys = self.keys[level] = PacketKeys(entry[0], entry[1], entry[2])
        return keys

    def unpack(self, buf: bytearray, pos: int, now: float) -> tuple[UnpackedPacket | Dropped, int]:
        """Unprotect the packet at ``buf[pos]``; returns it (or a drop) and where the next one starts.

        Raises TransportError only for a packet that authenticated but breaks the rules (reserved
        bits, RFC 9000 §17.2) or a key update error (RFC 9001 §6).
        """
        first = buf[pos]
        if first & 0x80:
            try:
                hdr = parse_long_header(buf, pos)
            except TransportError:
                # An unparsable header: the rest of the datagram cannot be delimited either.
                return Dropped(None, len(buf) - pos, DropReason.HEADER_PARSE_ERROR), len(buf)
            ptype = hdr.packet_type
            end = hdr.packet_end
            if ptype not in _LEVEL_OF:
                return Dropped(ptype, end - pos, DropReason.UNEXPECTED_PACKET), end
            level = _LEVEL_OF[ptype]
            keys = self.keys.get(level)
            if keys is None:
                keys = self._derive(level)
                if keys is None:
                    return Dropped(ptype, end - pos, DropReason.KEY_UNAVAILABLE), end
            pn_offset = hdr.pn_offset - pos
            version, dcid, scid, token = hdr.version, hdr.dcid, hdr.scid, hdr.token
        else:
            ptype = _ONE_RTT_TYPE
            level = _ONE_RTT_LEVEL
            end = len(buf)
            one_rtt = self.one_rtt
            if one_rtt is None:
                return Dropped(ptype, end - pos, DropReason.KEY_UNAVAILABLE), end
            if not first & 0x40:
                # RFC 9000 §17.3.1: a zero Fixed Bit is "not [a] valid packet[] in this version and MUST
                # be discarded" (we do not advertise grease_quic_bit). The bit is not header-protected:
                # no decryption attempt, no failed authentication counted (zero padding lands here).
                return Dropped(ptype, end - pos, DropReason.HEADER_PARSE_ERROR), end
            if pos + 1 + self.short_dcid_len + _SAMPLE_END <= end:
                return self._unpack_short(buf, pos, first, now)
            try:
                dcid, abs_pn_offset = parse_short_header(buf, pos, self.short_dcid_len)
            except TransportError:
                return Dropped(ptype, end - pos, DropReason.HEADER_PARSE_ERROR), end
            pn_offset = abs_pn_offset - pos
            keys = one_rtt.recv_keys
            version, scid, token = 0, b"", b""
        space = self.spaces[_SPACE_OF[level]]
        if space.discarded:
            return Dropped(ptype, end - pos, DropReason.KEY_UNAVAILABLE), end
        view = memoryview(buf)[pos:end]
        try:
            first, truncated, pn_len = unprotect_header(keys, view, pn_offset)
            pn = decode_packet_number(space.largest_received, truncated, pn_len * 8)
            header_end = pn_offset + pn_len
            if level == _ONE_RTT_LEVEL:
                assert self.one_rtt is not None
                payload = self.one_rtt.open(
                    pn, view[:header_end], view[header_end:], bool(first & _KEY_PHASE_BIT), now, self.pto
                )
            else:
                payload = keys.open(pn, view[:header_end], view[header_end:])
        except DecryptionError:
            return Dropped(ptype, end - pos, DropReason.PAYLOAD_DECRYPT_ERROR), end
        finally:
            view.release()
        # RFC 9000 §17.2 / §17.3.1: non-zero reserved bits after removing header protection MUST be
        # treated as a connection error of type PROTOCOL_VIOLATION.
        if first & (_LONG_RESERVED_BITS if first & 0x80 else _SHORT_RESERVED_BITS):
            raise TransportError(TransportErrorCode.PROTOCOL_VIOLATION, "reserved header bits are set")
        return (
            UnpackedPacket(level, ptype, pn, version, dcid, scid, token, end - pos, payload),
            end,
        )

    def _unpack_short(
        self, buf: bytearray, pos: int, first: int, now: float
    ) -> tuple[UnpackedPacket | Dropped, int]:
        """``unpack`` for a 1-RTT packet long enough for its header protection sample: the hot path,
        with ``parse_short_header``, ``unprotect_header`` and ``decode_packet_number`` inline."""
        end = len(buf)
        space = self.spaces[_APPLICATION]
        if space.discarded:
            return Dropped(_ONE_RTT_TYPE, end - pos, DropReason.KEY_UNAVAILABLE), end
        one_rtt = self.one_rtt
        assert one_rtt is not None
        pn_start = pos + 1 + self.short_dcid_len
        dcid = bytes(buf[pos + 1 : pn_start])
        # RFC 9001 §5.4.2: the sample starts 4 bytes after the start of the packet number field;
        # §5.4.1: a short header protects the low 5 bits of its first byte.
        sample = pn_start + 4
        mask = one_rtt.recv_keys.header_mask_block(buf[sample : sample + 16])
        first ^= mask[0] & 0x1F
        buf[pos] = first
        pn_len = (first & 0x03) + 1
        header_end = pn_start + pn_len
        # Unmask the packet number's pn_len bytes in place (byte by byte: plain integer operations,
        # which the compiled build keeps native) and leave the ciphertext after them as it is.
        truncated = 0
        for i in range(pn_len):
            byte = buf[pn_start + i] ^ mask[1 + i]
            buf[pn_start + i] = byte
            truncated = (truncated << 8) | byte
        # RFC 9000 A.3: the packet number closest to the next expected one.
        largest = space.ack_tracker.largest_received
        expected = 0 if largest is None else largest + 1
        win = 1 << (pn_len * 8)
        pn = (expected & ~(win - 1)) | truncated
        if pn <= expected - (win >> 1) and pn < (1 << 62) - win:
            pn += win
        elif pn > expected + (win >> 1) and pn >= win:
            pn -= win
        # (No ``with``: the view and its slices go with this call, and nothing resizes ``buf``.)
        view = memoryview(buf)
        try:
            payload = one_rtt.open(
                pn,
                view[pos:header_end],
                view[header_end:end],
                bool(first & _KEY_PHASE_BIT),
                now,
                self.pto,
            )
        except DecryptionError:
            return Dropped(_ONE_RTT_TYPE, end - pos, DropReason.PAYLOAD_DECRYPT_ERROR), end
        # RFC 9000 §17.3.1: non-zero reserved bits after removing header protection MUST be treated
        # as a connection error of type PROTOCOL_VIOLATION.
        if first & _SHORT_RESERVED_BITS:
            raise TransportError(TransportErrorCode.PROTOCOL_VIOLATION, "reserved header bits are set")
        return (
            UnpackedPacket(_ONE_RTT_LEVEL, _ONE_RTT_TYPE, pn, 0, dcid, b"", b"", end - pos, payload),
            end,
        )


def parse_payload(payload: bytes, packet_type: PacketType) -> list[Frame]:
    """All frames of a decrypted payload, each checked against its packet type (RFC 9000 §12.4).

    RFC 9000 §12.4: a packet containing no frames is a PROTOCOL_VIOLATION.
    """
    if not payload:
        raise TransportError(TransportErrorCode.PROTOCOL_VIOLATION, "packet without frames")
    view = memoryview(payload)
    if packet_type is _ONE_RTT_TYPE:
        return parse_frames(view)  # every frame type is allowed in 1-RTT packets
    frames: list[Frame] = []
    pos = 0
    end = len(payload)
    while pos < end:
        check_frame_allowed(payload[pos], packet_type)
        frame, pos = parse_frame(view, pos)
        frames.append(frame)
    return frames
