"""Adapters around the pure protocol core, one package per concern: ``rpc`` (gRPC),
``files`` (file bytes and replication across the ring), ``storage`` (the local store),
``rest`` (the REST API and dashboard), ``web`` (its HTTP server), ``dav`` (WebDAV),
``menu`` (the console menu), ``common`` (logging, signals) and ``peer`` (the wiring of
one peer). Each package's docstring says what it may import, and
tests/unit/test_import_rules.py holds it to that."""
