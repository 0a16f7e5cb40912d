"""Adapters around the pure protocol core: gRPC, REST, maintenance loop, processes."""
