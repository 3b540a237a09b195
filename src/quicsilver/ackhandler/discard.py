"""Discarding sent-packet state: dropped packet number spaces (RFC 9001 §4.9, RFC 9002 §6.4), rejected
0-RTT, a Retry (RFC 9000 §17.2.5), a new path (RFC 9000 §9.4).

A part of :class:`~quicsilver.ackhandler.sent.SentPacketHandler`, kept apart to keep the module small;
the attributes below are the handler's.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Final

from quicsilver.ackhandler.history import SpaceHistory
from quicsilver.ackhandler.packet import SentPacket
from quicsilver.ackhandler.send_mode import SendMode
from quicsilver.congestion.interface import SendAlgorithm
from quicsilver.congestion.rtt import RTTStats
from quicsilver.protocol import PacketNumberSpace

__all__ = ["MIN_RTT_AFTER_RETRY", "SpaceDiscarding"]

MIN_RTT_AFTER_RETRY: Final = 0.005  # a Retry yields an RTT sample, but never below 5 ms (quic-go)

_INITIAL: Final = PacketNumberSpace.INITIAL
_HANDSHAKE: Final = PacketNumberSpace.HANDSHAKE
_APPLICATION: Final = PacketNumberSpace.APPLICATION
_MODE_NONE: Final = SendMode.NONE


class SpaceDiscarding:
    """The discarding half of SentPacketHandler (which sets every attribute declared here)."""

    _spaces: tuple[SpaceHistory, SpaceHistory, SpaceHistory]
    rtt: RTTStats
    congestion: SendAlgorithm
    bytes_in_flight: int
    packets_in_flight: int
    handshake_confirmed: bool
    pto_count: int
    _last_now: float
    _peer_completed_address_validation: bool
    _probes_to_send: int
    _pto_mode: SendMode
    _first_rtt_sample_time: float | None

    @abstractmethod
    def _set_loss_detection_timer(self, now: float) -> None:
        """Re-arm the loss detection timer after packets left the history (SentPacketHandler's,
        RFC 9002 §6.2.1 and §A.8)."""

    def drop_space(self, space: PacketNumberSpace, now: float | None = None) -> None:
        """Initial or Handshake keys were discarded (RFC 9001 §4.9): forget that space's packets
        and remove them from bytes_in_flight (RFC 9002 §6.4); pto_count is reset."""
        if now is not None:
            self._last_now = now
        if space == _APPLICATION:
            raise ValueError("the application data space is never dropped")
        s = self._spaces[space]
        if s.dropped:
            return
        if space == _HANDSHAKE:
            # RFC 9001 §4.9.2: Handshake keys are discarded when the handshake is confirmed.
            self.handshake_confirmed = True
            self.rtt.handshake_confirmed = True
            self._peer_completed_address_validation = True
        for p in s.packets.values():
            self._out_of_flight(p)
        s.clear()
        s.dropped = True
        self.pto_count = 0
        self._probes_to_send = 0
        self._pto_mode = _MODE_NONE
        self._set_loss_detection_timer(self._last_now)

    def drop_0rtt_packets(self, now: float | None = None) -> list[SentPacket]:
        """0-RTT was rejected: forget the 0-RTT packets and return them (their data is resent in 1-RTT)."""
        if now is not None:
            self._last_now = now
        s = self._spaces[_APPLICATION]
        dropped = [p for p in s.packets.values() if p.is_0rtt]
        for p in dropped:
            del s.packets[p.pn]
            self._forget(s, p)
        self._set_loss_detection_timer(self._last_now)
        return [p for p in dropped if p.ack_eliciting]

    def reset_for_retry(self, now: float) -> list[SentPacket]:
        """The client received a Retry: every Initial and 0-RTT packet sent so far is void. Returns the
        ack-eliciting ones (their frames go into the new Initial); packet numbers continue (RFC 9000
        §17.2.5.3). The Retry's arrival gives an RTT sample if no Initial was retransmitted."""
        self._last_now = now
        initial = self._spaces[_INITIAL]
        application = self._spaces[_APPLICATION]
        void = list(initial.packets.values()) + list(application.packets.values())
        if self.pto_count == 0 and initial.packets:
            first_sent = min(p.time_sent for p in initial.packets.values())
            self.rtt.update(max(MIN_RTT_AFTER_RETRY, now - first_sent), 0.0, now)
            if self._first_rtt_sample_time is None:
                self._first_rtt_sample_time = now
        for s in (initial, application):
            for p in s.packets.values():
                self._out_of_flight(p)
            s.clear()
        self.pto_count = 0
        self._probes_to_send = 0
        self._set_loss_detection_timer(now)
        return [p for p in void if p.ack_eliciting]

    def reset_path(self, congestion: SendAlgorithm, now: float | None = None) -> None:
        """The connection moved to a new path (RFC 9000 §9.4): "reset the congestion controller and
        round-trip time estimator". Packets in flight stay tracked (their ACKs may still arrive)."""
        if now is not None:
            self._last_now = now
        self.rtt.reset()
        self.congestion = congestion
        self.pto_count = 0
        # Persistent congestion needs an RTT sample on the new path first (RFC 9002 §7.6.2).
        self._first_rtt_sample_time = None
        for s in self._spaces:
            s.pc_first_time = None
        self._set_loss_detection_timer(self._last_now)

    def _out_of_flight(self, p: SentPacket) -> None:
        if p.counted_in_flight:
            self.bytes_in_flight -= p.size
            self.packets_in_flight -= 1
            p.counted_in_flight = False

    def _forget(self, s: SpaceHistory, p: SentPacket) -> None:
        self._out_of_flight(p)
        if p.ack_eliciting:
            s.eliciting_outstanding -= 1
