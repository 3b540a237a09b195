"""Socket options for QUIC over UDP: buffers, don't-fragment, ECN, packet info, GSO and GRO.

quic-go's ``sys_conn*.go`` in Python. What each option is for:

- receive/send buffers of 7 MiB, so a burst of packets is not dropped by the kernel while the
  event loop is busy (quic-go ``setReceiveBuffer`` / ``setSendBuffer``, with SO_RCVBUFFORCE as root);
- don't-fragment: RFC 9000 §14 "UDP datagrams MUST NOT be fragmented at the IP layer", which on
  Linux is IP_MTU_DISCOVER = IP_PMTUDISC_PROBE (DF set, ignore the cached path MTU so DPLPMTUD
  probes, RFC 8899, can be sent);
- ECN (RFC 9000 §13.4): IP_RECVTOS / IPV6_RECVTCLASS deliver the codepoint as a control message;
  outgoing packets carry ECT(0) through IP_TOS / IPV6_TCLASS;
- IP_PKTINFO / IPV6_RECVPKTINFO on wildcard binds, so replies leave from the address the client used;
- UDP GSO (UDP_SEGMENT) and GRO (UDP_GRO), Linux >= 4.18 / 5.0, probed once per address family.

The numeric values are Linux's; the socket module lacks several of them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import sys

__all__ = [
    "DESIRED_BUFFER_SIZE",
    "GSO_MAX_BYTES",
    "GSO_MAX_SEGMENTS",
    "Capabilities",
    "probe_gro",
    "probe_gso",
    "set_buffer_sizes",
]

logger = logging.getLogger("quicsilver.sys")

IS_LINUX = sys.platform.startswith("linux")

# Linux constants (include/uapi/linux/in.h, in6.h, udp.h, asm-generic/socket.h).
SOL_IP = 0
SOL_IPV6 = 41
SOL_UDP = 17
IP_TOS = 1
IP_MTU_DISCOVER = 10
IP_RECVTOS = 13
IP_PKTINFO = 8
IP_PMTUDISC_PROBE = 3
IPV6_MTU_DISCOVER = 23
IPV6_PMTUDISC_PROBE = 3
IPV6_RECVPKTINFO = 49
IPV6_PKTINFO = 50
IPV6_RECVTCLASS = 66
IPV6_TCLASS = 67
UDP_SEGMENT = 103
UDP_GRO = 104
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33

DESIRED_BUFFER_SIZE = 7 << 20  # quic-go protocol.DesiredReceiveBufferSize / DesiredSendBufferSize
GSO_MAX_SEGMENTS = 64  # UDP_MAX_SEGMENTS of older kernels (newer ones allow 128)
GSO_MAX_BYTES = 65000  # one GSO super-datagram stays below the 64 KiB IP limit
GRO_BUFFER_SIZE = 65535
RECV_BUFFER_SIZE = 2048  # larger than any datagram a peer may send us (we advertise 1452)

_warned_buffers = False
_gso_support: dict[int, bool] = {}
_gro_support: dict[int, bool] = {}


def env_flag(name: str) -> bool:
    """True when the environment variable ``name`` is set to a true value ("1", "true", "yes")."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class Capabilities:
    """What the kernel lets a socket do; discovered once by :func:`wrap_conn`, then read-only."""

    __slots__ = ("df", "ecn", "gro", "gso", "pktinfo", "receive_buffer", "send_buffer")

    def __init__(self) -> None:
        self.gso = False
        self.gro = False
        self.ecn = False
        self.df = False
        self.pktinfo = False
        self.receive_buffer = 0
        self.send_buffer = 0

    def __repr__(self) -> str:
        return (
            f"Capabilities(gso={self.gso}, gro={self.gro}, ecn={self.ecn}, df={self.df}, "
            f"pktinfo={self.pktinfo}, receive_buffer={self.receive_buffer}, send_buffer={self.send_buffer})"
        )


def _set_one_buffer(sock: socket.socket, option: int, force_option: int) -> int:
    """Raise one buffer to DESIRED_BUFFER_SIZE; return the size the kernel reports afterwards."""
    current = sock.getsockopt(socket.SOL_SOCKET, option)
    if current >= DESIRED_BUFFER_SIZE:
        return current
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, option, DESIRED_BUFFER_SIZE)
    current = sock.getsockopt(socket.SOL_SOCKET, option)
    if current < DESIRED_BUFFER_SIZE and IS_LINUX:
        # As root, the *FORCE variants bypass net.core.rmem_max / wmem_max (quic-go does the same).
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, force_option, DESIRED_BUFFER_SIZE)
        current = sock.getsockopt(socket.SOL_SOCKET, option)
    return current


