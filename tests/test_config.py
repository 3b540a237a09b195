"""Config validation and population (quic-go's validateConfig / populateConfig, strict)."""

from __future__ import annotations

import pytest

from quicsilver import VERSION_1, VERSION_2, Config, ConfigError


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
