"""PacketConn: batched UDP receive (recvmsg, GRO) and send (sendmsg, GSO) for one socket.

quic-go's ``oobConn`` in Python, sans asyncio: the socket is non-blocking and every call returns as
soon as the kernel says EAGAIN, so the event loop drives it from add_reader / add_writer callbacks.

- ``read_batch()`` drains up to ``max_batch`` recvmsg calls and returns ``(data, addr, ecn, pktinfo)``
  items; a GRO super-datagram is split at the segment size from its UDP_GRO control message into
  memoryview slices (no copies). The ECN codepoint comes from the IP_TOS / IPV6_TCLASS control
  message (RFC 9000 §13.4.1), ``pktinfo`` is the raw destination-address control message, echoed on
  replies so they leave from the address the peer talked to.
- ``write_batch(queue)`` sends from the front of a deque, grouping consecutive datagrams of equal size
  to one address (the last of a group may be shorter) into one UDP_SEGMENT sendmsg, at most 64
  segments and 64 KB. On EIO (a device without checksum offload) GSO is turned off for that
  destination and the datagrams are resent one by one.
"""

from __future__ import annotations

import errno
import itertools
import socket
import struct
import sys
from collections import deque
from typing import Any, TypeAlias

from .sockopts import (
    GRO_BUFFER_SIZE,
    GSO_MAX_BYTES,
    GSO_MAX_SEGMENTS,
    IP_PKTINFO,
    IP_TOS,
    IPV6_PKTINFO,
    IPV6_TCLASS,
    RECV_BUFFER_SIZE,
    SOL_IP,
    SOL_IPV6,
    SOL_UDP,
    UDP_GRO,
    UDP_SEGMENT,
    Capabilities,
    enable_ecn,
    enable_pktinfo,
    env_flag,
    logger,
    probe_gro,
    probe_gso,
    set_buffer_sizes,
    set_dont_fragment,
)

__all__ = ["Address", "OutgoingDatagram", "PacketConn", "PacketInfo", "ReceivedDatagram", "wrap_conn"]

Address: TypeAlias = tuple[Any, ...]
"""A socket address as the kernel reports it: (host, port) or (host, port, flowinfo, scope_id)."""
PacketInfo: TypeAlias = tuple[int, int, bytes]
"""A destination-address control message (level, type, data), echoed back on sends."""
ReceivedDatagram: TypeAlias = tuple["bytes | memoryview", Address, int, "PacketInfo | None"]
"""(payload, peer address, ECN codepoint, destination pktinfo or None)."""
OutgoingDatagram: TypeAlias = tuple[bytes, Address, int, "PacketInfo | None"]
"""(payload, peer address, ECN codepoint to mark, pktinfo to send from or None)."""

# A plain int: socket.MSG_TRUNC is an IntFlag, and ``flags & IntFlag`` runs enum code per recvmsg.
_MSG_TRUNC = int(getattr(socket, "MSG_TRUNC", 0x20))
_ANCILLARY_SIZE = 256  # room for TOS/TCLASS + PKTINFO + UDP_GRO control messages
_GSO_FALLBACK_ERRNOS = frozenset({errno.EIO, errno.EINVAL})
_BYTEORDER = sys.byteorder
_pack_u16 = struct.Struct("=H").pack
_pack_int = struct.Struct("=i").pack


