"""Per-packet cost of QUIC packet protection (RFC 9001 §5) for each cipher suite.

Measures, for a 1200-byte short-header packet (8-byte DCID, 4-byte packet number), in
microseconds per packet: protect (copy the 13-byte header into a buffer, AEAD seal, header
protection: ``protect_packet_into``, what the packer calls), unprotect (copy the packet into a
bytearray as the receive path does, ``unprotect_header`` + ``unprotect_payload``), and for
reference the bare AEAD seal + open of the same payload (the floor set by ``cryptography``).

    python bench/bench_protection.py [--number N] [--repeat R]
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

from quicsilver.handshake.protection import (
    CipherSuite,
    PacketKeys,
    protect_packet,
    protect_packet_into,
    suite_hash,
    unprotect_header,
    unprotect_payload,
)
from quicsilver.protocol import VERSION_1

PACKET_SIZE = 1200
DCID = bytes.fromhex("c0ffee00deadbeef")
PN_LEN = 4
PN_OFFSET = 1 + len(DCID)
TAG = 16


def short_header(pn: int) -> bytearray:
    return bytearray(bytes((0x40 | (PN_LEN - 1),)) + DCID + pn.to_bytes(PN_LEN, "big"))


def bench_suite(suite: CipherSuite, number: int, repeat: int) -> tuple[float, float, float]:
    secret = bytes(range(suite_hash(suite).digest_size))
    sender = PacketKeys(suite, secret, VERSION_1)
    receiver = PacketKeys(suite, secret, VERSION_1)
    payload = bytes(PACKET_SIZE - PN_OFFSET - PN_LEN - TAG)
    pn = 0x01020304
    packet = protect_packet(sender, short_header(pn), PN_OFFSET, PN_LEN, pn, payload)
    assert len(packet) == PACKET_SIZE

    header = bytes(short_header(pn))

    def protect() -> None:
        protect_packet_into(sender, bytearray(header), PN_OFFSET, PN_LEN, pn, payload)

    def unprotect() -> None:
        data = bytearray(packet)
        _, truncated, pn_len = unprotect_header(receiver, data, PN_OFFSET)
        unprotect_payload(receiver, data, PN_OFFSET, pn_len, truncated)

    sealed = sender.seal(pn, header, payload)

    def aead_only() -> None:
        receiver.open(pn, header, sender.seal(pn, header, payload))

    unprotect()  # must authenticate
    aead_only()

    def best(stmt: Callable[[], None]) -> float:
        return min(timeit.repeat(stmt, number=number, repeat=repeat)) / number * 1e6

    assert len(sealed) + len(header) == PACKET_SIZE
    return best(protect), best(unprotect), best(aead_only)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000, help="packets per timing run")
    parser.add_argument("--repeat", type=int, default=5, help="timing runs (the best is reported)")
    args = parser.parse_args()
    print(f"{PACKET_SIZE}-byte short-header packet, best of {args.repeat} x {args.number} packets")
    print(f"{'suite':<28}{'protect us':>12}{'unprotect us':>14}{'total us':>10}{'AEAD-only us':>14}")
    for suite in CipherSuite:
        seal, open_, floor = bench_suite(suite, args.number, args.repeat)
        print(f"{suite.name:<28}{seal:>12.2f}{open_:>14.2f}{seal + open_:>10.2f}{floor:>14.2f}")


if __name__ == "__main__":
    main()
