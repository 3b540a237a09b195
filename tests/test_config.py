"""Config validation and population (quic-go's validateConfig / populateConfig, strict)."""

from __future__ import annotations

import dataclasses

import pytest

from quicsilver import VERSION_1, VERSION_2, Config, ConfigError
from quicsilver.config import preferred_address_pair


def test_defaults_are_quic_go_defaults() -> None:
    c = Config().validated()
    assert c.handshake_idle_timeout == 5.0
    assert c.max_idle_timeout == 30.0
    assert c.initial_stream_receive_window == 512 * 1024
    assert c.max_stream_receive_window == 6 * 1024 * 1024
    assert c.initial_connection_receive_window == 768 * 1024
    assert c.max_connection_receive_window == 15 * 1024 * 1024
    assert c.max_incoming_streams == 100
    assert c.max_incoming_uni_streams == 100
    assert c.initial_packet_size == 1280
    assert c.versions == (VERSION_1, VERSION_2)
    assert c.congestion_control == "cubic"
    assert not c.allow_0rtt and not c.enable_datagrams


def test_seed_windows_validate() -> None:
    Config(
        initial_stream_receive_window=1 << 20,
        max_stream_receive_window=6 << 20,
        initial_connection_receive_window=2 << 20,
        max_connection_receive_window=12 << 20,
    ).validated()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"initial_stream_receive_window": 7 << 20}, "initial_stream_receive_window"),
        ({"initial_connection_receive_window": 16 << 20}, "initial_connection_receive_window"),
        ({"max_stream_receive_window": 1 << 62}, "max_stream_receive_window"),
        ({"max_connection_receive_window": 0}, "max_connection_receive_window"),
        ({"max_incoming_streams": (1 << 60) + 1}, "max_incoming_streams"),
        ({"max_incoming_uni_streams": -1}, "max_incoming_uni_streams"),
        ({"versions": (0x12345678,)}, "versions"),
        ({"versions": ()}, "versions"),
        ({"versions": (VERSION_1, VERSION_1)}, "versions"),
        ({"initial_packet_size": 1199}, "initial_packet_size"),
        ({"initial_packet_size": 1453}, "initial_packet_size"),
        ({"handshake_idle_timeout": 0}, "handshake_idle_timeout"),
        ({"max_idle_timeout": -1}, "max_idle_timeout"),
        ({"keep_alive_period": -1}, "keep_alive_period"),
        ({"congestion_control": "bbr"}, "congestion_control"),
        ({"key_update_interval": 1}, "key_update_interval"),
        ({"max_datagram_queue": 0}, "max_datagram_queue"),
        ({"tracer": 42}, "tracer"),
        ({"max_incoming_streams": 1.5}, None),
    ],
)
def test_invalid_field_names_the_field(kwargs: dict[str, object], field: str | None) -> None:
    with pytest.raises(ConfigError) as info:
        Config(**kwargs).validated()  # type: ignore[arg-type]
    if field is not None:
        assert info.value.field == field
        assert field in str(info.value)


def test_unknown_version_error_lists_supported() -> None:
    with pytest.raises(ConfigError, match="0x00000001"):
        Config(versions=(0xFF00001D,)).validated()


def test_populate_fills_derived_defaults() -> None:
    c = Config(handshake_idle_timeout=3.0, keep_alive_period=100.0, max_idle_timeout=10.0).populated()
    assert c.max_retry_token_age == 6.0
    assert c.keep_alive_period == 5.0
    assert Config(max_retry_token_age=4.0).populated().max_retry_token_age == 4.0


def test_populate_copies_once_and_leaves_the_original_alone() -> None:
    original = Config(handshake_idle_timeout=3.0)
    first = original.populated()
    assert first is not original and first.max_retry_token_age == 6.0
    assert original.max_retry_token_age == 0.0  # the caller's config is not changed
    assert original.populated() is first  # every dial and accepted connection asks: one copy
    assert first.populated() is first
    assert first == original.populated() and first != original
    # A config derived from the original is populated on its own terms.
    other = dataclasses.replace(original, handshake_idle_timeout=4.0).populated()
    assert other.max_retry_token_age == 8.0


