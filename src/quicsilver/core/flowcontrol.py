"""Stream and connection flow control with receive-window auto-tuning (RFC 9000 §4.1, §4.2, §4.5).

Receive side: the peer may send up to ``receive_window`` (an absolute offset). Once the application
has consumed at least 25 % of the window size a window update (MAX_DATA / MAX_STREAM_DATA) is due.
Auto-tuning follows quic-go: an *epoch* starts when the first byte is read and again at every window
update; if more than half the window was consumed within ``4 * fraction * SRTT`` of the epoch start
(``fraction`` = consumed / window size, so about two RTTs for a full window), the window size
doubles, never above its maximum. When a stream window grows, the connection window is raised to at
least 1.5 times that stream window (bounded by the connection maximum).

Send side: the peer's limit, the bytes sent against it, and blocked detection that yields the limit
at which we are blocked exactly once per limit (for DATA_BLOCKED / STREAM_DATA_BLOCKED, §4.1).

These objects are sans-IO: time is always an argument ``now`` (seconds) and the RTT comes from an
:class:`RTTProvider` (``congestion.rtt.RTTStats`` satisfies it).
"""

from __future__ import annotations

from typing import Final, Protocol

from quicsilver.errors import TransportError, TransportErrorCode

__all__ = [
    "CONNECTION_WINDOW_MULTIPLIER",
    "WINDOW_UPDATE_THRESHOLD",
    "ConnectionReceiveFlowController",
    "RTTProvider",
    "ReceiveFlowController",
    "SendFlowController",
    "StreamReceiveFlowController",
]

WINDOW_UPDATE_THRESHOLD: Final = 0.25
"""A window update is due once this fraction of the window size was consumed (quic-go)."""

CONNECTION_WINDOW_MULTIPLIER: Final = 1.5
"""A grown stream window pushes the connection window to at least this multiple of it (quic-go)."""

_FLOW_CONTROL_ERROR: Final = TransportErrorCode.FLOW_CONTROL_ERROR


class RTTProvider(Protocol):
    """Anything with a smoothed RTT in seconds (0 before the first sample)."""

    @property
    def smoothed_rtt(self) -> float: ...


class ReceiveFlowController:
    """The receive-side window shared by streams and the connection (quic-go's base controller).

    ``window_size`` starts at ``initial_window`` bytes and auto-tunes up to ``max_window`` bytes;
    ``receive_window`` is the absolute offset the peer may send up to.
    """

    __slots__ = (
        "_epoch_start_offset",
        "_epoch_start_time",
        "_rtt",
        "bytes_read",
        "highest_received",
        "max_window_size",
        "receive_window",
        "window_size",
    )

    def __init__(self, initial_window: int, max_window: int, rtt: RTTProvider) -> None:
        if not 0 < initial_window <= max_window:
            raise ValueError(f"need 0 < initial_window ({initial_window}) <= max_window ({max_window})")
        self._rtt = rtt
        self.window_size = initial_window
        self.max_window_size = max_window
        self.receive_window = initial_window
        self.bytes_read = 0
        self.highest_received = 0
        self._epoch_start_time = 0.0
        self._epoch_start_offset = 0

    def add_bytes_read(self, n: int, now: float) -> None:
        """Credit ``n`` bytes consumed by the application at time ``now``.

        When this makes a window update due, auto-tuning judges the current epoch right here (quic-go
        does it when the update is packed, which follows the read within the same event-loop turn).
        """
        if self.bytes_read == 0:
            # quic-go: pretend a window update was sent when the first byte is read, so that
            # auto-tuning already works for the first update.
            self._start_epoch(now)
        self.bytes_read += n
        if self.has_window_update():
            self._maybe_grow_window(now)

    def add_bytes_abandoned(self, n: int) -> None:
        """Credit ``n`` bytes that will never be read (reset or cancelled stream): no tuning signal."""
        self.bytes_read += n

    def has_window_update(self) -> bool:
        """True when at least 25 % of the window size has been consumed since the last update."""
        remaining = self.receive_window - self.bytes_read
        return remaining <= self.window_size * (1 - WINDOW_UPDATE_THRESHOLD)

    def get_window_update(self) -> int:
        """The new ``receive_window`` (an absolute offset) if an update is due, else 0.

        The caller must send it (MAX_DATA / MAX_STREAM_DATA): the limit is raised here.
        """
        if not self.has_window_update():
            return 0
        self.receive_window = self.bytes_read + self.window_size
        return self.receive_window

    def _maybe_grow_window(self, now: float) -> bool:
        """quic-go's auto-tuning rule; True if the window size grew."""
        consumed = self.bytes_read - self._epoch_start_offset
        # Only judge an epoch in which more than half the window was consumed.
        if consumed <= self.window_size // 2:
            return False
        srtt = self._rtt.smoothed_rtt
        if srtt <= 0:
            return False
        grew = False
        fraction = consumed / self.window_size
        if now - self._epoch_start_time < 4 * fraction * srtt:
            # Consumed faster than about two RTTs per window: the peer is limited by our window
            # rather than by the path, so double it (never past the maximum).
            new_size = min(2 * self.window_size, self.max_window_size)
            grew = new_size > self.window_size
            self.window_size = new_size
        self._start_epoch(now)
        return grew

    def _start_epoch(self, now: float) -> None:
        self._epoch_start_time = now
        self._epoch_start_offset = self.bytes_read


