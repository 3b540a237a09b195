"""Per-packet cost of QUIC packet protection (RFC 9001 §5) for each cipher suite.

Measures, for a 1200-byte short-header packet (8-byte DCID, 4-byte packet number):
protect (AEAD seal + header protection, ``protect_packet``) and unprotect (header protection
removal + AEAD open, ``unprotect_header`` + ``unprotect_payload``), in microseconds per packet.

    python bench/bench_protection.py [--number N] [--repeat R]
"""

from __future__ import annotations

import argparse
import timeit

from quicsilver.handshake.protection import (
    CipherSuite,
    PacketKeys,
    protect_packet,
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


def bench_suite(suite: CipherSuite, number: int, repeat: int) -> tuple[float, float]:
    secret = bytes(range(suite_hash(suite).digest_size))
    sender = PacketKeys(suite, secret, VERSION_1)
    receiver = PacketKeys(suite, secret, VERSION_1)
    payload = bytes(PACKET_SIZE - PN_OFFSET - PN_LEN - TAG)
    pn = 0x01020304
    packet = protect_packet(sender, short_header(pn), PN_OFFSET, PN_LEN, pn, payload)
    assert len(packet) == PACKET_SIZE

    def protect() -> None:
        protect_packet(sender, short_header(pn), PN_OFFSET, PN_LEN, pn, payload)

    def unprotect() -> None:
        data = bytearray(packet)
        _, truncated, pn_len = unprotect_header(receiver, data, PN_OFFSET)
        unprotect_payload(receiver, data, PN_OFFSET, pn_len, truncated)

    unprotect()  # must authenticate
    seal = min(timeit.repeat(protect, number=number, repeat=repeat)) / number * 1e6
    open_ = min(timeit.repeat(unprotect, number=number, repeat=repeat)) / number * 1e6
    return seal, open_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000, help="packets per timing run")
    parser.add_argument("--repeat", type=int, default=5, help="timing runs (the best is reported)")
    args = parser.parse_args()
    print(f"{PACKET_SIZE}-byte short-header packet, best of {args.repeat} x {args.number} packets")
    print(f"{'suite':<28}{'protect us':>12}{'unprotect us':>14}{'total us':>10}")
    for suite in CipherSuite:
        seal, open_ = bench_suite(suite, args.number, args.repeat)
        print(f"{suite.name:<28}{seal:>12.2f}{open_:>14.2f}{seal + open_:>10.2f}")


if __name__ == "__main__":
    main()
