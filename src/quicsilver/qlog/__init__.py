"""Observability: the tracer hooks (``tracer``: quic-go's logging.Tracer / ConnectionTracer shape,
no-op bases) and their qlog JSON-SEQ implementation (``qlog``). ``qlog`` is imported on demand, so
a stack without tracing never loads it."""
