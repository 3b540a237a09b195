"""Server preferred address (RFC 9000 §9.6, §18.2) on the simulated network.

``PreferredSim`` extends the issue 8 simulator by composition: the server listens on two addresses
(``SERVER_ADDR`` and ``PREFERRED``); each datagram is routed by the address the core chose
(``datagrams_to_send_paths``), and either server address can be black-holed.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from quicsilver.config import Config
from quicsilver.core.conn_id_generator import RandomConnectionIDGenerator
from quicsilver.core.connection import QuicConnection
from quicsilver.core.path import PathState
from quicsilver.errors import ConfigError, TransportError, TransportErrorCode
from quicsilver.wire.transport_parameters import PreferredAddress

from .sim import CLIENT_ADDR, SERVER_ADDR, Link, server_tls
from .test_issue8_sim import LOSSY, BothWaysSim, error_of

PREFERRED = ("10.0.0.2", 4433)
PREFERRED_V6 = ("fd00::2", 4433)


class PreferredSim(BothWaysSim):
    """A client at ``CLIENT_ADDR``; a server reachable at ``SERVER_ADDR`` and ``PREFERRED``.
    ``dead`` holds the server addresses whose datagrams (both ways) are dropped."""

    def __init__(self, payload: bytes, download: bytes, **kwargs: Any) -> None:
        super().__init__(payload, download, **kwargs)
        self.dead: set[tuple[str, int]] = set()
        self.client_sent_to: dict[Any, int] = {}
        self.server_sent_from: dict[Any, int] = {}

    def _flush(self) -> None:
        for data, addr, ecn, _ in self.client.datagrams_to_send_paths(self.now):
            self.client_sent_to[addr] = self.client_sent_to.get(addr, 0) + 1
            if addr not in self.dead:
                self._transmit(self.to_server, ("server", addr), data, ecn)  # type: ignore[arg-type]
        for data, addr, ecn, local in self.server.datagrams_to_send_paths(self.now):
            assert addr == CLIENT_ADDR
            self.server_sent_from[local] = self.server_sent_from.get(local, 0) + 1
            if local not in self.dead:
                self._transmit(self.to_client, ("client", local), data, ecn)  # type: ignore[arg-type]

    def _deliver(self, dst: Any, data: bytes, ecn: int) -> None:
        # ("server", the server's local address) or ("client", the server address it came from).
        if dst[0] == "server":
            self.server.receive_datagram(data, CLIENT_ADDR, self.now, ecn, local_addr=dst[1])
        else:
            self.client.receive_datagram(data, dst[1], self.now, ecn)


def preferred_sim(
    seed: int,
    size: int = 600_000,
    *,
    ignore_preferred_address: bool = False,
    client_kwargs: dict[str, Any] | None = None,
    **server_kwargs: Any,
) -> PreferredSim:
    rng = random.Random(seed)
    up, down = rng.randbytes(size), rng.randbytes(size)
    server_config = Config(preferred_address=("10.0.0.2:4433", "[fd00::2]:4433"), **server_kwargs)
    return PreferredSim(
        up,
        down,
        seed=seed,
        config=Config(ignore_preferred_address=ignore_preferred_address),
        server_config=server_config,
        client_kwargs=client_kwargs,
        to_server=Link(**LOSSY),  # type: ignore[arg-type]
        to_client=Link(**LOSSY),  # type: ignore[arg-type]
    )


def on_preferred(sim: PreferredSim) -> bool:
    paths = sim.client._paths
    return paths is not None and paths.active.remote_addr == PREFERRED


def assert_transfer_ok(sim: PreferredSim) -> None:
    assert sim.run_until(sim.done, max_time=300)
    assert sim.digest_ok()
    assert sim.client.terminal_error is None and sim.server.terminal_error is None


def test_client_moves_to_the_preferred_address_after_confirmation_and_transfers_byte_identical() -> None:
    sim = preferred_sim(41)
    server_pa = sim.server._preferred_address
    assert server_pa is not None and server_pa.ipv4_address == PREFERRED
    assert server_pa.ipv6_address == PREFERRED_V6  # Config.preferred_address names both families
    assert sim.run_until(sim.handshake_done, max_time=5)
    # §5.1.1: the preferred_address CID has sequence number 1 and its reset token is recognised.
    assert sim.client._conn_ids_peer._cids[1] == (server_pa.connection_id, server_pa.stateless_reset_token)
    assert sim.client._conn_ids_peer.is_stateless_reset(server_pa.stateless_reset_token)
    # §9: no migration before the handshake is confirmed.
    assert PREFERRED not in sim.client_sent_to or sim.client._handshake_confirmed
    assert sim.run_until(lambda: on_preferred(sim), max_time=10)
    paths = sim.client._paths
    assert paths is not None and paths.active.state is PathState.VALIDATED
    # §9.6.1: the client uses the preferred_address CID on the new path.
    assert sim.client._packer.dcid == server_pa.connection_id
    # From now on the original address is gone: everything must flow through the preferred one.
    sim.dead.add(SERVER_ADDR)
    assert_transfer_ok(sim)
    server_paths = sim.server._paths
    assert server_paths is not None and server_paths.active.local_addr == PREFERRED
    assert server_paths.active.state is PathState.VALIDATED
    assert sim.server_sent_from[PREFERRED] > 100


def test_a_client_using_zero_length_connection_ids_moves_too() -> None:
    # The server has no client CID to take for the new path (§9.5): it sends with the empty one.
    sim = preferred_sim(46, client_kwargs={"connection_id_generator": RandomConnectionIDGenerator(0)})
    assert sim.run_until(lambda: on_preferred(sim), max_time=10)
    sim.dead.add(SERVER_ADDR)
    assert_transfer_ok(sim)


def test_disable_active_migration_does_not_forbid_the_preferred_address() -> None:
    sim = preferred_sim(42, disable_active_migration=True)
    assert sim.run_until(lambda: on_preferred(sim), max_time=10)
    sim.dead.add(SERVER_ADDR)
    assert_transfer_ok(sim)


def test_a_blackholed_preferred_address_leaves_the_client_on_the_original_one() -> None:
    sim = preferred_sim(43)
    sim.dead.add(PREFERRED)
    assert_transfer_ok(sim)
    paths = sim.client._paths
    assert paths is not None and paths.active.remote_addr == SERVER_ADDR
    # The client did probe it (§9.6.1), and gave up after the validation timeout (§8.2.4).
    assert sim.client_sent_to.get(PREFERRED, 0) > 0
    probed = paths.get(None, PREFERRED)
    assert probed is not None
    assert sim.run_until(lambda: probed.state is PathState.FAILED, max_time=sim.now + 10)
    assert paths.active.remote_addr == SERVER_ADDR and sim.client.terminal_error is None


def test_the_client_can_be_told_to_ignore_preferred_addresses() -> None:
    sim = preferred_sim(44, 100_000, ignore_preferred_address=True)
    assert_transfer_ok(sim)
    assert PREFERRED not in sim.client_sent_to
    # Still understood (§18.2): the CID of sequence 1 is known.
    assert 1 in sim.client._conn_ids_peer._cids


def malformed_sim(pa: PreferredAddress, **server_kwargs: Any) -> PreferredSim:
    sim = PreferredSim(b"x" * 1000, b"", seed=45, server_kwargs=server_kwargs)
    sim.server._preferred_address = pa  # what a misbehaving server advertises
    return sim


def test_a_zero_length_preferred_address_cid_is_transport_parameter_error() -> None:
    sim = malformed_sim(PreferredAddress(PREFERRED, None, b"", bytes(16)))
    sim.run_until(lambda: sim.client.terminal_error is not None, max_time=5)
    err = sim.client.terminal_error
    assert isinstance(err, TransportError) and err.code == TransportErrorCode.TRANSPORT_PARAMETER_ERROR


def test_a_preferred_address_from_a_zero_length_cid_server_is_transport_parameter_error() -> None:
    pa = PreferredAddress(PREFERRED, None, b"\x01\x02\x03\x04", bytes(16))
    sim = malformed_sim(pa, connection_id_generator=RandomConnectionIDGenerator(0))
    sim.run_until(lambda: sim.client.terminal_error is not None, max_time=5)
    err = sim.client.terminal_error
    assert isinstance(err, TransportError) and err.code == TransportErrorCode.TRANSPORT_PARAMETER_ERROR
    assert error_of(sim.client_events) is not None


def test_only_the_families_named_are_advertised() -> None:
    server = QuicConnection(Config(preferred_address="[fd00::2]:4433"), server_tls(), is_client=False)
    pa = server._preferred_address
    assert pa is not None and pa.ipv4_address is None and pa.ipv6_address == PREFERRED_V6
    # §5.1.1: its CID is the one of sequence number 1, issued before any other.
    assert len(pa.connection_id) == len(server.host_cid)


def test_a_client_config_with_a_preferred_address_advertises_nothing() -> None:
    # Config.preferred_address is server-only: a client sharing the Config ignores it.
    client = QuicConnection(
        Config(preferred_address="10.0.0.2:4433"), server_tls(), is_client=True, server_name="localhost"
    )
    assert client._preferred_address is None


def test_a_zero_length_cid_server_core_refuses_a_preferred_address() -> None:
    # §18.2: "A server that chooses a zero-length connection ID MUST NOT provide a preferred address."
    with pytest.raises(ConfigError, match=r"preferred_address: .*zero-length connection IDs"):
        QuicConnection(
            Config(preferred_address="10.0.0.2:4433"),
            server_tls(),
            is_client=False,
            connection_id_generator=RandomConnectionIDGenerator(0),
        )


def test_the_core_rejects_an_unvalidated_bad_preferred_address() -> None:
    with pytest.raises(ConfigError, match="not a literal IP address"):
        QuicConnection(Config(preferred_address="example.com:443"), server_tls(), is_client=False)
