"""Path validation and connection migration (RFC 9000 §8.2, §9)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quicsilver.core.path import (
    INITIAL_PTO,
    MAX_PATHS,
    MIN_PROBE_DATAGRAM_SIZE,
    ActivePathChanged,
    MigrationError,
    Path,
    PathEvent,
    PathManager,
    PathProbe,
    PathState,
    PathValidated,
    PathValidationFailed,
    is_probing_packet,
)
from quicsilver.protocol import Perspective
from quicsilver.wire.frames import (
    AckFrame,
    NewConnectionIdFrame,
    PaddingFrame,
    PathChallengeFrame,
    PathResponseFrame,
    PingFrame,
)

SERVER = ("192.0.2.1", 443)
CLIENT = ("198.51.100.7", 50000)
CLIENT_REBOUND = ("198.51.100.7", 61000)  # NAT rebinding: only the port changed
CLIENT_MOVED = ("203.0.113.9", 50000)  # a new host address
ATTACKER = ("233.252.0.66", 1234)
CID = b"\x01\x02\x03\x04"
NEW_CID = b"\x0a\x0b\x0c\x0d"
PTO = 0.1
DEADLINE = 3 * max(PTO, INITIAL_PTO)


@dataclass
class FakeRTT:
    value: float = PTO

    def pto(self, include_max_ack_delay: bool) -> float:
        return self.value


def counter_rng() -> Callable[[int], bytes]:
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


def server(*, disable_active_migration: bool = False, confirmed: bool = True) -> PathManager:
    m = PathManager(
        Perspective.SERVER, SERVER, CLIENT, FakeRTT(), disable_active_migration=disable_active_migration
    )
    m.set_local_cid(CID)
    if confirmed:
        m.set_handshake_confirmed()
    return m


def client(*, confirmed: bool = True) -> PathManager:
    m = PathManager(Perspective.CLIENT, None, SERVER, FakeRTT())
    if confirmed:
        m.set_handshake_confirmed()
    return m


def receive(
    m: PathManager,
    remote: object,
    now: float = 1.0,
    *,
    size: int = 1200,
    dcid: bytes = CID,
    non_probing: bool = True,
    largest_pn: bool = True,
    local: object = SERVER,
) -> Path | None:
    return m.on_packet_received(
        local, remote, now, datagram_size=size, dcid=dcid, non_probing=non_probing, largest_pn=largest_pn
    )


def events(m: PathManager) -> list[PathEvent]:
    out: list[PathEvent] = []
    while (event := m.next_event()) is not None:
        out.append(event)
    return out


def challenge_of(probe: PathProbe | None) -> bytes:
    assert probe is not None
    frames = [f for f in probe.frames if isinstance(f, PathChallengeFrame)]
    assert len(frames) == 1  # §8.2.1: not several PATH_CHALLENGE frames in one packet
    return frames[0].data


# -- the handshake path ---------------------------------------------------------------------------


def test_the_handshake_path_is_validated_and_unlimited() -> None:
    m = server()
    assert m.active.key == (SERVER, CLIENT)
    assert m.active.state is PathState.VALIDATED
    assert m.active.amplification_budget() is None
    assert receive(m, CLIENT) is m.active
    assert m.pop_probe(1.0) is None and m.get_timer() is None and events(m) == []


def test_challenge_data_is_eight_unpredictable_bytes() -> None:
    m = server()
    seen = set()
    for i in range(5):
        receive(m, ("198.51.100.7", 40000 + i), non_probing=False)
        data = challenge_of(m.pop_probe(1.0))
        assert len(data) == 8
        seen.add(data)
    assert len(seen) == 5


# -- validation (§8.2) ----------------------------------------------------------------------------


def test_validation_succeeds_when_the_response_echoes_the_challenge() -> None:
    m = server()
    new = receive(m, CLIENT_MOVED, dcid=NEW_CID)
    assert new is not None and new.state is PathState.VALIDATING
    m.assign_peer_cid(new, b"peer-cid-2")
    probe = m.pop_probe(1.0)
    assert probe is not None and probe.path is new
    assert probe.min_size == 1200  # §8.2.1: expanded to 1200 bytes (budget 3 x 1200)
    data = challenge_of(probe)
    new.on_datagram_sent(1200)
    assert m.on_path_response(PathResponseFrame(data), 1.05) is new
    assert new.state is PathState.VALIDATED and new.mtu_validated
    assert new.amplification_budget() is None
    assert new.last_rtt == pytest.approx(0.05)
    assert m.fallback is None
    assert [type(e) for e in events(m)] == [ActivePathChanged, PathValidated]
    assert m.pop_probe(10.0) is None and m.get_timer() is None


def test_responses_with_other_data_are_ignored() -> None:
    m = server()
    new = receive(m, CLIENT_MOVED, dcid=NEW_CID)
    assert new is not None
    m.assign_peer_cid(new, b"peer-cid-2")
    data = challenge_of(m.pop_probe(1.0))
    wrong = bytes([data[0] ^ 1]) + data[1:]
    assert m.on_path_response(PathResponseFrame(wrong), 1.05) is None
    assert m.on_path_response(PathResponseFrame(b"\x00" * 8), 1.05) is None
    assert new.state is PathState.VALIDATING
    assert new.amplification_budget() is not None
    assert [type(e) for e in events(m)] == [ActivePathChanged]


def test_a_response_received_on_another_path_validates_the_challenged_one() -> None:
    m = server()
    new = receive(m, CLIENT_REBOUND, non_probing=False)
    assert new is not None
    data = challenge_of(m.pop_probe(1.0))
    receive(m, CLIENT, 1.05)  # the PATH_RESPONSE arrives from the old address: §8.2.3 accepts it
    assert m.on_path_response(PathResponseFrame(data), 1.05) is new
    assert new.state is PathState.VALIDATED


def test_challenges_are_retried_with_backoff_and_validation_fails_after_three_pto() -> None:
    m = server()
    old = m.active
    new = receive(m, CLIENT_MOVED, dcid=NEW_CID, size=1200)
    assert new is not None
    m.assign_peer_cid(new, b"peer-cid-2")
    assert new.validation_deadline == pytest.approx(1.0 + DEADLINE)
    sent_at = []
    now = 1.0
    deadline = new.validation_deadline
    assert deadline is not None
    while (timer := m.get_timer()) is not None and timer < deadline:
        now = timer
        probe = m.pop_probe(now)
        assert probe is not None and probe.min_size == 1200
        challenge_of(probe)
        new.on_datagram_sent(100)
        sent_at.append(round(now - 1.0, 6))
    # Retries back off like Initial packets: PTO, 2 PTO, 4 PTO, ... until 3 x max(PTO, initial PTO).
    assert sent_at == [0.0, 0.1, 0.3, 0.7, 1.5]
    events(m)
    m.handle_timer(1.0 + DEADLINE - 0.001)
    assert new.state is PathState.VALIDATING
    m.handle_timer(1.0 + DEADLINE)
    assert new.state is PathState.FAILED
    # §9.3.2: back to the last validated peer address.
    assert m.active is old
    evs = events(m)
    assert evs == [
        ActivePathChanged(old, new, reset_congestion=True),
        PathValidationFailed(new, reverted_to=old, was_active=True),
    ]
    assert m.get_timer() is None


def test_a_late_response_after_failure_is_ignored() -> None:
    m = server()
    new = receive(m, CLIENT_REBOUND, non_probing=False)
    assert new is not None
    data = challenge_of(m.pop_probe(1.0))
    m.handle_timer(1.0 + DEADLINE)
    assert m.on_path_response(PathResponseFrame(data), 1.0 + DEADLINE + 0.1) is None
    assert new.state is PathState.FAILED


# -- anti-amplification (§8, §9.3.1) --------------------------------------------------------------


def test_unvalidated_path_is_limited_to_three_times_what_it_received() -> None:
    m = server()
    new = receive(m, CLIENT_REBOUND, size=100)
    assert new is not None and m.active is new
    assert new.amplification_budget() == 300
    assert new.can_send(300) and not new.can_send(301)
    probe = m.pop_probe(1.0)
    # §8.2.1: not expanded beyond what the limit allows; the path MTU is then not validated.
    assert probe is not None and probe.min_size == 300
    data = challenge_of(probe)
    new.on_datagram_sent(300)
    assert new.amplification_budget() == 0
    # The retry is due but blocked: no probe, and no timer that would spin on it.
    assert m.pop_probe(1.2) is None
    assert m.get_timer() == pytest.approx(new.validation_deadline)
    # Coalesced packets of one datagram count once (datagram_size=0 for the followers).
    receive(m, CLIENT_REBOUND, 1.3, size=0)
    assert new.amplification_budget() == 0
    receive(m, CLIENT_REBOUND, 1.3, size=50)
    assert new.amplification_budget() == 150
    assert m.pop_probe(1.3) is not None
    # The response validates the address, but §8.2.1 requires a second, expanded validation.
    assert m.on_path_response(PathResponseFrame(data), 1.4) is new
    assert new.state is PathState.VALIDATED and not new.mtu_validated
    assert new.amplification_budget() is None
    second = m.pop_probe(1.4)
    assert second is not None and second.min_size == 1200
    assert m.fallback is not None  # still kept until the path MTU is validated too
    m.on_path_response(PathResponseFrame(challenge_of(second)), 1.5)
    assert new.mtu_validated and m.fallback is None
    assert [type(e) for e in events(m)] == [ActivePathChanged, PathValidated]


def test_probe_waits_for_a_minimum_budget() -> None:
    m = server()
    new = receive(m, CLIENT_REBOUND, size=-(-MIN_PROBE_DATAGRAM_SIZE // 3) - 1)
    assert new is not None
    assert m.pop_probe(1.0) is None
    receive(m, CLIENT_REBOUND, size=1)
    probe = m.pop_probe(1.0)
    assert probe is not None and probe.min_size >= MIN_PROBE_DATAGRAM_SIZE


# -- migration decisions (§9) ---------------------------------------------------------------------


def test_nat_rebinding_keeps_congestion_state_and_connection_id() -> None:
    m = server()
    old = m.active
    new = receive(m, CLIENT_REBOUND, dcid=CID)
    assert new is not None and m.active is new
    assert m.fallback is old
    assert events(m) == [ActivePathChanged(new, old, reset_congestion=False)]
    # §9.5: after a NAT rebinding the current CID may stay in use.
    assert not new.needs_new_peer_cid and not new.awaiting_peer_cid
    assert m.pop_probe(1.0) is not None


def test_a_new_host_resets_congestion_state_and_needs_a_fresh_peer_cid() -> None:
    m = server()
    old = m.active
    new = receive(m, CLIENT_MOVED, dcid=NEW_CID)
    assert new is not None
    assert events(m) == [ActivePathChanged(new, old, reset_congestion=True)]
    assert new.needs_new_peer_cid and new.awaiting_peer_cid
    # §9.5: nothing goes out on the new path until a fresh peer CID is assigned.
    assert m.pop_probe(1.0) is None
    assert m.get_timer() == pytest.approx(new.validation_deadline)
    m.assign_peer_cid(new, b"fresh")
    assert not new.awaiting_peer_cid
    assert m.pop_probe(1.0) is not None


def test_probing_packets_do_not_switch_paths() -> None:
    m = server()
    old = m.active
    new = receive(m, CLIENT_REBOUND, non_probing=False)
    assert new is not None and m.active is old
    # The server validates the probed path and answers the peer's challenge on it.
    m.on_path_challenge(new, PathChallengeFrame(b"peerdata"))
    probe = m.pop_probe(1.0)
    assert probe is not None and probe.path is new and probe.min_size == 1200
    assert probe.frames[0] == PathResponseFrame(b"peerdata")
    m.on_path_response(PathResponseFrame(challenge_of(probe)), 1.05)
    assert new.state is PathState.VALIDATED and m.active is old
    assert events(m) == [PathValidated(new)]
    # The first non-probing packet from there moves the connection, with no new validation.
    receive(m, CLIENT_REBOUND, 2.0)
    assert m.active is new
    assert events(m) == [ActivePathChanged(new, old, reset_congestion=False)]
    assert m.pop_probe(2.0) is None


def test_only_the_highest_numbered_packet_switches() -> None:
    m = server()
    old = m.active
    new = receive(m, CLIENT_REBOUND, largest_pn=False)
    assert new is not None and m.active is old
    assert events(m) == []


def test_is_probing_packet() -> None:
    assert is_probing_packet([PathChallengeFrame(b"12345678"), PaddingFrame(100)])
    assert is_probing_packet([PathResponseFrame(b"12345678"), NewConnectionIdFrame(1, 0, NEW_CID, b"t" * 16)])
    assert not is_probing_packet([PathChallengeFrame(b"12345678"), PingFrame()])
    assert not is_probing_packet([AckFrame(((0, 0),), 0, None)])


def test_spurious_migration_is_undone_by_the_legitimate_peer() -> None:
    m = server()
    old = m.active
    spoofed = receive(m, ATTACKER, dcid=CID)
    assert spoofed is not None and m.active is spoofed
    m.pop_probe(1.0)
    # §9.3.2: "receipt of packets with higher packet numbers from the legitimate peer address will
    # trigger another connection migration", abandoning the spoofed validation.
    assert receive(m, CLIENT, 1.01) is old
    assert m.active is old
    assert spoofed.state is PathState.UNVALIDATED and not spoofed.is_validating
    assert events(m) == [
        ActivePathChanged(spoofed, old, reset_congestion=True),
        ActivePathChanged(old, spoofed, reset_congestion=True),
    ]
    m.handle_timer(10.0)
    assert events(m) == []


def test_failure_reverts_to_the_last_validated_path_not_the_previous_one() -> None:
    m = server()
    old = m.active
    first = receive(m, CLIENT_REBOUND)
    second = receive(m, ("198.51.100.7", 62000), 1.1)
    assert first is not None and second is not None
    assert m.fallback is old
    m.handle_timer(1.1 + DEADLINE)
    assert m.active is old
    failed = [e for e in events(m) if isinstance(e, PathValidationFailed)]
    assert failed == [PathValidationFailed(second, reverted_to=old, was_active=True)]


def test_a_flood_of_challenges_gets_a_bounded_number_of_responses() -> None:
    m = server()
    path = m.active
    for i in range(20):
        m.on_path_challenge(path, PathChallengeFrame(i.to_bytes(8, "big")))
    responses = []
    while (probe := m.pop_probe(1.0)) is not None:
        assert probe.path is path and probe.min_size == 1200
        responses += [f.data for f in probe.frames if isinstance(f, PathResponseFrame)]
    # Each response once (§8.2.2), only the newest few are kept.
    assert responses == [i.to_bytes(8, "big") for i in range(16, 20)]


def test_paths_are_bounded() -> None:
    m = server()
    for i in range(20):
        receive(m, ("198.51.100.7", 30000 + i), non_probing=False)
    assert len(m.paths) <= MAX_PATHS
    assert m.active in m.paths


def test_disable_active_migration_drops_a_migration_but_follows_nat_rebinding() -> None:
    m = server(disable_active_migration=True)
    # §9: a client that moves (new CID) anyway is dropped, without a stateless reset.
    assert receive(m, CLIENT_MOVED, dcid=NEW_CID) is None
    assert receive(m, CLIENT_MOVED, dcid=NEW_CID, non_probing=False) is None
    assert len(m.paths) == 1 and events(m) == []
    # A NAT rebinding keeps the DCID: the client cannot prevent it, so we follow.
    rebound = receive(m, CLIENT_REBOUND, dcid=CID)
    assert rebound is not None and m.active is rebound


def test_no_migration_before_the_handshake_is_confirmed() -> None:
    m = server(confirmed=False)
    assert receive(m, CLIENT_REBOUND) is None
    assert m.active.remote_addr == CLIENT


def test_a_client_does_not_follow_an_unknown_server_address() -> None:
    m = client()
    assert receive(m, ("192.0.2.99", 443), local=None) is None
    assert receive(m, SERVER, local=None) is m.active


# -- client migration (§9.2) ----------------------------------------------------------------------


def test_client_migration_validates_then_switches() -> None:
    m = client()
    old = m.active
    new_local = ("10.0.0.2", 50001)
    path = m.migrate(new_local, 5.0)
    assert path.key == (new_local, SERVER) and m.active is old
    assert path.amplification_budget() is None  # the server's address is already validated
    # §9.5: a fresh peer CID for a new local address first.
    assert m.pop_probe(5.0) is None
    m.assign_peer_cid(path, NEW_CID)
    probe = m.pop_probe(5.0)
    assert probe is not None and probe.path is path and probe.min_size == 1200
    assert path.peer_cid == NEW_CID
    # The server's response arrives on the new path.
    assert receive(m, SERVER, 5.05, local=new_local, non_probing=False) is path
    assert m.on_path_response(PathResponseFrame(challenge_of(probe)), 5.05) is path
    assert m.active is path
    assert events(m) == [PathValidated(path), ActivePathChanged(path, old, reset_congestion=True)]


def test_client_port_change_keeps_congestion_state() -> None:
    m = PathManager(Perspective.CLIENT, ("10.0.0.1", 50000), SERVER, FakeRTT())
    m.set_handshake_confirmed()
    old = m.active
    path = m.migrate(("10.0.0.1", 50001), 1.0)
    m.assign_peer_cid(path, NEW_CID)
    m.on_path_response(PathResponseFrame(challenge_of(m.pop_probe(1.0))), 1.1)
    assert events(m)[-1] == ActivePathChanged(path, old, reset_congestion=False)


def test_client_migration_failure_keeps_the_old_path() -> None:
    m = client()
    old = m.active
    path = m.migrate(("10.0.0.2", 50001), 1.0)
    m.assign_peer_cid(path, NEW_CID)
    m.pop_probe(1.0)
    m.handle_timer(1.0 + DEADLINE)
    assert m.active is old and path.state is PathState.FAILED
    assert events(m) == [PathValidationFailed(path, reverted_to=None, was_active=False)]


def test_migrate_refusals() -> None:
    with pytest.raises(MigrationError, match="confirmed"):
        client(confirmed=False).migrate(("10.0.0.2", 1), 0.0)
    with pytest.raises(MigrationError, match="only clients"):
        server().migrate(("10.0.0.2", 1), 0.0)
    m = client()
    with pytest.raises(MigrationError, match="already"):
        m.migrate(None, 0.0)
    m.set_peer_disable_active_migration(True)
    with pytest.raises(MigrationError, match="disable_active_migration"):
        m.migrate(("10.0.0.2", 1), 0.0)
    # §9.6: moving to the server's preferred_address remains allowed.
    preferred = ("192.0.2.2", 443)
    path = m.migrate(None, 0.0, remote_addr=preferred)
    assert path.remote_addr == preferred and path.state is PathState.VALIDATING


def test_challenges_come_from_the_rng_and_only_their_echo_validates() -> None:
    m = PathManager(Perspective.SERVER, SERVER, CLIENT, FakeRTT(), rng=counter_rng())
    m.set_local_cid(CID)
    m.set_handshake_confirmed()
    new = receive(m, CLIENT_REBOUND)
    assert new is not None
    assert challenge_of(m.pop_probe(1.0)) == (1).to_bytes(8, "big")
    assert m.on_path_response(PathResponseFrame((2).to_bytes(8, "big")), 1.1) is None
    assert m.on_path_response(PathResponseFrame((1).to_bytes(8, "big")), 1.1) is new


def test_nat_rebinding_after_the_peer_rotated_its_cid_is_still_rebinding() -> None:
    m = server(disable_active_migration=True)
    assert receive(m, CLIENT, dcid=NEW_CID) is m.active  # the client moved to another of our CIDs
    rebound = receive(m, CLIENT_REBOUND, 2.0, dcid=NEW_CID)
    assert rebound is not None and m.active is rebound and not rebound.needs_new_peer_cid


# -- hostile peers: random packets, challenges and responses never break the invariants ----------

ADDRESSES = [CLIENT, CLIENT_REBOUND, CLIENT_MOVED, ATTACKER, ("198.51.100.7", 1), ("2001:db8::1", 443)]

operation = st.one_of(
    st.tuples(
        st.just("packet"),
        st.sampled_from(ADDRESSES),
        st.integers(0, 1500),
        st.sampled_from([CID, NEW_CID, b""]),
        st.booleans(),
        st.booleans(),
    ),
    st.tuples(st.just("challenge"), st.binary(min_size=8, max_size=8)),
    st.tuples(st.just("response"), st.binary(min_size=8, max_size=8)),
    st.tuples(st.just("echo"), st.integers(0, 10)),
    st.tuples(st.just("send"), st.integers(0, 1500)),
    st.tuples(st.just("time"), st.floats(0.0, 2.0)),
)


@given(ops=st.lists(operation, max_size=60), disable=st.booleans())
def test_random_peer_behaviour_keeps_the_invariants(ops: list[tuple[object, ...]], disable: bool) -> None:
    m = server(disable_active_migration=disable)
    now = 1.0
    our_challenges: list[bytes] = []
    for op in ops:
        kind = op[0]
        if kind == "packet":
            _, addr, size, dcid, non_probing, largest = op
            assert isinstance(size, int) and isinstance(dcid, bytes)
            assert isinstance(non_probing, bool) and isinstance(largest, bool)
            path = receive(m, addr, now, size=size, dcid=dcid, non_probing=non_probing, largest_pn=largest)
            if path is not None and path.awaiting_peer_cid:
                m.assign_peer_cid(path, b"peer")
        elif kind == "challenge":
            data = op[1]
            assert isinstance(data, bytes)
            m.on_path_challenge(m.active, PathChallengeFrame(data))
        elif kind == "response":
            data = op[1]
            assert isinstance(data, bytes)
            validated = m.on_path_response(PathResponseFrame(data), now)
            assert validated is None or data in our_challenges
        elif kind == "echo":
            index = op[1]
            assert isinstance(index, int)
            if our_challenges:
                echo = our_challenges[index % len(our_challenges)]
                validated = m.on_path_response(PathResponseFrame(echo), now)
                assert validated is None or validated.state is PathState.VALIDATED
        elif kind == "send":
            size = op[1]
            assert isinstance(size, int)
            if m.active.can_send(size):
                m.active.on_datagram_sent(size)
        else:
            delta = op[1]
            assert isinstance(delta, float)
            now += delta
            m.handle_timer(now)
        while (probe := m.pop_probe(now)) is not None:
            budget = probe.path.amplification_budget()
            assert budget is None or probe.min_size <= budget
            assert not probe.path.awaiting_peer_cid
            our_challenges += [f.data for f in probe.frames if isinstance(f, PathChallengeFrame)]
            probe.path.on_datagram_sent(probe.min_size)
        timer = m.get_timer()
        assert timer is None or timer > now  # nothing due is left behind, nothing blocked spins
        assert m.active in m.paths and len(m.paths) <= MAX_PATHS
        assert m.fallback is None or m.fallback.state is PathState.VALIDATED
        for path in m.paths:
            # §8: never more than three times what the unvalidated address sent us.
            assert not path.amplification_limited or path.bytes_sent <= 3 * path.bytes_received
            assert path.state is not PathState.VALIDATED or not path.amplification_limited
        changes = [e for e in iter(m.next_event, None) if isinstance(e, ActivePathChanged)]
        if changes:
            assert changes[-1].path is m.active


# -- both ends together: an active client migration end to end -------------------------------------


def deliver(probe: PathProbe, to: PathManager, now: float, *, size: int) -> None:
    """Carry a probe datagram from its path's local address to the other end and process its frames."""
    path = probe.path
    arrived = to.on_packet_received(
        path.remote_addr,
        path.local_addr,
        now,
        datagram_size=size,
        dcid=path.peer_cid or CID,
        non_probing=not is_probing_packet(probe.frames),
    )
    assert arrived is not None
    for frame in probe.frames:
        if isinstance(frame, PathChallengeFrame):
            to.on_path_challenge(arrived, frame)
        elif isinstance(frame, PathResponseFrame):
            to.on_path_response(frame, now)


