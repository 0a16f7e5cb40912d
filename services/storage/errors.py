"""Errors raised by the storage engine. All derive from :class:`StorageError` so a caller
(gRPC service, repair loop) can catch the family and map each kind to its own status."""

from __future__ import annotations


class StorageError(Exception):
    """Base class; also raised as-is for requests that make no sense for the stored state
    (reading a tombstone, a record that has since been superseded, a closed engine...)."""


class QuotaExceeded(StorageError):
    """The peer is full: the data was refused and nothing half-written remains."""


class IntegrityError(StorageError):
    """Incoming content does not match the size or SHA-256 the sender announced."""


class CorruptData(StorageError):
    """Bytes on disk no longer match their recorded hashes (the record is now damaged)."""


class StaleVersion(StorageError):
    """The write loses against what we hold: an older version, or the same version with
    different content, or a version not newer than a tombstone."""
