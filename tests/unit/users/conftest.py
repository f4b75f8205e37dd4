"""Fixtures of the user tests: ``db_url`` over SQLite and PostgreSQL, a frozen clock, a user service."""

from __future__ import annotations

import pytest

from quantfleet.store import Database
from quantfleet.testing import FrozenClock
from quantfleet.users import UserService


@pytest.fixture
def users(db: Database, clock: FrozenClock) -> UserService:
    """Return a user service on ``db``."""
    return UserService(db, clock=clock)
