"""Protocol-wide constants and small types (the counterpart of quic-go's internal/protocol)."""

from __future__ import annotations

from enum import IntEnum
from typing import NewType

StreamID = NewType("StreamID", int)
PacketNumber = NewType("PacketNumber", int)
ConnectionID = NewType("ConnectionID", bytes)

VERSION_1 = 0x00000001  # RFC 9000
VERSION_2 = 0x6B3343CF  # RFC 9369
SUPPORTED_VERSIONS = (VERSION_1, VERSION_2)


def is_reserved_version(version: int) -> bool:
    """Versions of the form 0x?a?a?a?a are reserved for greasing (RFC 9000 §15)."""
    return version & 0x0F0F0F0F == 0x0A0A0A0A


class Perspective(IntEnum):
    CLIENT = 0
    SERVER = 1


class EncryptionLevel(IntEnum):
    """Encryption levels (RFC 9001 §4). 0-RTT shares the application packet number space."""

    INITIAL = 0
    ZERO_RTT = 1
    HANDSHAKE = 2
    ONE_RTT = 3


class PacketNumberSpace(IntEnum):
    """Packet number spaces (RFC 9000 §12.3)."""

    INITIAL = 0
    HANDSHAKE = 1
    APPLICATION = 2


def space_of(level: EncryptionLevel) -> PacketNumberSpace:
    if level == EncryptionLevel.INITIAL:
        return PacketNumberSpace.INITIAL
    if level == EncryptionLevel.HANDSHAKE:
        return PacketNumberSpace.HANDSHAKE
    return PacketNumberSpace.APPLICATION


class ECN(IntEnum):
    """The ECN codepoint of an IP packet (RFC 3168)."""

    NOT_ECT = 0b00
    ECT1 = 0b01
    ECT0 = 0b10
    CE = 0b11


# Sizes (RFC 9000 §14, quic-go defaults).
MIN_INITIAL_PACKET_SIZE = 1200  # RFC 9000 §14.1
MAX_PACKET_BUFFER_SIZE = 1452  # quic-go: largest datagram we send (1500 - IPv6 - UDP)
INITIAL_PACKET_SIZE = 1280
MAX_CONNECTION_ID_LENGTH = 20  # RFC 9000 §17.2
DEFAULT_CONNECTION_ID_LENGTH = 4
STATELESS_RESET_TOKEN_LENGTH = 16
MIN_STATELESS_RESET_SIZE = 21  # RFC 9000 §10.3: 5 + 16
MAX_ACK_DELAY = 0.025  # seconds; advertised as 26 ms (adds the 1 ms granularity)
MAX_ACK_DELAY_ADVERTISED_MS = 26
ACK_DELAY_EXPONENT = 3
ACTIVE_CONNECTION_ID_LIMIT = 4
MAX_ACK_RANGES = 32
TIMER_GRANULARITY = 0.001  # RFC 9002 §6.1.2: kGranularity
INITIAL_RTT = 0.333  # RFC 9002 §6.2.2
MAX_STREAM_COUNT = 1 << 60  # RFC 9000 §4.6
MAX_VARINT = (1 << 62) - 1
AMPLIFICATION_FACTOR = 3  # RFC 9000 §8
