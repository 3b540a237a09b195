"""Applications on quicsilver's public API: hq-interop (HTTP/0.9, ``hq``), the perf protocol
(``perf``), echo (``echo``), one server for all three chosen by ALPN (``server``), the loopback demo
(``demo``) and a file-backed TLS session ticket store for resumption across runs (``tickets``)."""
