"""Compatibility: the REST app now lives in the services.rest package."""

from services.rest import ApiContext, PeerServices, create_app
from services.rest.shapes import ref_json

__all__ = ["ApiContext", "PeerServices", "create_app", "ref_json"]
