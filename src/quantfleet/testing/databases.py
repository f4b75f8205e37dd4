"""Databases for tests: a fresh SQLite file, or a fresh schema in the test PostgreSQL server.

PostgreSQL is expected at 127.0.0.1:5432 (user ``postgres``, trust auth,
database ``test``). Each :func:`postgres_schema` is a new schema, dropped
afterwards, so test runs in parallel never see each other's rows.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

__all__ = ["POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_START", "POSTGRES_URL", "head_revision", "postgres_schema"]

POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_URL = f"postgresql+psycopg://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/test"
POSTGRES_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


@contextlib.contextmanager
def postgres_schema(base_url: str = POSTGRES_URL, *, prefix: str = "qf_test") -> Iterator[str]:
    """Create a fresh schema, yield a URL whose connections use it, and drop it (with its tables) after."""
    import sqlalchemy as sa

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = sa.make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        admin.dispose()


def head_revision() -> str:
    """Return the newest revision of the shipped migrations (what ``Database.upgrade()`` migrates to)."""
    from alembic.script import ScriptDirectory

    from quantfleet.store.db import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head
