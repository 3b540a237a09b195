"""Sent-packet tracking, loss detection and probe timeouts (RFC 9002 §6, §7.6, Appendix A).

The :class:`SentPacketHandler` owns, per packet number space, the packets that are not yet
acknowledged or lost (a dict keyed by packet number plus a lazily advanced lowest-outstanding
pointer, so nothing is ever deleted from the front of a list), and for the connection:

- processes ACK frames in O(ranges + newly acknowledged) (§A.7), takes RTT samples (§5), validates
  ECN counts (RFC 9000 §13.4.2) and rejects acknowledgments of packets never sent or deliberately
  skipped (RFC 9000 §13.1, §21.4) with PROTOCOL_VIOLATION;
- declares packets lost by the packet threshold (3) and the time threshold (9/8 RTT) (§6.1),
  establishes persistent congestion (§7.6), and drives the congestion controller (§7);
- computes the loss detection timer: loss time, else the PTO with exponential backoff, with the
  handshake rules of §6.2.2.1 (client anti-deadlock probes, no application PTO before the handshake
  is confirmed) and the server's anti-amplification limit (RFC 9000 §8.1);
- answers ``send_mode(now)`` and hands out packet numbers (with random skips in the application
  space).

Frames are opaque here: the connection fills ``SentPacket.frames`` and re-queues the frames of the
packets reported lost.
"""

from __future__ import annotations

import random
from typing import Final

from quicsilver.ackhandler.discard import SpaceDiscarding
from quicsilver.ackhandler.ecn import ECNState, ECNTracker
from quicsilver.ackhandler.history import NEVER, SpaceHistory
from quicsilver.ackhandler.packet import AckResult, LossTimeoutResult, SentPacket
from quicsilver.ackhandler.packet_number_generator import (
    SequentialPacketNumberGenerator,
    SkippingPacketNumberGenerator,
)
from quicsilver.ackhandler.send_mode import SendMode
from quicsilver.congestion.interface import MAX_WINDOW_PACKETS, SendAlgorithm
from quicsilver.congestion.rtt import RTTStats
from quicsilver.errors import TransportError, TransportErrorCode
from quicsilver.protocol import (
    ACK_DELAY_EXPONENT,
    AMPLIFICATION_FACTOR,
    ECN,
    TIMER_GRANULARITY,
    PacketNumberSpace,
    Perspective,
)
from quicsilver.qlog.tracer import ConnectionTracer
from quicsilver.wire.frames import AckFrame

__all__ = [
    "K_PACKET_THRESHOLD",
    "K_PERSISTENT_CONGESTION_THRESHOLD",
    "K_TIME_THRESHOLD",
    "MAX_OUTSTANDING_SENT_PACKETS",
    "MAX_PTO_DURATION",
    "MAX_TRACKED_SENT_PACKETS",
    "AckResult",
    "LossTimeoutResult",
    "SentPacket",
    "SentPacketHandler",
]

# Enum members used per packet, as module constants (Final: the compiled build reads a C static
# instead of looking the member up on its class).
_ECNSTATE_INITIAL: Final = ECNState.INITIAL
_ECNSTATE_TESTING: Final = ECNState.TESTING
_ECN_ECT0: Final = ECN.ECT0
_ECN_ECT1: Final = ECN.ECT1


K_PACKET_THRESHOLD: Final = 3  # RFC 9002 §6.1.1
K_TIME_THRESHOLD: Final = 9 / 8  # RFC 9002 §6.1.2
K_PERSISTENT_CONGESTION_THRESHOLD: Final = 3  # RFC 9002 §7.6.1
MAX_PTO_DURATION: Final = 60.0  # seconds; the backoff is truncated (RFC 8961 §4.4, as quic-go)
MAX_OUTSTANDING_SENT_PACKETS: Final = 2 * MAX_WINDOW_PACKETS  # beyond: only ACKs and probes
MAX_TRACKED_SENT_PACKETS: Final = MAX_OUTSTANDING_SENT_PACKETS * 5 // 4  # beyond: nothing at all
ACK_FRAME_TYPE: Final = 0x02

