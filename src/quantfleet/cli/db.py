"""``quantfleet db upgrade`` and ``quantfleet db current``: the job database's schema, migrated on purpose.

In production the schema is migrated once, by an operator or a Kubernetes Job
running ``quantfleet db upgrade``, before new servers start. (Servers still
upgrade on start, so a one-machine setup needs no extra step; on PostgreSQL
concurrent upgrades take turns on an advisory lock.)
"""

from __future__ import annotations

from dataclasses import dataclass

import typer
from rich.console import Console

from quantfleet.cli.common import state
from quantfleet.core.errors import ConfigError
from quantfleet.core.settings import load_settings
from quantfleet.store import Database

__all__ = ["SchemaStatus", "app", "schema_status"]

app = typer.Typer(help="Migrate the job database's schema and show its revision.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database's schema stands against the migrations this build ships."""

    current: str | None
    head: str
    known: bool  # the current revision is one this build ships (False: a newer quantfleet migrated it)

    @property
    def at_head(self) -> bool:
        """Return whether the schema is at this build's newest revision."""
        return self.current == self.head

    def problem(self, where: str) -> str | None:
        """Return what is wrong with the schema and how to fix it, or None when it is at head."""
        if self.at_head:
            return None
        if self.current is None:
            return f"the database at {where} has no schema yet; create it with 'quantfleet db upgrade'"
        if not self.known:
            return (
                f"the database at {where} is at schema revision {self.current}, which this quantfleet does not "
                f"know (its newest is {self.head}): a newer quantfleet migrated it. Upgrade this installation "
                "to that version (pip install -U quantfleet, or the newer image) instead of downgrading the schema"
            )
        return (
            f"the database at {where} is at schema revision {self.current}, behind this quantfleet's {self.head}; "
            "migrate it with 'quantfleet db upgrade'"
        )


def schema_status(db: Database) -> SchemaStatus:
    """Read the schema's revision without changing anything (raises DatabaseUnavailable when unreachable)."""
    from alembic.script import ScriptDirectory

    from quantfleet.store.db import alembic_config

    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    if head is None:  # pragma: no cover - the package ships migrations
        raise ConfigError("this installation ships no migrations; reinstall quantfleet")
    current = db.revision()
    known = current is None or current in {rev.revision for rev in script.walk_revisions()}
    return SchemaStatus(current=current, head=head, known=known)


def _database(url: str | None) -> Database:
    return Database(url or (state.settings or load_settings()).resolved_database_url)


@app.command("upgrade")
def upgrade(
    url: str | None = typer.Option(None, "--url", help="Database URL (default: QUANTFLEET_DATABASE_URL)."),
    revision: str = typer.Option("head", "--revision", help="Target revision (default: the newest)."),
) -> None:
    """Migrate the job database to the newest schema (safe to run twice, and from several places at once)."""
    db = _database(url)
    try:
        before = schema_status(db)
        if not before.known:
            raise ConfigError(before.problem(db.describe()) or "")
        db.upgrade(revision)
        after = schema_status(db)
    finally:
        db.dispose()
    if before.current == after.current:
        out.print(f"{db.describe()}: already at revision {after.current}", highlight=False)
    else:
        out.print(f"{db.describe()}: migrated {before.current or '(empty)'} -> {after.current}", highlight=False)


@app.command("current")
def current(
    url: str | None = typer.Option(None, "--url", help="Database URL (default: QUANTFLEET_DATABASE_URL)."),
) -> None:
    """Show the job database's schema revision and this build's newest one; exit 1 unless they match."""
    db = _database(url)
    try:
        status = schema_status(db)
    finally:
        db.dispose()
    out.print(f"{db.describe()}: revision {status.current or '(none)'}; this quantfleet's newest {status.head}",
              highlight=False)  # fmt: skip
    problem = status.problem(db.describe())
    if problem:
        err.print(problem, highlight=False, soft_wrap=True)
        raise typer.Exit(1)
