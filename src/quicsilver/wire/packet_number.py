"""Packet number encoding and decoding (RFC 9000 §17.1, Appendix A.2 and A.3).

A sender truncates the packet number to the fewest bytes that let the receiver recover it given
the largest packet number the peer has acknowledged; the receiver reconstructs the full packet
number closest to one more than the largest packet number it has received.
"""

from __future__ import annotations

from typing import Final

__all__ = ["decode_packet_number", "encode_packet_number", "packet_number_length"]

_MAX_PN: Final = (1 << 62) - 1


def packet_number_length(pn: int, largest_acked: int | None) -> int:
    """Bytes (1..4) needed to encode ``pn`` given the peer's largest acknowledged packet number.

    RFC 9000 §17.1: the sender uses a size able to represent more than twice the range of
    packet numbers in flight (``pn - largest_acked``).
    """
    num_unacked = pn + 1 if largest_acked is None else pn - largest_acked
    # Appendix A.2: ceil((log2(num_unacked) + 1) / 8) bytes, in exact integer arithmetic:
    # (num_unacked - 1).bit_length() is ceil(log2(num_unacked)).
    num_bytes = (num_unacked - 1).bit_length() // 8 + 1 if num_unacked > 0 else 1
    return 4 if num_bytes > 4 else num_bytes


def encode_packet_number(pn: int, largest_acked: int | None) -> tuple[int, int]:
    """Truncate ``pn`` for the wire: returns ``(truncated, length)`` with length in 1..4 (Appendix A.2)."""
    length = packet_number_length(pn, largest_acked)
    return pn & ((1 << (8 * length)) - 1), length


def decode_packet_number(largest_pn: int | None, truncated: int, nbits: int) -> int:
    """Recover a full packet number from ``truncated`` (``nbits`` wide) (RFC 9000 Appendix A.3).

    ``largest_pn`` is the largest packet number successfully processed in this space
    (None if none yet).
    """
    expected = 0 if largest_pn is None else largest_pn + 1
    win = 1 << nbits
    hwin = win >> 1
    mask = win - 1
    # The candidate shares the high bits of the expected packet number.
    candidate = (expected & ~mask) | truncated
    if candidate <= expected - hwin and candidate < (1 << 62) - win:
        return candidate + win
    if candidate > expected + hwin and candidate >= win:
        return candidate - win
    return candidate