# Enum members bound to module globals: attribute access on an Enum class is slow on Python 3.11.
_INITIAL: Final = PacketNumberSpace.INITIAL
_HANDSHAKE: Final = PacketNumberSpace.HANDSHAKE
_APPLICATION: Final = PacketNumberSpace.APPLICATION
_CLIENT: Final = Perspective.CLIENT
_SERVER: Final = Perspective.SERVER
_NOT_ECT: Final = ECN.NOT_ECT
_MODE_NONE: Final = SendMode.NONE
_MODE_ACK_ONLY: Final = SendMode.ACK_ONLY
_MODE_PTO_INITIAL: Final = SendMode.PTO_INITIAL
_MODE_PTO_HANDSHAKE: Final = SendMode.PTO_HANDSHAKE
_MODE_PTO_APPLICATION: Final = SendMode.PTO_APPLICATION
_MODE_ANY: Final = SendMode.ANY
_MODE_PACING_LIMITED: Final = SendMode.PACING_LIMITED
_SPACE_NAMES: Final = ("initial", "handshake", "1RTT")
_PTO_MODES: Final = (SendMode.PTO_INITIAL, SendMode.PTO_HANDSHAKE, SendMode.PTO_APPLICATION)


class SentPacketHandler(SpaceDiscarding):
    """Loss recovery of one connection (RFC 9002), sans-IO: every time is an argument.

    ``rtt`` and ``congestion`` are shared with the connection; ``perspective`` decides the
    address-validation rules: a server is amplification-limited until ``set_peer_validated_address``
    (or ``address_validated=True`` for a client that presented a valid token); a client keeps a PTO
    armed until it knows the server validated its address (RFC 9002 §6.2.2.1). ``enable_ecn`` turns
    on ECN marking and validation; ``rng`` (seeded in tests) places the packet number skips.
    """

    def __init__(
        self,
        rtt: RTTStats,
        congestion: SendAlgorithm,
        perspective: Perspective,
        *,
        tracer: ConnectionTracer | None = None,
        enable_ecn: bool = True,
        address_validated: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        self.rtt = rtt
        self.congestion = congestion
        self.perspective = perspective
        self._tracer = tracer
        self._spaces = (
            SpaceHistory(_INITIAL, SequentialPacketNumberGenerator()),
            SpaceHistory(_HANDSHAKE, SequentialPacketNumberGenerator()),
            SpaceHistory(_APPLICATION, SkippingPacketNumberGenerator(rng=rng)),
        )
        self.bytes_in_flight = 0
        self.packets_in_flight = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        #: Packets declared lost (any kind) and in-flight bytes lost to congestion, for stats.
        self.packets_lost = 0
        self.bytes_lost = 0
        #: Scales the ACK Delay field of the peer's ACK frames (its ack_delay_exponent transport parameter).
        self.peer_ack_delay_exponent = ACK_DELAY_EXPONENT
        self.handshake_confirmed = False
        # Has the peer validated our address? Always true for a server (RFC 9002 §6.2.2.1).
        self._peer_completed_address_validation = perspective == _SERVER
        # Have we validated the peer's address? Always true for a client (RFC 9000 §8.1).
        self._peer_address_validated = perspective == _CLIENT or address_validated
        self.pto_count = 0
        self._probes_to_send = 0
        self._pto_mode = _MODE_NONE
        self._alarm: float | None = None
        self._alarm_type = ""
        self._alarm_space = _INITIAL
        self._first_rtt_sample_time: float | None = None
        self._largest_acked_time_sent: float | None = None
        self._last_now = 0.0
        self.ecn: ECNTracker | None = ECNTracker() if enable_ecn else None

    # ---- packet numbers -----------------------------------------------------------------------

    def peek_packet_number(self, space: PacketNumberSpace) -> int:
        """The packet number the next packet of ``space`` will get (for sizing the header)."""
        return self._spaces[space].pn_generator.peek()

    def pop_packet_number(self, space: PacketNumberSpace) -> int:
        """Take the next packet number of ``space``; in the application space one is skipped now and
        then, and an ACK of a skipped number is a PROTOCOL_VIOLATION (RFC 9000 §21.4)."""
        s = self._spaces[space]
        skipped, pn = s.pn_generator.pop()
        if skipped is not None:
            s.remember_skipped(skipped)
        return pn

    def largest_acked(self, space: PacketNumberSpace) -> int | None:
        """The largest of our packet numbers the peer acknowledged in ``space`` (for pn encoding)."""
        largest = self._spaces[space].largest_acked
        return largest if largest >= 0 else None

    # ---- sending ------------------------------------------------------------------------------

    def sent_packet(self, pkt: SentPacket) -> None:
        """Record a packet that was just sent. Packet numbers must increase within a space."""
        now = pkt.time_sent
        self._last_now = now
        s = self._spaces[pkt.space]
        if s.dropped:
            return
        pn = pkt.pn
        if pn <= s.largest_sent:
            raise ValueError(f"packet number {pn} reused in {pkt.space.name} (largest sent {s.largest_sent})")
        generator = s.pn_generator
        if pn >= generator.next_pn:
            # The caller numbered the packet itself: keep the generator ahead of it.
            generator.next_pn = pn + 1
        if s.skipped and pn in s.skipped:
            s.skipped.remove(pn)
        if not s.packets:
            s.lowest = pn
        s.largest_sent = pn
        s.packets[pn] = pkt
        if not pkt.ack_eliciting and not pkt.in_flight:
            s.track_ack_only(pn)
        self.bytes_sent += pkt.size
        if pkt.in_flight:
            self.bytes_in_flight += pkt.size
            self.packets_in_flight += 1
            pkt.counted_in_flight = True
        if pkt.ack_eliciting:
            s.eliciting_outstanding += 1
            s.last_ack_eliciting_time = now
            if self._probes_to_send > 0:
                self._probes_to_send -= 1
        self.congestion.on_packet_sent(now, self.bytes_in_flight, pn, pkt.size, pkt.in_flight)
        if pkt.space == _APPLICATION and self.ecn is not None:
            self.ecn.sent_packet(pn, pkt.ecn)
        if pkt.ack_eliciting or not self._peer_completed_address_validation:
            self._set_loss_detection_timer(now)
        if self._tracer is not None and pkt.in_flight:
            self._trace_metrics()

    def sent_burst(self, packets: list[SentPacket]) -> None:
        """Record a burst of ``PacketPacker.pack_stream_burst``: ack-eliciting, in-flight 1-RTT packets
        sent at one instant in packet number order. The same as ``sent_packet`` for each of them, with
        one congestion-controller call and one timer update."""
        s = self._spaces[2]
        if self._tracer is not None or s.dropped or len(packets) < 2:
            for p in packets:
                self.sent_packet(p)
            return
        now = packets[0].time_sent
        self._last_now = now
        store = s.packets
        if not store:
            s.lowest = packets[0].pn
        skipped = s.skipped
        largest = s.largest_sent
        size = 0
        for p in packets:
            pn = p.pn
            if pn <= largest:
                raise ValueError(f"packet number {pn} reused in APPLICATION (largest sent {largest})")
            largest = pn
            if skipped and pn in skipped:
                skipped.remove(pn)
            store[pn] = p
            p.counted_in_flight = True
            size += p.size
        generator = s.pn_generator
        if largest >= generator.next_pn:
            generator.next_pn = largest + 1
        s.largest_sent = largest
        n = len(packets)
        self.bytes_sent += size
        self.bytes_in_flight += size
        self.packets_in_flight += n
        s.eliciting_outstanding += n
        s.last_ack_eliciting_time = now
        self._probes_to_send = self._probes_to_send - n if self._probes_to_send > n else 0
        self.congestion.on_burst_sent(now, self.bytes_in_flight, largest, size)
        ecn = self.ecn
        if ecn is not None:
            if ecn.state is _ECNSTATE_TESTING:
                for p in packets:
                    ecn.sent_packet(p.pn, p.ecn)
            elif packets[0].ecn == _ECN_ECT0:  # one codepoint per burst (burst_allowance)
                ecn.sent_ect0 += n
            elif packets[0].ecn == _ECN_ECT1:
                ecn.sent_ect1 += n
        self._set_loss_detection_timer(now)

    def ecn_marking(self, space: PacketNumberSpace = _APPLICATION) -> ECN:
        """The ECN codepoint for the next packet of ``space``: ECT(0) while testing and once the path
        is validated, otherwise Not-ECT (always for Initial and Handshake packets)."""
        if self.ecn is None or space != _APPLICATION:
            return _NOT_ECT
        return self.ecn.marking()

    def send_mode(self, now: float) -> SendMode:
        """What may be sent now (checked before every packet)."""
        if not self._peer_address_validated and self.bytes_sent >= AMPLIFICATION_FACTOR * self.bytes_received:
            return _MODE_NONE  # RFC 9000 §8.1 (is_amplification_limited, inlined: runs per packet)
        initial, handshake, application = self._spaces
        tracked = len(initial.packets) + len(handshake.packets) + len(application.packets)
        if tracked >= MAX_TRACKED_SENT_PACKETS:
            return _MODE_NONE
        if self._probes_to_send > 0:
            # RFC 9002 §7.5: probe packets "MUST NOT be blocked by the congestion controller".
            return self._pto_mode
        if not self.congestion.can_send(self.bytes_in_flight):
            return _MODE_ACK_ONLY
        if tracked >= MAX_OUTSTANDING_SENT_PACKETS:
            return _MODE_ACK_ONLY
        if not self.congestion.has_pacing_budget(now):
            return _MODE_PACING_LIMITED
        return _MODE_ANY

    def burst_allowance(self, now: float) -> tuple[int, int, int, ECN] | None:
        """What ``send_mode(now)`` would let go as ANY, packet after packet, in one burst at ``now``.

        ``(window room, pacing room, packets, ECN codepoint)``: a burst may send another packet while
        window room > 0, pacing room >= 0 and packets > 0, taking each packet's size from both rooms
        (``sent_packet`` changes neither the window nor the time). None when the answer is not ANY, or
        while ECN testing may change the codepoint from one packet to the next.
        """
        if self._probes_to_send > 0 or not self._peer_address_validated:
            return None
        initial, handshake, application = self._spaces
        tracked = len(initial.packets) + len(handshake.packets) + len(application.packets)
        congestion = self.congestion
        window_room = congestion.congestion_window - self.bytes_in_flight
        if tracked >= MAX_OUTSTANDING_SENT_PACKETS or window_room <= 0:
            return None
        pacing_room = congestion.pacing_room(now)
        if pacing_room < 0:
            return None
        ecn = self.ecn
        marking = _NOT_ECT
        if ecn is not None:
            if ecn.state is _ECNSTATE_INITIAL or ecn.state is _ECNSTATE_TESTING:
                return None
            marking = ecn.marking()
        return window_room, pacing_room, MAX_OUTSTANDING_SENT_PACKETS - tracked, marking

    def time_until_send(self, now: float) -> float:
        """When the pacer allows the next packet (``now`` if it already does)."""
        return self.congestion.time_until_send(self.bytes_in_flight, now)

    def set_max_datagram_size(self, size: int) -> None:
        self.congestion.set_max_datagram_size(size)

    # ---- address validation (RFC 9000 §8.1) ---------------------------------------------------

    def is_amplification_limited(self) -> bool:
        # RFC 9000 §8.1: "an endpoint MUST limit the amount of data it sends to the unvalidated address
        # to three times the amount of data received from that address".
        if self._peer_address_validated:
            return False
        return self.bytes_sent >= AMPLIFICATION_FACTOR * self.bytes_received

    def amplification_budget(self) -> int | None:
        """Bytes that may still be sent to the unvalidated peer address (None: no limit)."""
        if self._peer_address_validated:
            return None
        return max(0, AMPLIFICATION_FACTOR * self.bytes_received - self.bytes_sent)

    def received_bytes(self, n: int, now: float | None = None) -> None:
        """A datagram of ``n`` bytes arrived from the peer (all of it counts, RFC 9000 §8.1)."""
        if now is not None:
            self._last_now = now
        was_limited = self.is_amplification_limited()
        self.bytes_received += n
        if was_limited and not self.is_amplification_limited():
            self._set_loss_detection_timer(self._last_now)

    def set_peer_validated_address(self, now: float | None = None) -> None:
        """Server: the client's address is validated (a Handshake packet, RFC 9000 §8.1, or a token)."""
        if now is not None:
            self._last_now = now
        if not self._peer_address_validated:
            self._peer_address_validated = True
            self._set_loss_detection_timer(self._last_now)

    def set_handshake_confirmed(self, now: float | None = None) -> None:
        """The handshake is confirmed (RFC 9001 §4.1.2): application PTOs start, ack delays are clamped."""
        if now is not None:
            self._last_now = now
        self.handshake_confirmed = True
        self.rtt.handshake_confirmed = True
        self._peer_completed_address_validation = True
        self._set_loss_detection_timer(self._last_now)

    # ---- acknowledgments (RFC 9002 §A.7) ------------------------------------------------------

    def received_ack(self, frame: AckFrame, space: PacketNumberSpace, now: float) -> AckResult:
        """Process an ACK frame received in ``space``.

        Raises TransportError PROTOCOL_VIOLATION when it acknowledges a packet number that was never
        sent or that was skipped.
        """
        self._last_now = now
        s = self._spaces[space]
        if s.dropped:
            return AckResult([], [], False)
        ranges = frame.ranges
        if not ranges:
            raise TransportError(
                TransportErrorCode.FRAME_ENCODING_ERROR, "ACK without ranges", ACK_FRAME_TYPE
            )
        largest = ranges[0][1]
        if largest > s.largest_sent:
            # RFC 9000 §13.1: "An endpoint SHOULD treat receipt of an acknowledgment for a packet it did
            # not send as a connection error of type PROTOCOL_VIOLATION".
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION,
                f"ACK of unsent packet {largest} in {space.name} (largest sent {s.largest_sent})",
                ACK_FRAME_TYPE,
            )
        smallest = ranges[-1][0]
        for pn in s.skipped:
            if smallest <= pn <= largest and _acks(ranges, pn):
                # RFC 9000 §21.4: an ACK of a skipped packet number reveals an optimistic ACK attack.
                raise TransportError(
                    TransportErrorCode.PROTOCOL_VIOLATION,
                    f"ACK of skipped packet number {pn} in {space.name}",
                    ACK_FRAME_TYPE,
                )
        if self.perspective == _CLIENT and not self._peer_completed_address_validation and space != _INITIAL:
            # RFC 9002 §6.2.2.1: an ACK for a Handshake (or 1-RTT) packet shows the server validated us.
            self._peer_completed_address_validation = True
            self._set_loss_detection_timer(now)

        prior_in_flight = self.bytes_in_flight
        acked = self._remove_acked(s, ranges)
        increased = largest > s.largest_acked
        if increased:
            # RFC 9002 §A.7: largest_acked_packet is updated before checking for newly acknowledged packets.
            s.largest_acked = largest
        if not acked:
            return AckResult([], [], False)

        rtt_updated = False
        newest = acked[-1]
        eliciting = False
        for p in acked:
            if p.ack_eliciting:
                eliciting = True
                break
        if newest.pn == largest and eliciting:
            # RFC 9002 §5.1: a sample when the largest acknowledged is newly acknowledged and at least
            # one newly acknowledged packet was ack-eliciting.
            ack_delay = 0.0
            if space == _APPLICATION:
                # RFC 9002 §5.3: ack delay is ignored for Initial and Handshake packets.
                ack_delay = (frame.delay << self.peer_ack_delay_exponent) / 1_000_000
            if self._largest_acked_time_sent is None or newest.time_sent >= self._largest_acked_time_sent:
                self.rtt.update(now - newest.time_sent, ack_delay, now)
                self._largest_acked_time_sent = newest.time_sent
                rtt_updated = True
                if self._first_rtt_sample_time is None:
                    self._first_rtt_sample_time = now

        ecn_ce = False
        if increased and space == _APPLICATION and self.ecn is not None:
            # RFC 9000 §13.4.2.1: ECN counts are validated on ACKs that increase the largest acknowledged.
            ecn_ce = self.ecn.handle_newly_acked(acked, frame.ecn)

        if ecn_ce:
            # RFC 9002 §7.1: an increase in the ECN-CE count is a congestion signal.
            self.congestion.on_ecn_ce(now, largest)
        lost = self._detect_lost(s, space, now)
        if lost:
            self._on_packets_lost(s, space, lost, prior_in_flight, now)

        ignore_below = -1
        congestion = self.congestion
        for p in acked:
            if p.counted_in_flight:
                congestion.on_packet_acked(p.pn, p.size, prior_in_flight, now)
                self.bytes_in_flight -= p.size
                self.packets_in_flight -= 1
                p.counted_in_flight = False
            if p.ack_eliciting:
                s.eliciting_outstanding -= 1
            if p.largest_acked is not None and p.largest_acked >= ignore_below:
                ignore_below = p.largest_acked + 1

        # RFC 9002 §A.7: "Reset pto_count unless the client is unsure if the server has validated the
        # client's address".
        if self._peer_completed_address_validation:
            self.pto_count = 0
        self._probes_to_send = 0
        self._set_loss_detection_timer(now)
        if self._tracer is not None:
            self._trace_metrics()
        return AckResult(
            acked,
            [p for p in lost if p.ack_eliciting],
            rtt_updated,
            ignore_below if ignore_below >= 0 else None,
            ecn_ce,
        )

    def _remove_acked(self, s: SpaceHistory, ranges: tuple[tuple[int, int], ...]) -> list[SentPacket]:
        """Pop the newly acknowledged packets, ascending; cost O(ranges + acknowledged)."""
        acked: list[SentPacket] = []
        packets = s.packets
        if not packets:
            return acked
        lowest = s.first_outstanding()
        run_open = s.pc_first_time is not None
        for i in range(len(ranges) - 1, -1, -1):
            smallest, largest = ranges[i]
            if largest < lowest:
                continue
            for pn in range(smallest if smallest > lowest else lowest, largest + 1):
                p = packets.pop(pn, None)
                if p is not None:
                    acked.append(p)
                    if run_open and pn > s.pc_last_pn and pn < s.pc_broken_above:
                        s.pc_broken_above = float(pn)
        return acked

    # ---- loss detection (RFC 9002 §6.1, §A.10) ------------------------------------------------

    def _loss_delay(self) -> float:
        rtt = self.rtt
        # RFC 9002 §6.1.2: max(kTimeThreshold * max(smoothed_rtt, latest_rtt), kGranularity).
        return max(K_TIME_THRESHOLD * max(rtt.latest_rtt, rtt.smoothed_rtt), TIMER_GRANULARITY)

    def _detect_lost(self, s: SpaceHistory, space: PacketNumberSpace, now: float) -> list[SentPacket]:
        """Remove and return the packets lost by the packet or time threshold; set the space's loss time."""
        s.loss_time = None
        packets = s.packets
        largest_acked = s.largest_acked
        if not packets or largest_acked < 0:
            return []
        loss_delay = self._loss_delay()
        lost: list[SentPacket] = []
        pn = s.first_outstanding()
        run_open = s.pc_first_time is not None
        skipped = s.skipped
        while pn <= largest_acked:
            p = packets.get(pn)
            if p is None:
                # Acknowledged earlier (or skipped): it ends any run of lost packets below it.
                if run_open and pn > s.pc_last_pn and pn < s.pc_broken_above and pn not in skipped:
                    s.pc_broken_above = float(pn)
                pn += 1
                continue
            # RFC 9002 §6.1: lost when kPacketThreshold newer packets were acknowledged or it was sent
            # more than the loss delay before now.
            # (The same expression as the loss time below, so the timer firing at it is never early.)
            timed_out = p.time_sent + loss_delay <= now
            if timed_out or largest_acked >= pn + K_PACKET_THRESHOLD:
                del packets[pn]
                lost.append(p)
                if self._tracer is not None and p.ack_eliciting:
                    trigger = "time_threshold" if timed_out else "reordering_threshold"
                    self._tracer.lost_packet(_SPACE_NAMES[space], pn, trigger)
                run_open = self._extend_loss_run(s, p)
            else:
                # Sent later than every lost packet: the earliest time this one may be declared lost.
                s.loss_time = p.time_sent + loss_delay
                break
            pn += 1
        return lost

    def _extend_loss_run(self, s: SpaceHistory, p: SentPacket) -> bool:
        """Track the run of lost packets for persistent congestion; True if a run is open."""
        first_sample = self._first_rtt_sample_time
        # RFC 9002 §7.6.2: only ack-eliciting packets sent after the first RTT sample count.
        if not p.ack_eliciting or p.is_mtu_probe or first_sample is None or p.time_sent <= first_sample:
            return s.pc_first_time is not None
        if s.pc_first_time is None or s.pc_broken_above < p.pn:
            s.pc_first_time = p.time_sent
            s.pc_broken_above = NEVER
        s.pc_last_time = p.time_sent
        s.pc_last_pn = p.pn
        return True

    def _persistent_congestion_duration(self) -> float:
        rtt = self.rtt
        # RFC 9002 §7.6.1: (smoothed_rtt + max(4*rttvar, kGranularity) + max_ack_delay) * 3.
        return rtt.pto(True) * K_PERSISTENT_CONGESTION_THRESHOLD

    def _on_packets_lost(
        self,
        s: SpaceHistory,
        space: PacketNumberSpace,
        lost: list[SentPacket],
        prior_in_flight: int,
        now: float,
    ) -> None:
        largest_lost = -1
        lost_bytes = 0
        ecn = self.ecn if space == _APPLICATION else None
        for p in lost:
            if p.counted_in_flight:
                self.bytes_in_flight -= p.size
                self.packets_in_flight -= 1
                p.counted_in_flight = False
                # RFC 9002 §7.3.2 / DPLPMTUD (RFC 8899 §3): a lost MTU probe is no congestion signal.
                if not p.is_mtu_probe:
                    lost_bytes += p.size
                    largest_lost = p.pn
            if p.ack_eliciting:
                s.eliciting_outstanding -= 1
            if ecn is not None:
                ecn.lost_packet(p.pn)
        self.packets_lost += len(lost)
        self.bytes_lost += lost_bytes
        if largest_lost >= 0:
            self.congestion.on_congestion_event(largest_lost, lost_bytes, prior_in_flight, now)
        if (
            s.pc_first_time is not None
            and s.pc_last_time - s.pc_first_time > self._persistent_congestion_duration()
        ):
            # RFC 9002 §7.6.2: "the sender's congestion window MUST be reduced to the minimum".
            s.pc_first_time = None
            self.congestion.on_persistent_congestion()

    # ---- the loss detection timer (RFC 9002 §6.2, §A.8, §A.9) ---------------------------------

    def loss_detection_timeout(self) -> float | None:
        """When ``on_loss_detection_timeout`` must be called (None: no timer)."""
        return self._alarm

    def _loss_time_and_space(self) -> tuple[float | None, PacketNumberSpace]:
        best: float | None = None
        best_space = _INITIAL
        for s in self._spaces:
            t = s.loss_time
            if t is not None and (best is None or t < best):
                best, best_space = t, s.space
        return best, best_space

    def _scaled_pto(self, include_max_ack_delay: bool) -> float:
        pto = self.rtt.pto(include_max_ack_delay)
        count = self.pto_count
        if count:
            # RFC 9002 §6.2.1: exponential backoff, truncated (RFC 8961 §4.4).
            pto *= 1 << (count if count < 30 else 30)
        return pto if pto < MAX_PTO_DURATION else MAX_PTO_DURATION

    def _has_outstanding_crypto(self) -> bool:
        return self._spaces[0].eliciting_outstanding > 0 or self._spaces[1].eliciting_outstanding > 0

    def _pto_time_and_space(self, now: float) -> tuple[float | None, PacketNumberSpace]:
        initial, handshake, application = self._spaces
        if not self.handshake_confirmed and not self._has_outstanding_crypto():
            # RFC 9002 §6.2.2.1: a client that has nothing in flight keeps a PTO armed until the server
            # validated its address, so that it can unblock a server at its amplification limit.
            if self._peer_completed_address_validation:
                return None, _APPLICATION
            space = _INITIAL if not initial.dropped else _HANDSHAKE
            return now + self._scaled_pto(False), space
        best: float | None = None
        best_space = _INITIAL
        for space, s in ((_INITIAL, initial), (_HANDSHAKE, handshake)):
            if s.eliciting_outstanding > 0 and s.last_ack_eliciting_time is not None:
                t = s.last_ack_eliciting_time + self._scaled_pto(False)
                if best is None or t < best:
                    best, best_space = t, space
        # RFC 9002 §6.2.1: "An endpoint MUST NOT set its PTO timer for the Application Data packet number
        # space until the handshake is confirmed".
        if (
            self.handshake_confirmed
            and application.eliciting_outstanding > 0
            and application.last_ack_eliciting_time is not None
        ):
            t = application.last_ack_eliciting_time + self._scaled_pto(True)
            if best is None or t < best:
                best, best_space = t, _APPLICATION
        return best, best_space

    def _compute_alarm(self, now: float) -> tuple[float | None, str, PacketNumberSpace]:
        if (
            self._peer_completed_address_validation
            and not self._has_outstanding_crypto()
            and self._spaces[2].eliciting_outstanding == 0
        ):
            return None, "", _INITIAL
        # RFC 9002 §6.2.2.1: "If the server is blocked by the anti-amplification limit, the loss
        # detection timer is cancelled" (it cannot send probes anyway).
        if self.is_amplification_limited():
            return None, "", _INITIAL
        loss_time, space = self._loss_time_and_space()
        if loss_time is not None:
            return loss_time, "ack", space
        pto, space = self._pto_time_and_space(now)
        if pto is not None:
            return pto, "pto", space
        return None, "", _INITIAL

    def _set_loss_detection_timer(self, now: float) -> None:
        initial, handshake, application = self._spaces
        if (
            self.handshake_confirmed
            and initial.dropped
            and handshake.dropped
            and self._peer_address_validated
        ):
            # The steady state after the handshake: only the application space matters (same result as
            # _compute_alarm, without its generality; this runs for every packet sent and ACK received).
            if application.eliciting_outstanding == 0:
                alarm: float | None = None
                kind, space = "", _INITIAL
            elif application.loss_time is not None:
                alarm, kind, space = application.loss_time, "ack", _APPLICATION
            else:
                last = application.last_ack_eliciting_time
                alarm = None if last is None else last + self._scaled_pto(True)
                kind, space = "pto", _APPLICATION
        else:
            alarm, kind, space = self._compute_alarm(now)
        changed = alarm != self._alarm
        self._alarm, self._alarm_type, self._alarm_space = alarm, kind, space
        if changed and alarm is not None and self._tracer is not None:
            self._tracer.set_loss_timer(kind, _SPACE_NAMES[space], alarm)

    def on_loss_detection_timeout(self, now: float) -> LossTimeoutResult:
        """The loss detection timer fired: declare time-threshold losses or start a PTO (§A.9)."""
        self._last_now = now
        if self._alarm is None or now < self._alarm:
            return LossTimeoutResult([], None, 0)
        loss_time, space = self._loss_time_and_space()
        if loss_time is not None:
            if self._tracer is not None:
                self._tracer.loss_timer_expired("ack", _SPACE_NAMES[space])
            s = self._spaces[space]
            prior_in_flight = self.bytes_in_flight
            lost = self._detect_lost(s, space, now)
            if lost:
                self._on_packets_lost(s, space, lost, prior_in_flight, now)
            self._set_loss_detection_timer(now)
            if self._tracer is not None:
                self._trace_metrics()
            return LossTimeoutResult([p for p in lost if p.ack_eliciting], None, 0)

        initial, handshake, application = self._spaces
        nothing_in_flight = (
            initial.eliciting_outstanding
            + handshake.eliciting_outstanding
            + application.eliciting_outstanding
            == 0
        )
        if nothing_in_flight and not self._peer_completed_address_validation:
            # RFC 9002 §6.2.2.1 anti-deadlock: the client sends a Handshake packet if it has Handshake
            # keys (it dropped Initial when it sent its first Handshake packet), else a padded Initial.
            space = _INITIAL if not initial.dropped else _HANDSHAKE
            probes = 1
        else:
            pto, space = self._pto_time_and_space(now)
            if pto is None:
                self._set_loss_detection_timer(now)
                return LossTimeoutResult([], None, 0)
            # RFC 9002 §6.2.4: "an endpoint MAY send up to two full-sized datagrams containing
            # ack-eliciting packets".
            probes = 2
            if space == _APPLICATION:
                # Skipping a packet number makes the peer acknowledge the probe immediately (§13.2.1).
                application.remember_skipped(self.pop_packet_number(space))
        if self._tracer is not None:
            self._tracer.loss_timer_expired("pto", _SPACE_NAMES[space])
        self.pto_count += 1
        self._probes_to_send = probes
        self._pto_mode = _PTO_MODES[space]
        self._set_loss_detection_timer(now)
        return LossTimeoutResult([], space, probes)

    def queue_probe_packet(self, space: PacketNumberSpace) -> SentPacket | None:
        """For a PTO with no new data to send: take the oldest outstanding ack-eliciting packet of
        ``space`` out of flight and return it, so its frames can be resent in the probe (RFC 9002 §6.2.4).
        Returns None when there is none."""
        s = self._spaces[space]
        if s.eliciting_outstanding == 0:
            return None
        packets = s.packets
        pn = s.first_outstanding()
        while pn <= s.largest_sent:
            p = packets.get(pn)
            if p is not None and p.ack_eliciting:
                del packets[pn]
                s.eliciting_outstanding -= 1
                if p.counted_in_flight:
                    self.bytes_in_flight -= p.size
                    self.packets_in_flight -= 1
                    p.counted_in_flight = False
                return p
            pn += 1
        return None

    # ---- introspection ------------------------------------------------------------------------

    def outstanding(self, space: PacketNumberSpace) -> list[SentPacket]:
        """The packets of ``space`` neither acknowledged nor lost, ascending (tests and stats)."""
        return sorted(self._spaces[space].packets.values(), key=lambda p: p.pn)

    def _trace_metrics(self) -> None:
        assert self._tracer is not None
        self._tracer.updated_metrics(
            self.rtt, self.congestion.congestion_window, self.bytes_in_flight, self.packets_in_flight
        )


def _acks(ranges: tuple[tuple[int, int], ...], pn: int) -> bool:
    for smallest, largest in ranges:
        if pn > largest:
            return False
        if pn >= smallest:
            return True
    return False
