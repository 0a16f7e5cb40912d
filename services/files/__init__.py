"""File bytes across the ring: the client that puts, gets, searches and deletes from any
peer (``client``), the gRPC file servicer (``servicer``), the two-phase write
(``write``, ``local_holder``), local fast reads (``small_read``) and replication,
migration and repair (``replication``). May import chord/, proto/, services.rpc,
services.storage, services.common and grpc; nothing of REST, the menu or WebDAV.
"""