class ConnectionReceiveFlowController(ReceiveFlowController):
    """Connection-level receive window (MAX_DATA, RFC 9000 §4.1)."""

    __slots__ = ()

    def increment_highest_received(self, increment: int) -> None:
        """Account ``increment`` new bytes received on some stream; FLOW_CONTROL_ERROR past the window."""
        self.highest_received += increment
        # RFC 9000 §4.1: "A receiver MUST close the connection with an error of type
        # FLOW_CONTROL_ERROR if the sender violates the advertised connection or stream data limits."
        if self.highest_received > self.receive_window:
            raise TransportError(
                _FLOW_CONTROL_ERROR,
                f"connection data {self.highest_received} exceeds the limit {self.receive_window}",
            )

    def ensure_minimum_window_size(self, size: int, now: float) -> None:
        """Raise the window size to at least ``size`` (capped at the maximum); starts a new epoch."""
        if size > self.window_size:
            self.window_size = min(size, self.max_window_size)
            self._start_epoch(now)


class StreamReceiveFlowController(ReceiveFlowController):
    """Stream-level receive window (MAX_STREAM_DATA) that also feeds the connection window."""

    __slots__ = ("_connection", "stream_id")

    def __init__(
        self,
        stream_id: int,
        connection: ConnectionReceiveFlowController,
        initial_window: int,
        max_window: int,
        rtt: RTTProvider,
    ) -> None:
        super().__init__(initial_window, max_window, rtt)
        self.stream_id = stream_id
        self._connection = connection

    def update_highest_received(self, offset: int) -> None:
        """Account data up to ``offset`` on this stream; FLOW_CONTROL_ERROR past either window."""
        if offset <= self.highest_received:
            return
        # RFC 9000 §4.1: a sender exceeding the stream data limit is a FLOW_CONTROL_ERROR.
        if offset > self.receive_window:
            raise TransportError(
                _FLOW_CONTROL_ERROR,
                f"stream {self.stream_id} data up to {offset} exceeds the limit {self.receive_window}",
            )
        increment = offset - self.highest_received
        self.highest_received = offset
        self._connection.increment_highest_received(increment)

    def add_bytes_read(self, n: int, now: float) -> None:
        super().add_bytes_read(n, now)
        self._connection.add_bytes_read(n, now)

    def _maybe_grow_window(self, now: float) -> bool:
        grew = super()._maybe_grow_window(now)
        if grew:
            # quic-go: the connection window must keep up with its fastest stream.
            self._connection.ensure_minimum_window_size(
                int(self.window_size * CONNECTION_WINDOW_MULTIPLIER), now
            )
        return grew

    def abandon(self, final_size: int | None) -> None:
        """The stream was reset or its reading cancelled: free the connection credit it holds.

        RFC 9000 §4.5: "the receiver MUST use the final size of the stream to account for all
        bytes sent on the stream in its connection-level flow controller". With ``final_size``
        known, bytes never received up to it are accounted first; then every unread byte is
        released so the connection window can advance.
        """
        if final_size is not None:
            self.update_highest_received(final_size)
        unread = self.highest_received - self.bytes_read
        if unread > 0:
            self.bytes_read = self.highest_received
            self._connection.add_bytes_abandoned(unread)


class SendFlowController:
    """The peer's limit on what we may send (MAX_DATA or MAX_STREAM_DATA, RFC 9000 §4.1)."""

    __slots__ = ("_blocked_reported_at", "bytes_sent", "limit")

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self.bytes_sent = 0
        self._blocked_reported_at = -1

    def update_limit(self, limit: int) -> bool:
        """Apply a new limit from the peer; True if it grew. RFC 9000 §4.1: smaller values are ignored."""
        if limit > self.limit:
            self.limit = limit
            return True
        return False

    def available(self) -> int:
        """Bytes that may still be sent."""
        return self.limit - self.bytes_sent

    def add_bytes_sent(self, n: int) -> None:
        self.bytes_sent += n

    def is_blocked(self) -> bool:
        return self.bytes_sent >= self.limit

    def newly_blocked_at(self) -> int | None:
        """The limit we are blocked at, the first time only for each limit; otherwise None."""
        if self.bytes_sent < self.limit or self._blocked_reported_at == self.limit:
            return None
        self._blocked_reported_at = self.limit
        return self.limit