class PacketConn:
    """A wrapped, non-blocking UDP socket with batched I/O. Build it with :func:`wrap_conn`."""

    def __init__(
        self,
        sock: socket.socket,
        caps: Capabilities,
        *,
        max_batch: int = 64,
        family: int | None = None,
        local_addr: Address | None = None,
    ) -> None:
        """``family`` / ``local_addr``: the socket's, when the caller has read them already."""
        self.sock = sock
        self.caps = caps
        self.family: int = sock.family if family is None else family
        self.local_addr: Address = sock.getsockname() if local_addr is None else local_addr
        self.max_batch = max_batch
        """Largest number of recvmsg calls one read_batch() makes before returning to the loop."""
        self.default_ecn = 0b10 if caps.ecn else 0
        """The codepoint the socket marks by itself (ECT(0) when ECN works); others need a cmsg."""
        self.gso_disabled: set[Address] = set()
        """Destinations where a GSO send failed with EIO: they get one datagram per sendmsg."""
        self.truncated = 0
        """Datagrams dropped because they were larger than the receive buffer."""
        self.send_errors = 0
        """Datagrams dropped by a send error other than EAGAIN."""
        self._recv_size = GRO_BUFFER_SIZE if caps.gro else RECV_BUFFER_SIZE
        self._v4_mapped_prefix = "::ffff:"

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    # --- receive ---------------------------------------------------------------------------------

    def read_batch(self) -> list[ReceivedDatagram]:
        """Receive until EAGAIN or ``max_batch`` recvmsg calls; GRO batches are split per segment."""
        out: list[ReceivedDatagram] = []
        recvmsg = self.sock.recvmsg
        size = self._recv_size
        append = out.append
        for _ in range(self.max_batch):
            try:
                data, ancdata, flags, addr = recvmsg(size, _ANCILLARY_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                # ICMP errors queued on the socket (ECONNREFUSED, EHOSTUNREACH, ...) say nothing about
                # the next datagram; keep draining. Anything else ends this batch.
                if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                    continue
                logger.debug("recvmsg failed: %s", exc)
                break
            if flags & _MSG_TRUNC:
                self.truncated += 1
                continue
            ecn = 0
            segment = 0
            pktinfo: PacketInfo | None = None
            for level, kind, cdata in ancdata:
                if level == SOL_IP:
                    if kind == IP_TOS:
                        ecn = cdata[0] & 0b11
                    elif kind == IP_PKTINFO:
                        pktinfo = (level, kind, cdata)
                elif level == SOL_IPV6:
                    if kind == IPV6_TCLASS:
                        ecn = int.from_bytes(cdata, _BYTEORDER) & 0b11
                    elif kind == IPV6_PKTINFO:
                        pktinfo = (level, kind, cdata)
                elif level == SOL_UDP and kind == UDP_GRO:
                    segment = int.from_bytes(cdata[:4], _BYTEORDER)
            n = len(data)
            if segment and n > segment:
                view = memoryview(data)
                for offset in range(0, n, segment):
                    append((view[offset : offset + segment], addr, ecn, pktinfo))
            elif n:
                append((data, addr, ecn, pktinfo))
        return out

    # --- send ------------------------------------------------------------------------------------

    def _control(self, addr: Address, ecn: int, pktinfo: PacketInfo | None) -> list[tuple[int, int, bytes]]:
        """Control messages for one sendmsg: ECN when it differs from the socket's marking, pktinfo."""
        cmsgs: list[tuple[int, int, bytes]] = []
        if ecn != self.default_ecn and self.caps.ecn:
            if self.family == socket.AF_INET or str(addr[0]).startswith(self._v4_mapped_prefix):
                cmsgs.append((SOL_IP, IP_TOS, _pack_int(ecn)))
            else:
                cmsgs.append((SOL_IPV6, IPV6_TCLASS, _pack_int(ecn)))
        if pktinfo is not None:
            cmsgs.append(pktinfo)
        return cmsgs

    def write_batch(self, queue: deque[OutgoingDatagram]) -> bool:
        """Send datagrams from the front of ``queue``, removing each one sent (or dropped by an error).

        Returns True when the queue is empty, False when the kernel said EAGAIN (the rest stays queued;
        wait for the socket to become writable and call again).
        """
        sock = self.sock
        gso = self.caps.gso
        popleft = queue.popleft
        while queue:
            data, addr, ecn, pktinfo = queue[0]
            size = len(data)
            if gso and len(queue) > 1 and addr not in self.gso_disabled and size * 2 <= GSO_MAX_BYTES:
                buffers = [data]
                total = size
                for item in itertools.islice(queue, 1, GSO_MAX_SEGMENTS):
                    other = item[0]
                    length = len(other)
                    if (
                        length > size
                        or total + length > GSO_MAX_BYTES
                        or item[1] != addr
                        or item[2] != ecn
                        or item[3] != pktinfo
                    ):
                        break
                    buffers.append(other)
                    total += length
                    if length < size:
                        break  # a shorter datagram can only end a GSO batch
                count = len(buffers)
                if count > 1:
                    cmsgs = self._control(addr, ecn, pktinfo)
                    cmsgs.append((SOL_UDP, UDP_SEGMENT, _pack_u16(size)))
                    try:
                        sock.sendmsg(buffers, cmsgs, 0, addr)
                    except (BlockingIOError, InterruptedError):
                        return False
                    except OSError as exc:
                        if exc.errno in _GSO_FALLBACK_ERRNOS:
                            # DESIGN.md §6: on EIO turn GSO off for this peer and resend one by one.
                            logger.info("GSO send to %s failed (%s); disabling GSO for it", addr, exc)
                            self.gso_disabled.add(addr)
                            continue
                        self._dropped(addr, exc, count)
                    for _ in range(count):
                        popleft()
                    continue
            try:
                if pktinfo is None and (ecn == self.default_ecn or not self.caps.ecn):
                    sock.sendto(data, addr)
                else:
                    sock.sendmsg([data], self._control(addr, ecn, pktinfo), 0, addr)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as exc:
                self._dropped(addr, exc, 1)
            popleft()
        return True

    def _dropped(self, addr: Address, exc: OSError, count: int) -> None:
        # EMSGSIZE (a path MTU probe larger than the interface), ECONNREFUSED, EHOSTUNREACH...:
        # the datagrams are lost as if the network dropped them; QUIC's loss recovery copes.
        self.send_errors += count
        logger.debug("dropping %d datagram(s) to %s: %s", count, addr, exc)


def _is_wildcard(addr: Address) -> bool:
    return addr[0] in ("0.0.0.0", "::", "")


def wrap_conn(
    sock: socket.socket,
    *,
    gso: bool | None = None,
    gro: bool | None = None,
    ecn: bool | None = None,
    pktinfo: bool | None = None,
    max_batch: int = 64,
) -> PacketConn:
    """Prepare a bound UDP socket for QUIC (quic-go ``wrapConn``) and return a :class:`PacketConn`.

    Sets the socket non-blocking, raises its buffers to 7 MiB (one warning per process when the kernel
    grants less, silenced by ``QUICSILVER_DISABLE_RECEIVE_BUFFER_WARNING``), sets don't-fragment, enables
    ECN and, on wildcard binds, packet info. ``gso`` / ``gro`` / ``ecn``: None detects (and honours the
    ``QUICSILVER_DISABLE_GSO`` / ``_GRO`` / ``_ECN`` environment variables), False forces the feature
    off, True enables it only if the kernel supports it. ``pktinfo``: None enables it on wildcard
    binds, False never (a client answers nobody). Raises ValueError for a non-UDP socket.
    """
    kind, family = sock.type, sock.family  # each read converts to an enum: once per socket
    if kind != socket.SOCK_DGRAM:
        raise ValueError(f"wrap_conn needs a UDP (SOCK_DGRAM) socket, got {kind!r}")
    if family not in (socket.AF_INET, socket.AF_INET6):
        raise ValueError(f"wrap_conn needs an AF_INET or AF_INET6 socket, got {family!r}")
    sock.setblocking(False)
    v6only = True
    if family == socket.AF_INET6:
        try:
            v6only = bool(sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))
        except OSError:
            v6only = True
    caps = Capabilities()
    set_buffer_sizes(sock, caps)
    caps.df = set_dont_fragment(sock, family, v6only)
    if ecn is None:
        ecn = not env_flag("QUICSILVER_DISABLE_ECN")
    caps.ecn = enable_ecn(sock, family, v6only) if ecn else False
    if gso is None:
        gso = not env_flag("QUICSILVER_DISABLE_GSO")
    caps.gso = probe_gso(family) if gso else False
    if gro is None:
        gro = not env_flag("QUICSILVER_DISABLE_GRO")
    if gro and probe_gro(family):
        try:
            sock.setsockopt(SOL_UDP, UDP_GRO, 1)
            caps.gro = True
        except OSError:
            caps.gro = False
    local = sock.getsockname()
    if _is_wildcard(local) and pktinfo is not False:
        caps.pktinfo = enable_pktinfo(sock, family, v6only)
    logger.debug("wrapped UDP socket %s: %r", local, caps)
    return PacketConn(sock, caps, max_batch=max_batch, family=family, local_addr=local)