# --- preferred_address (RFC 9000 §9.6, §18.2) -------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "pair"),
    [
        ("192.0.2.7:4433", (("192.0.2.7", 4433), None)),
        ("[2001:db8::7]:443", (None, ("2001:db8::7", 443))),
        (("[2001:db8::7]:443", "192.0.2.7:4433"), (("192.0.2.7", 4433), ("2001:db8::7", 443))),
        ("[2001:0db8:0000::0007]:65535", (None, ("2001:db8::7", 65535))),  # normalised as clients see it
        ("127.0.0.1:1", (("127.0.0.1", 1), None)),
        (None, None),
    ],
)
def test_preferred_address_parses_to_one_address_per_family(
    value: str | tuple[str, ...] | None, pair: object
) -> None:
    config = Config(preferred_address=value).validated()
    assert preferred_address_pair(config) == pair


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("example.com:443", r"'example.com' .*not a literal IP address.*resolve it", id="name"),
        pytest.param("localhost:443", r"not a literal IP address", id="localhost"),
        pytest.param("0.0.0.0:443", r"unspecified address; give the specific address", id="v4-unspecified"),
        pytest.param("[::]:443", r"unspecified address", id="v6-unspecified"),
        pytest.param("192.0.2.7:0", r"port .* must be 1\.\.65535, got 0", id="port-0"),
        pytest.param("192.0.2.7:65536", r"must be 1\.\.65535, got 65536", id="port-too-big"),
        pytest.param("192.0.2.7:http", r"port in .* is not a number", id="port-name"),
        pytest.param("192.0.2.7", r"has no port", id="no-port"),
        pytest.param("2001:db8::7:443", r"brackets: \[2001:db8::7\]:port", id="v6-without-brackets"),
        pytest.param("[2001:db8::7:443", r"malformed; expected", id="unclosed-bracket"),
        pytest.param("[192.0.2.7]:443", r"IPv4 address without brackets", id="bracketed-v4"),
        pytest.param("[::ffff:192.0.2.7]:443", r"IPv4-mapped; give it as IPv4: '192.0.2.7:443'", id="mapped"),
        pytest.param("[fe80::1%eth0]:443", r"scope .*cannot be sent", id="v6-scope"),
        pytest.param("224.0.0.1:443", r"multicast or broadcast", id="multicast"),
        pytest.param("255.255.255.255:443", r"multicast or broadcast", id="broadcast"),
        pytest.param(("192.0.2.7:443", "198.51.100.1:443"), r"two IPv4 addresses .*keep one", id="two-ipv4"),
        pytest.param(("[2001:db8::1]:443", "[2001:db8::2]:443"), r"two IPv6 addresses", id="two-ipv6"),
        pytest.param(
            ("192.0.2.7:443", "[2001:db8::1]:443", "[2001:db8::2]:443"),
            r"names 3 addresses; .*at most one IPv4 and one IPv6",
            id="three",
        ),
        pytest.param((), r"names no address", id="empty-tuple"),
        pytest.param(["192.0.2.7:443"], r"must be a 'host:port' string or a tuple", id="list"),
        pytest.param(("192.0.2.7", 443), r"not a \(host, port\) pair: write '192.0.2.7:443'", id="pair"),
        pytest.param("", r"has no port", id="empty-string"),
        pytest.param((443,), r"each address must be a .host:port. string, got 443", id="int"),
    ],
)
def test_bad_preferred_address_says_what_to_fix(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Config(preferred_address=value).validated()  # type: ignore[arg-type]
    assert info.value.field == "preferred_address"
    assert str(info.value).startswith("preferred_address: ")


def test_ignore_preferred_address_is_a_documented_field() -> None:
    assert Config().ignore_preferred_address is False
    assert Config(ignore_preferred_address=True).validated().ignore_preferred_address is True