def test_active_client_migration_end_to_end() -> None:
    cl = PathManager(Perspective.CLIENT, CLIENT, SERVER, FakeRTT())
    sv = server()
    cl.set_handshake_confirmed()
    old_client_path, old_server_path = cl.active, sv.active
    new_local = ("203.0.113.9", 50001)
    path = cl.migrate(new_local, 2.0)
    cl.assign_peer_cid(path, NEW_CID)  # an unused CID the server issued (§9.5)
    now = 2.0
    # The client's probe: the server answers on the new path and challenges it in turn, no switch.
    probe = cl.pop_probe(now)
    assert probe is not None
    deliver(probe, sv, now, size=max(probe.min_size, 1200))
    assert sv.active is old_server_path
    new_server_path = sv.get(SERVER, new_local)
    assert new_server_path is not None and new_server_path.needs_new_peer_cid
    sv.assign_peer_cid(new_server_path, b"client-cid-1")
    reply = sv.pop_probe(now + 0.01)
    assert reply is not None and reply.path is new_server_path and reply.min_size == 1200
    assert {type(f) for f in reply.frames} == {PathChallengeFrame, PathResponseFrame}
    deliver(reply, cl, now + 0.02, size=reply.min_size)
    # The client validated the path and moves its traffic; it answers the server's challenge.
    assert cl.active is path
    assert events(cl) == [PathValidated(path), ActivePathChanged(path, old_client_path, True)]
    answer = cl.pop_probe(now + 0.02)
    assert answer is not None and answer.path is path
    assert answer.frames == (PathResponseFrame(challenge_of(reply)),)
    deliver(answer, sv, now + 0.03, size=answer.min_size)
    assert new_server_path.state is PathState.VALIDATED
    # The first non-probing packet from the new address moves the server too (§9.3).
    assert receive(sv, new_local, now + 0.04, dcid=NEW_CID) is new_server_path
    assert sv.active is new_server_path
    assert events(sv) == [
        PathValidated(new_server_path),
        ActivePathChanged(new_server_path, old_server_path, reset_congestion=True),
    ]
    assert sv.get_timer() is None and cl.get_timer() is None
