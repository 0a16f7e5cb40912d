"""The REST API every peer serves (Flask behind services.web.api_server); the contract is
docs/rest-api.md.

Modules: app (factory, error handling), ring / files / peer (routes), upload and
download (streaming bodies), params / names / ranges (input checks), auth, metrics,
dashboard (the web UI at /; the ring walk itself is services.peer.overview).

May import chord/, services.files, services.storage, services.common, services.dav (served
under /dav/), services.peer.overview, services.rpc.transport, and Flask, werkzeug,
prometheus_client and PyYAML (the OpenAPI document); never grpc (FileClient raises FileError).
"""

from services.rest.app import create_app
from services.rest.context import ApiContext, PeerServices

__all__ = ["ApiContext", "PeerServices", "create_app"]
