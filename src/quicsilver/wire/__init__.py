"""quicsilver.wire: the QUIC wire format, sans-IO (RFC 9000 §12.4, §16-19; RFC 8999; RFC 9221; RFC 9368;
RFC 9369).

- ``varint``: variable-length integers (RFC 9000 §16).
- ``packet_number``: packet number truncation and recovery (RFC 9000 §17.1, Appendix A.2/A.3).
- ``header``: long/short headers for v1 and v2, Version Negotiation, Retry, RFC 8999 invariants.
- ``frames``: every frame of RFC 9000 §19 plus DATAGRAM (definitions in ``frame_types``, parsing in
  ``frame_parser``), frame/packet-type rules and sizing helpers.
- ``transport_parameters``: RFC 9000 §18 transport parameters with §7.4/§18.2 validation.
"""
