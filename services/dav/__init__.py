"""WebDAV (RFC 4918) at ``http://PEER:API_PORT/dav/``: the ring as a network drive.

Owns the wsgidav provider of the ring (``provider``: folders are name prefixes, files
are ring files), the kept ring listing PROPFIND answers from (``listing``), the byte
streams in and out (``stream``) and the gate in front of wsgidav (``app``: cross-site
writes, tokens, per-client transfer slots). It works only through FileClient and the
overview, as the REST routes do; it may import chord/, services.files.client,
services.peer.overview, services.rest's auth, context, errors, limits and origin rules,
wsgidav and werkzeug; nothing of gRPC.
"""
