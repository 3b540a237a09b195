"""Unreliable datagrams of one connection (RFC 9221 §3, §5).

:class:`DatagramQueue` holds what the application wants to send until the packer finds room
(a bounded queue; when it is full the oldest waiting datagram is dropped, since datagrams are
unreliable anyway) and what the peer sent until the application reads it (bounded the same way,
quic-go's behaviour). Sizes are checked against the peer's ``max_datagram_frame_size`` and the
path's packet payload when a datagram is queued, so the application learns at the call that a
datagram can never be sent (``DatagramTooLargeError``). DATAGRAM frames are never retransmitted.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from quicsilver.errors import DatagramTooLargeError, TransportError, TransportErrorCode
from quicsilver.wire.frames import DatagramFrame, datagram_frame_length, datagram_frame_max_data_len

__all__ = ["DEFAULT_RECEIVE_QUEUE_SIZE", "DEFAULT_SEND_QUEUE_SIZE", "DatagramQueue"]

DEFAULT_RECEIVE_QUEUE_SIZE: Final = 128
"""Received datagrams buffered before the oldest is dropped (Config.max_datagram_queue)."""

DEFAULT_SEND_QUEUE_SIZE: Final = 32
"""Datagrams waiting to be sent before the oldest is dropped (quic-go's send queue length)."""


class DatagramQueue:
    """Send and receive queues for DATAGRAM frames.

    ``local_max_frame_size``: the max_datagram_frame_size we advertised (None: datagrams not
    enabled, so any DATAGRAM frame is a PROTOCOL_VIOLATION). The peer's value is set with
    ``set_peer_max_frame_size`` once its transport parameters arrive; until then nothing can be
    sent. ``set_max_payload_size`` gives the largest frame that fits an otherwise empty 1-RTT
    packet on the current path.
    """

    __slots__ = (
        "_local_max_frame_size",
        "_max_payload_size",
        "_peer_max_frame_size",
        "_receive_queue_size",
        "_received",
        "_send_queue_size",
        "_sending",
        "received_dropped",
        "send_dropped",
    )

    def __init__(
        self,
        *,
        local_max_frame_size: int | None,
        receive_queue_size: int = DEFAULT_RECEIVE_QUEUE_SIZE,
        send_queue_size: int = DEFAULT_SEND_QUEUE_SIZE,
        max_payload_size: int = 1200,
    ) -> None:
        if receive_queue_size < 1 or send_queue_size < 1:
            raise ValueError("datagram queue sizes must be at least 1")
        self._local_max_frame_size = local_max_frame_size
        self._peer_max_frame_size: int | None = None
        self._max_payload_size = max_payload_size
        self._receive_queue_size = receive_queue_size
        self._send_queue_size = send_queue_size
        # Created with their first datagram: most connections never use DATAGRAM frames, and an empty
        # deque costs ~760 bytes (memory per idle connection, issue 9).
        self._received: deque[bytes] | None = None
        self._sending: deque[bytes] | None = None
        self.received_dropped = 0
        """Received datagrams dropped because the application did not read them in time."""
        self.send_dropped = 0
        """Queued datagrams dropped before they could be sent."""

    # -- sending ----------------------------------------------------------------------------------

    def set_peer_max_frame_size(self, size: int | None) -> None:
        """The peer's max_datagram_frame_size transport parameter (None or 0: it does not accept any)."""
        self._peer_max_frame_size = size or None

    def set_max_payload_size(self, size: int) -> None:
        """The largest frame that fits an empty 1-RTT packet now (grows with path MTU discovery)."""
        self._max_payload_size = size

    def max_datagram_size(self) -> int:
        """The largest datagram payload ``send`` accepts now (0 if the peer accepts none)."""
        peer = self._peer_max_frame_size
        if peer is None:
            return 0
        return datagram_frame_max_data_len(min(peer, self._max_payload_size))

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Queue a datagram; DatagramTooLargeError if it can never be sent.

        RFC 9221 §3: "An endpoint MUST NOT send DATAGRAM frames until it has received the
        max_datagram_frame_size transport parameter with a non-zero value" and §5: never a frame
        larger than that value. When the queue is full the oldest waiting datagram is dropped.
        """
        limit = self.max_datagram_size()
        if self._peer_max_frame_size is None or datagram_frame_length(len(data)) > min(
            self._peer_max_frame_size, self._max_payload_size
        ):
            raise DatagramTooLargeError(len(data), limit)
        sending = self._sending
        if sending is None:
            sending = self._sending = deque()
        if len(sending) >= self._send_queue_size:
            sending.popleft()
            self.send_dropped += 1
        sending.append(bytes(data))

    def has_data(self) -> bool:
        return bool(self._sending)

    def pop_datagram_frame(self, max_size: int) -> DatagramFrame | None:
        """The oldest queued datagram as a frame if it fits ``max_size`` bytes, else None.

        A datagram that no longer fits even an empty packet (the path shrank) is dropped
        (RFC 9221 §5: datagrams are never fragmented and may be dropped).
        """
        sending = self._sending
        while sending:
            data = sending[0]
            size = datagram_frame_length(len(data))
            if size <= max_size:
                sending.popleft()
                return DatagramFrame(data)
            if size <= self._max_payload_size:
                return None  # it fits the next packet
            sending.popleft()
            self.send_dropped += 1
        return None

    # -- receiving --------------------------------------------------------------------------------

    def handle_datagram_frame(self, frame: DatagramFrame) -> bytes:
        """Queue a received datagram and return its payload (for a DatagramReceived event).

        Raises TransportError PROTOCOL_VIOLATION if we did not advertise support or the frame
        is larger than the max_datagram_frame_size we advertised (RFC 9221 §3).
        """
        local = self._local_max_frame_size
        if local is None:
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION, "DATAGRAM frame not negotiated", frame_type=0x30
            )
        data = bytes(frame.data)
        # The smallest encoding of this frame (type 0x30, no Length field) is 1 + len(data) bytes.
        if 1 + len(data) > local:
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION,
                f"DATAGRAM frame of {1 + len(data)} bytes exceeds our max_datagram_frame_size {local}",
                frame_type=0x30,
            )
        received = self._received
        if received is None:
            received = self._received = deque()
        if len(received) >= self._receive_queue_size:
            received.popleft()
            self.received_dropped += 1
        received.append(data)
        return data

    def receive(self) -> bytes | None:
        """The oldest received datagram, or None."""
        received = self._received
        return received.popleft() if received else None

    def pending_received(self) -> int:
        return len(self._received) if self._received is not None else 0
