"""Wiring of one peer: ``peer.Peer`` builds the storage, gRPC server, REST API and
maintenance loop around a ChordNode; ``maintenance`` is the only place that runs protocol
steps on a timer; ``overview`` is the read model of the peer and ring the REST API, the
dashboard and the menu show; ``ports`` claims the ports a peer will bind. May import
every other services/ package, config/, chord/, proto/, grpc and devtools.fault_injection.
"""
