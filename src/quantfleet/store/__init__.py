"""Storage adapters: SQL metadata (SQLAlchemy 2, Alembic migrations) and objects (fsspec).

Imports only ``quantfleet.core``; the job service builds on it.
"""

from quantfleet.store.db import Database, upgrade
from quantfleet.store.errors import DatabaseUnavailable, ObjectNotFound
from quantfleet.store.objects import ObjectInfo, ObjectStore

__all__ = ["Database", "DatabaseUnavailable", "ObjectInfo", "ObjectNotFound", "ObjectStore", "upgrade"]