def set_buffer_sizes(sock: socket.socket, caps: Capabilities) -> None:
    """Raise SO_RCVBUF / SO_SNDBUF to 7 MiB; warn once per process when the kernel grants less."""
    global _warned_buffers
    caps.receive_buffer = _set_one_buffer(sock, socket.SO_RCVBUF, SO_RCVBUFFORCE)
    caps.send_buffer = _set_one_buffer(sock, socket.SO_SNDBUF, SO_SNDBUFFORCE)
    short = caps.receive_buffer < DESIRED_BUFFER_SIZE or caps.send_buffer < DESIRED_BUFFER_SIZE
    if short and not _warned_buffers and not env_flag("QUICSILVER_DISABLE_RECEIVE_BUFFER_WARNING"):
        _warned_buffers = True
        logger.warning(
            "failed to sufficiently increase socket buffer sizes (wanted %d kiB, got receive %d kiB, "
            "send %d kiB); see QUICSILVER_DISABLE_RECEIVE_BUFFER_WARNING",
            DESIRED_BUFFER_SIZE // 1024,
            caps.receive_buffer // 1024,
            caps.send_buffer // 1024,
        )


def set_dont_fragment(sock: socket.socket, family: int, v6only: bool) -> bool:
    """RFC 9000 §14: set DF on every packet (IP_PMTUDISC_PROBE). True when the option was taken."""
    if not IS_LINUX:
        return False
    ok = False
    if family == socket.AF_INET or not v6only:
        try:
            sock.setsockopt(SOL_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)
            ok = True
        except OSError:
            ok = False
    if family == socket.AF_INET6:
        try:
            sock.setsockopt(SOL_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE)
            ok = True
        except OSError:
            ok = False
    return ok


def enable_ecn(sock: socket.socket, family: int, v6only: bool) -> bool:
    """Receive the TOS / traffic class byte as a control message and mark sends ECT(0) (RFC 9000 §13.4)."""
    if not IS_LINUX:
        return False
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(SOL_IPV6, IPV6_RECVTCLASS, 1)
            sock.setsockopt(SOL_IPV6, IPV6_TCLASS, 0b10)
            if not v6only:
                # IPv4-mapped peers on a dual-stack socket arrive through the IPv4 stack.
                with contextlib.suppress(OSError):
                    sock.setsockopt(SOL_IP, IP_RECVTOS, 1)
                    sock.setsockopt(SOL_IP, IP_TOS, 0b10)
        else:
            sock.setsockopt(SOL_IP, IP_RECVTOS, 1)
            sock.setsockopt(SOL_IP, IP_TOS, 0b10)
    except OSError:
        return False
    return True


def enable_pktinfo(sock: socket.socket, family: int, v6only: bool) -> bool:
    """Ask for the destination address of each datagram (needed to answer from it on wildcard binds)."""
    if not IS_LINUX:
        return False
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(SOL_IPV6, IPV6_RECVPKTINFO, 1)
            if not v6only:
                with contextlib.suppress(OSError):
                    sock.setsockopt(SOL_IP, IP_PKTINFO, 1)
        else:
            sock.setsockopt(SOL_IP, IP_PKTINFO, 1)
    except OSError:
        return False
    return True


def _loopback(family: int) -> str:
    return "::1" if family == socket.AF_INET6 else "127.0.0.1"


def probe_gso(family: int) -> bool:
    """Send one two-segment GSO datagram to ourselves on loopback; True if the kernel split it."""
    cached = _gso_support.get(family)
    if cached is not None:
        return cached
    supported = False
    if IS_LINUX:
        try:
            rx = socket.socket(family, socket.SOCK_DGRAM)
            tx = socket.socket(family, socket.SOCK_DGRAM)
            with rx, tx:
                rx.bind((_loopback(family), 0))
                rx.settimeout(0.2)
                segment = [(SOL_UDP, UDP_SEGMENT, struct.pack("=H", 12))]
                tx.sendmsg([b"\x00" * 24], segment, 0, rx.getsockname())
                first = rx.recv(64)
                second = rx.recv(64)
                supported = len(first) == 12 and len(second) == 12
        except OSError:
            supported = False
    _gso_support[family] = supported
    logger.debug("UDP GSO for address family %d: %s", family, supported)
    return supported


def probe_gro(family: int) -> bool:
    """True when UDP_GRO can be enabled on a socket of this family (checked once)."""
    cached = _gro_support.get(family)
    if cached is not None:
        return cached
    supported = False
    if IS_LINUX:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.setsockopt(SOL_UDP, UDP_GRO, 1)
                supported = s.getsockopt(SOL_UDP, UDP_GRO) == 1
        except OSError:
            supported = False
    _gro_support[family] = supported
    logger.debug("UDP GRO for address family %d: %s", family, supported)
    return supported
