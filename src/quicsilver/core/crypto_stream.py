"""CRYPTO stream of one encryption level: reassembly, send queue and retransmission (RFC 9000 §19.6, §7.5).

RFC 9000 §7.5: "Implementations MUST support buffering at least 4096 bytes of data received in
out-of-order CRYPTO frames" and may close with CRYPTO_BUFFER_EXCEEDED beyond their limit. We buffer
up to ``MAX_CRYPTO_BUFFER`` bytes past the read position; every frame that reaches further closes the
connection. Received data is kept in one bytearray window plus a sorted list of disjoint ranges, so a
hostile peer sending overlapping frames cannot grow memory beyond the window.
"""

from __future__ import annotations

from typing import Final

from quicsilver.errors import TransportError, TransportErrorCode
from quicsilver.wire.frames import CryptoFrame
from quicsilver.wire.varint import varint_len

__all__ = ["MAX_CRYPTO_BUFFER", "CryptoStream"]

MAX_CRYPTO_BUFFER: Final = 64 * 1024
"""Bytes of CRYPTO data we accept beyond the in-order read position (RFC 9000 §7.5 asks >= 4096)."""

_CRYPTO_FRAME_TYPE: Final = 0x06


class CryptoStream:
    """One level's CRYPTO byte stream, both directions."""

    __slots__ = ("_outstanding", "_ranges", "_read_pos", "_recv_buf", "_retransmit", "_send_buf", "_send_pos")

    def __init__(self) -> None:
        # Receive side: _recv_buf holds bytes from _read_pos on; _ranges are absolute [start, end).
        self._read_pos = 0
        self._recv_buf = bytearray()
        self._ranges: list[list[int]] = []
        # Send side: unsent bytes in _send_buf starting at absolute offset _send_pos.
        self._send_buf = bytearray()
        self._send_pos = 0
        self._retransmit: list[CryptoFrame] = []
        self._outstanding: dict[int, CryptoFrame] = {}

    # -- receive --------------------------------------------------------------------------------

    def handle_crypto_frame(self, frame: CryptoFrame) -> None:
        """Store a received CRYPTO frame. Raises TransportError CRYPTO_BUFFER_EXCEEDED (RFC 9000 §7.5)."""
        data = frame.data
        start = frame.offset
        end = start + len(data)
        if end <= self._read_pos:
            return  # entirely old data, a retransmission
        # RFC 9000 §7.5: bound the data buffered ahead of the read position.
        if end - self._read_pos > MAX_CRYPTO_BUFFER:
            raise TransportError(
                TransportErrorCode.CRYPTO_BUFFER_EXCEEDED,
                f"CRYPTO data up to offset {end} exceeds the {MAX_CRYPTO_BUFFER}-byte buffer",
                frame_type=_CRYPTO_FRAME_TYPE,
            )
        if start < self._read_pos:
            data = data[self._read_pos - start :]
            start = self._read_pos
        rel = start - self._read_pos
        buf = self._recv_buf
        if len(buf) < rel + len(data):
            buf.extend(bytes(rel + len(data) - len(buf)))
        buf[rel : rel + len(data)] = data
        self._add_range(start, end)

    def _add_range(self, start: int, end: int) -> None:
        ranges = self._ranges
        merged: list[list[int]] = []
        placed = False
        for r in ranges:
            if r[1] < start:
                merged.append(r)
            elif r[0] > end:
                if not placed:
                    merged.append([start, end])
                    placed = True
                merged.append(r)
            else:
                start = min(start, r[0])
                end = max(end, r[1])
        if not placed:
            merged.append([start, end])
        self._ranges = merged

    def read(self) -> bytes:
        """All contiguous bytes received past the read position (b"" if none)."""
        ranges = self._ranges
        if not ranges or ranges[0][0] != self._read_pos:
            return b""
        n = ranges[0][1] - self._read_pos
        data = bytes(self._recv_buf[:n])
        del self._recv_buf[:n]
        self._read_pos += n
        del ranges[0]
        return data

    @property
    def has_buffered(self) -> bool:
        """Whether out-of-order data is waiting (RFC 9001 §4.1.3 checks this at a key change)."""
        return bool(self._ranges)

    # -- send -----------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue handshake bytes from TLS for sending."""
        self._send_buf += data

    def has_data(self) -> bool:
        """Whether a CRYPTO frame is waiting (new data or a retransmission)."""
        return bool(self._retransmit) or bool(self._send_buf)

    def pop_crypto_frame(self, max_size: int) -> CryptoFrame | None:
        """The next CRYPTO frame whose encoding fits ``max_size`` bytes, or None."""
        if self._retransmit:
            frame = self._retransmit[-1]
            room = max_size - 1 - varint_len(frame.offset) - varint_len(min(len(frame.data), max_size))
            if room <= 0:
                return None
            self._retransmit.pop()
            if len(frame.data) > room:
                rest = CryptoFrame(offset=frame.offset + room, data=frame.data[room:])
                self._retransmit.append(rest)
                frame = CryptoFrame(offset=frame.offset, data=frame.data[:room])
            self._outstanding[frame.offset] = frame
            return frame
        if not self._send_buf:
            return None
        offset = self._send_pos
        room = max_size - 1 - varint_len(offset) - varint_len(min(len(self._send_buf), max_size))
        if room <= 0:
            return None
        data = bytes(self._send_buf[:room])
        del self._send_buf[:room]
        self._send_pos += len(data)
        frame = CryptoFrame(offset=offset, data=data)
        self._outstanding[offset] = frame
        return frame

    def on_frame_acked(self, frame: CryptoFrame) -> None:
        """The packet carrying ``frame`` was acknowledged."""
        sent = self._outstanding.get(frame.offset)
        if sent is not None and len(sent.data) <= len(frame.data):
            del self._outstanding[frame.offset]

    def on_frame_lost(self, frame: CryptoFrame) -> None:
        """The packet carrying ``frame`` was declared lost: send its data again (RFC 9002 §6.3)."""
        if frame.offset in self._outstanding:
            del self._outstanding[frame.offset]
            # _retransmit is popped from its end: keep the lowest offset last.
            self._retransmit.append(frame)
            self._retransmit.sort(key=lambda f: -f.offset)

    def queue_probe(self) -> bool:
        """RFC 9002 §6.2.4: a PTO probe resends unacknowledged CRYPTO data. True if any was queued."""
        if self._retransmit or not self._outstanding:
            return bool(self._retransmit)
        for frame in self._outstanding.values():
            self._retransmit.append(frame)
        self._outstanding.clear()
        self._retransmit.sort(key=lambda f: -f.offset)
        return True

    @property
    def all_acked(self) -> bool:
        """Whether every byte we sent has been acknowledged."""
        return not self._outstanding and not self._retransmit and not self._send_buf
