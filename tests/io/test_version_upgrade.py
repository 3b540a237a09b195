"""Compatible version negotiation over real sockets (RFC 9368 §2.3, RFC 9369): a client whose first
Initial is v1 but which also offers v2 is upgraded to v2 by a server that prefers v2, although its
ClientHello (with an X25519MLKEM768 share) spans two Initial datagrams."""

from __future__ import annotations

import quicsilver as quic
from quicsilver.protocol import VERSION_1, VERSION_2


async def test_v1_client_offering_v2_is_upgraded_by_a_server_preferring_v2() -> None:
    server_tls = quic.TLSConfig.self_signed(alpn=["upgrade"])
    listener = await quic.listen_addr("127.0.0.1:0", server_tls, quic.Config(versions=(VERSION_2, VERSION_1)))
    try:
        conn = await quic.dial_addr(
            f"127.0.0.1:{listener.local_addr[1]}",
            quic.TLSConfig(alpn=["upgrade"], verify=False),
            quic.Config(versions=(VERSION_1, VERSION_2), handshake_idle_timeout=3.0),
        )
        server_conn = await listener.accept()
        assert conn.connection_state().version == VERSION_2
        assert server_conn.connection_state().version == VERSION_2
        stream = conn.open_stream()
        await stream.write(b"ping")
        await stream.close()
        peer_stream = await server_conn.accept_stream()
        assert await peer_stream.read() == b"ping"
        conn.close(0, "done")
        await conn.wait_closed()
    finally:
        listener.close()


async def test_v1_only_client_stays_on_v1_with_a_server_preferring_v2() -> None:
    server_tls = quic.TLSConfig.self_signed(alpn=["upgrade"])
    listener = await quic.listen_addr("127.0.0.1:0", server_tls, quic.Config(versions=(VERSION_2, VERSION_1)))
    try:
        conn = await quic.dial_addr(
            f"127.0.0.1:{listener.local_addr[1]}",
            quic.TLSConfig(alpn=["upgrade"], verify=False),
            quic.Config(versions=(VERSION_1,), handshake_idle_timeout=3.0),
        )
        assert conn.connection_state().version == VERSION_1
        conn.close(0, "done")
        await conn.wait_closed()
    finally:
        listener.close()
