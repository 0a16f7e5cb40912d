"""Everything gRPC: the Chord transport over channels (``transport``, one channel per
peer), the thin Chord servicer (``chord_servicer``), the server with its reserved
capacity, health service and interceptors (``server``, ``capacity``, ``health``,
``interceptors``, ``stream_watchdog``), TLS/token security and admission of joiners
(``security``, ``admission``), refusal codes on the wire (``refusals``), and
proto <-> core conversions (``convert``).
May import chord/, config/, proto/, services.common and grpc (with grpc_health and
grpc_reflection); nothing of REST, files or storage.
"""
