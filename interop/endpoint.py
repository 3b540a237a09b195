"""quicsilver as a QUIC interop runner endpoint (https://github.com/quic-interop/quic-interop-runner).

The runner starts the endpoint container with ``ROLE`` (client | server), ``TESTCASE``, and for
the client ``REQUESTS`` (space-separated URLs). The server serves ``/www`` on port 443 with
``/certs/cert.pem`` and ``/certs/priv.key``; the client saves each file into ``/downloads``.
``SSLKEYLOGFILE`` and ``QLOGDIR`` are honoured by the CLI itself. A test case the endpoint does not
support exits with status 127, as the contract asks.

Everything is delegated to ``quicsilver``'s command line (:mod:`quicsilver.cli`), so the interop
endpoint runs exactly the code users run. ``plan(...)`` returns the command lines for a case and
is what the tests check; ``main()`` runs them.
"""

from __future__ import annotations

import os
import sys

UNSUPPORTED = 127

# hq-interop test cases (the runner's names) and what they need from the command line.
_COMMON = {
    "handshake",
    "transfer",
    "multiplexing",
    "chacha20",
    "keyupdate",
    "v2",
    "ecn",
    "amplificationlimit",
    "handshakeloss",
    "transferloss",
    "handshakecorruption",
    "transfercorruption",
    "blackhole",
    "longrtt",
    "goodput",
    "crosstraffic",
    "ipv6",
}
SERVER_CASES = _COMMON | {"retry", "resumption", "zerortt"}
CLIENT_CASES = _COMMON | {"retry", "resumption", "zerortt"}

WWW = "/www"
DOWNLOADS = "/downloads"
CERT = "/certs/cert.pem"
KEY = "/certs/priv.key"
TICKETS = "/tmp/quicsilver-tickets.json"


def plan(
    role: str,
    testcase: str,
    requests: list[str],
    *,
    www: str = WWW,
    downloads: str = DOWNLOADS,
    cert: str = CERT,
    key: str = KEY,
    tickets: str = TICKETS,
    port: int = 443,
) -> list[list[str]] | None:
    """The ``quicsilver`` command lines for one run, in order; None when the case is unsupported."""
    if role == "server":
        if testcase not in SERVER_CASES:
            return None
        args = ["server", "-l", f":{port}", "-d", www, "--cert", cert, "--key", key]
        if testcase == "retry":
            args.append("--retry")
        if testcase == "zerortt":
            args.append("--0rtt")
        if testcase == "v2":
            args += ["--quic-versions", "v2,v1"]  # prefer v2: upgrade v1 clients that offer it (RFC 9368)
        return [args]
    if role != "client" or testcase not in CLIENT_CASES or not requests:
        return None
    # The runner's certificates are signed by its own CA, which the endpoint does not get.
    base = ["client", "--insecure", "--quiet", "-o", downloads]
    if testcase == "chacha20":
        base += ["--cipher", "chacha20"]
    if testcase == "keyupdate":
        base += ["--key-update-after", "10"]  # the runner wants a client-initiated key update
    if testcase == "v2":
        base += ["--quic-versions", "v1,v2"]  # v1 Initial, compatible negotiation to v2 (RFC 9368)
    if testcase in ("resumption", "zerortt"):
        # First connection: one file and a ticket; second: resume (with 0-RTT) for the rest.
        flag = "--0rtt" if testcase == "zerortt" else "--resume"
        resumed = [*base, "--ticket-file", tickets, flag]
        first = [*base, "--ticket-file", tickets, "--resume", requests[0]]
        runs = [first]
        if len(requests) > 1:
            runs.append([*resumed, *requests[1:]])
        return runs
    return [[*base, *requests]]


def main() -> int:
    role = os.environ.get("ROLE", "")
    testcase = os.environ.get("TESTCASE", "")
    requests = os.environ.get("REQUESTS", "").split()
    # Outside the runner's container (tests), the paths and port can be moved with
    # QUICSILVER_INTEROP_{WWW,DOWNLOADS,CERTS,PORT,TICKETS}.
    env = os.environ.get
    certs = env("QUICSILVER_INTEROP_CERTS")
    runs = plan(
        role,
        testcase,
        requests,
        www=env("QUICSILVER_INTEROP_WWW", WWW),
        downloads=env("QUICSILVER_INTEROP_DOWNLOADS", DOWNLOADS),
        cert=os.path.join(certs, "cert.pem") if certs else CERT,
        key=os.path.join(certs, "priv.key") if certs else KEY,
        tickets=env("QUICSILVER_INTEROP_TICKETS", TICKETS),
        port=int(env("QUICSILVER_INTEROP_PORT", "443")),
    )
    if runs is None:
        print(f"quicsilver: unsupported test case {testcase!r} for role {role!r}", file=sys.stderr)
        return UNSUPPORTED
    from quicsilver.cli import main as cli_main

    for argv in runs:
        status = cli_main(argv)
        if status != 0:
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
