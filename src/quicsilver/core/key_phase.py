"""1-RTT packet protection keys and key update (RFC 9001 §5.4, §6, §6.6).

One key-phase counter covers both directions, as in quic-go: initiating or responding to an update
rolls the send and receive keys together. The header-protection keys never change (RFC 9001 §6:
"The header protection key is not updated"), so they stay those of generation 0.
"""

from __future__ import annotations

from quicsilver.errors import TransportError, TransportErrorCode
from quicsilver.handshake.protection import (
    CONFIDENTIALITY_LIMIT,
    INTEGRITY_LIMIT,
    CipherSuite,
    DecryptionError,
    PacketKeys,
)

__all__ = ["KeysDroppedError", "OneRTTKeys"]


class KeysDroppedError(DecryptionError):
    """A packet of the previous key phase arrived after those keys were discarded."""


class OneRTTKeys:
    """The 1-RTT AEAD of one connection: current, next and previous generations."""

    def __init__(
        self,
        suite: CipherSuite,
        version: int,
        send_secret: bytes,
        recv_secret: bytes,
        *,
        first_update_interval: int,
        update_interval: int,
    ) -> None:
        self.send_keys = PacketKeys(suite, send_secret, version)
        # The receive keys are derived with the first packet that needs them (``recv_keys``): a
        # client's first 1-RTT packet is the server's HANDSHAKE_DONE, which comes while it waits for
        # its first answer anyway, not while it builds its Finished. (Header protection stays with
        # this first generation, RFC 9001 §6: ``PacketKeys.next_generation`` keeps it.)
        self._suite = suite
        self._version = version
        self._recv_secret = recv_secret
        self._recv_keys: PacketKeys | None = None
        # RFC 9001 §6.3: made at ``next_keys_due`` (a connection timer: about a PTO after these keys
        # became current, as the RFC allows) or ahead by ``prepare_next``, not while a packet waits;
        # made on first use only if a packet of the next phase comes first.
        self._next_recv_keys: PacketKeys | None = None
        self.next_keys_due: float | None = None
        self._prev_recv_keys: PacketKeys | None = None
        self._prev_expiry: float | None = None
        self.key_phase = 0
        self._first_sent: int | None = None
        self._first_received: int | None = None
        self._sent_in_phase = 0
        self._largest_acked: int | None = None
        self._first_update_interval = first_update_interval
        self._update_interval = update_interval
        self._invalid_packets = 0
        self._integrity_limit = INTEGRITY_LIMIT[suite]
        self._confidentiality_limit = CONFIDENTIALITY_LIMIT[suite]
        self._total_sent = 0

    def made_from(self, suite: CipherSuite, send_secret: bytes, recv_secret: bytes) -> bool:
        """Whether these are, unused, the keys of these secrets (keys made ahead of need)."""
        return (
            self.key_phase == 0
            and self._total_sent == 0
            and self._first_received is None
            and self.send_keys.suite == suite
            and self.send_keys.secret == send_secret
            and self._recv_secret == recv_secret
        )

    @property
    def recv_keys(self) -> PacketKeys:
        """The current phase's receive keys (derived on first use)."""
        keys = self._recv_keys
        if keys is None:
            keys = self._recv_keys = PacketKeys(self._suite, self._recv_secret, self._version)
        return keys

    @property
    def recv_keys_derived(self) -> bool:
        return self._recv_keys is not None

    @property
    def next_prepared(self) -> bool:
        """Whether the next key phase's receive keys are derived (see ``prepare_next``)."""
        return self._next_recv_keys is not None

    def prepare_next(self) -> None:
        """Derive the next key phase's receive keys now, ahead of a key update (RFC 9001 §6.3: their
        derivation while a packet is processed would show, by its timing, that the packet started
        an update; and it keeps the derivation off the path of the packets that follow)."""
        self.next_keys_due = None
        self._next_keys()

    def schedule_next(self, at: float) -> None:
        """Derive the next phase's receive keys at ``at`` (``prepare_next_if_due``), unless made before."""
        if self._next_recv_keys is None:
            self.next_keys_due = at

    def prepare_next_if_due(self, now: float) -> None:
        due = self.next_keys_due
        if due is not None and now >= due:
            self.prepare_next()

    def _next_keys(self) -> PacketKeys:
        keys = self._next_recv_keys
        if keys is None:
            keys = self._next_recv_keys = self.recv_keys.next_generation()
        return keys

    @property
    def phase_bit(self) -> bool:
        return bool(self.key_phase & 1)

    # -- sending --------------------------------------------------------------------------------

    def on_packet_sent(self, pn: int) -> None:
        if self._first_sent is None:
            self._first_sent = pn
        self._sent_in_phase += 1
        self._total_sent += 1

    def on_packet_acked(self, pn: int) -> None:
        if self._largest_acked is None or pn > self._largest_acked:
            self._largest_acked = pn

    def should_initiate_update(self) -> bool:
        """Whether to roll keys before the next packet (call only once the handshake is confirmed).

        RFC 9001 §6.5: not before a packet sent with the current keys was acknowledged (and, as
        quic-go, one was received); RFC 9001 §6.6: always before the confidentiality limit.
        """
        interval = self._first_update_interval if self.key_phase == 0 else self._update_interval
        interval = min(interval, self._confidentiality_limit)
        return self._sent_in_phase >= interval and self.can_initiate_update()

    def can_initiate_update(self) -> bool:
        """RFC 9001 §6.5: a packet of the current phase was received and one we sent acknowledged."""
        if self._first_received is None or self._first_sent is None:
            return False
        return self._largest_acked is not None and self._largest_acked >= self._first_sent

    def initiate_update(self, now: float, pto: float) -> None:
        """Start a key update (RFC 9001 §6.1)."""
        self._roll(now, pto)
        # RFC 9001 §6.5: old read keys go "three times the PTO after having received a packet
        # protected using the new keys"; until the peer answers, it may still send with the old ones.
        self._prev_expiry = None

    def _roll(self, now: float, pto: float) -> None:
        self._prev_recv_keys = self.recv_keys
        # RFC 9001 §6.5: keep the old keys around for about three PTOs for reordered packets.
        self._prev_expiry = now + 3 * pto
        self._recv_keys = self._next_keys()
        # RFC 9001 §6.3: the phase after this one "approximately the PTO" later
        self._next_recv_keys = None
        self.schedule_next(now + pto)
        self.send_keys = self.send_keys.next_generation()
        self.key_phase += 1
        self._first_sent = None
        self._first_received = None
        self._sent_in_phase = 0

    # -- receiving ------------------------------------------------------------------------------

    def open(
        self,
        pn: int,
        header: bytes | bytearray | memoryview,
        payload: bytes | memoryview,
        phase_bit: bool,
        now: float,
        pto: float,
    ) -> bytes:
        """Decrypt a 1-RTT payload; raises DecryptionError (drop) or TransportError (close)."""
        if self._prev_expiry is not None and now >= self._prev_expiry:
            self._prev_recv_keys = None
            self._prev_expiry = None
        try:
            if phase_bit == self.phase_bit:
                plain = self.recv_keys.open(pn, header, payload)
                if self._first_received is None:
                    self._first_received = pn
                    if self._prev_recv_keys is not None and self._prev_expiry is None:
                        self._prev_expiry = now + 3 * pto  # the first packet of the update we started
                elif pn < self._first_received:
                    self._first_received = pn
                return plain
            if self.key_phase > 0 and (self._first_received is None or pn < self._first_received):
                # A reordered packet of the previous phase...
                if self._prev_recv_keys is None:
                    if self._first_received is not None:
                        raise KeysDroppedError("previous 1-RTT keys already discarded")
                else:
                    try:
                        return self._prev_recv_keys.open(pn, header, payload)
                    except DecryptionError:
                        if self._first_received is not None:
                            raise
                # ...or, when nothing of the current phase arrived yet, a peer that already moved one
                # phase further (an update started without waiting for our acknowledgment).
            plain = self._next_keys().open(pn, header, payload)
        except DecryptionError:
            # RFC 9001 §6.6: count failed decryptions against the integrity limit.
            self._invalid_packets += 1
            if self._invalid_packets >= self._integrity_limit:
                raise TransportError(
                    TransportErrorCode.AEAD_LIMIT_REACHED, "too many packets failed authentication"
                ) from None
            raise
        # The peer started a key update (RFC 9001 §6.2).
        if self.key_phase > 0 and self._first_sent is None:
            # RFC 9001 §6.2: a second update before we sent with the current keys is an error.
            raise TransportError(TransportErrorCode.KEY_UPDATE_ERROR, "peer updated keys twice too quickly")
        self._roll(now, pto)
        self._first_received = pn
        return plain

    def drop_previous_keys(self, now: float) -> None:
        """Discard the previous generation once its three PTOs have passed."""
        if self._prev_expiry is not None and now >= self._prev_expiry:
            self._prev_recv_keys = None
            self._prev_expiry = None

    @property
    def previous_keys_expiry(self) -> float | None:
        return self._prev_expiry
