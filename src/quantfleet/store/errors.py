"""Errors of the storage adapters."""

from __future__ import annotations

from quantfleet.core.errors import InfrastructureError, StorageUnavailable, UserError

__all__ = ["DatabaseUnavailable", "ObjectNotFound", "StorageUnavailable"]


class DatabaseUnavailable(InfrastructureError):
    """The metadata database cannot be reached or is locked; back off and retry.

    Nothing was half-written: every write is one transaction.
    """


class ObjectNotFound(UserError):
    """No object is stored under this key."""
