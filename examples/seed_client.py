"""A client for the seed server: dial 127.0.0.1:9000 (ALPN "TEST"), send a message, print the echo.

The server's certificate is self-signed, so verification is off, as in the quic-go example's
``InsecureSkipVerify: true``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import quicsilver as quic

ADDR = "127.0.0.1:9000"


async def main(addr: str = ADDR, message: bytes = b"foobar") -> bytes:
    tls = quic.TLSConfig(alpn=["TEST"], verify=False)
    async with await quic.dial_addr(addr, tls) as conn:
        stream = await conn.open_stream_sync()
        await stream.write(message)
        await stream.close()  # FIN: the server echoes and closes its side
        echoed = await stream.read()
        print(f"Client: sent {message!r}, got {echoed!r} (rtt {conn.stats()['smoothed_rtt'] * 1000:.2f} ms)")
        return echoed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", default=ADDR, help=f"server address (default {ADDR})")
    parser.add_argument("message", nargs="?", default="foobar")
    args = parser.parse_args()
    echoed = asyncio.run(main(args.addr, args.message.encode()))
    sys.exit(0 if echoed == args.message.encode() else 1)
