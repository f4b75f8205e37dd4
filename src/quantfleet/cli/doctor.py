"""``quantfleet doctor``: check this installation, print each failure with its fix, exit 1 on any failure.

Checks change nothing: the database is read (its revision), never migrated;
the object store gets one probe object, written and deleted again.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from importlib import metadata

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from quantfleet.cli.common import state
from quantfleet.core.settings import Settings, load_settings

__all__ = ["Check", "Status", "doctor", "run_checks"]

out = Console()
MIN_PYTHON = (3, 11)


class Status(StrEnum):
    """The outcome of one check."""

    OK = "ok"
    WARN = "warn"  # works, but not as a production setup should
    SKIP = "skip"  # not configured, so not checked
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    """One check's outcome: what was found, and (unless it passed) how to fix it."""

    name: str
    status: Status
    detail: str
    fix: str = ""


_COLOURS = {Status.OK: "green", Status.WARN: "yellow", Status.SKIP: "dim", Status.FAIL: "bold red"}
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(?:>=\s*([0-9][0-9A-Za-z.]*))?")


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def check_python() -> Check:
    """Check the interpreter's version."""
    found = platform.python_version()
    if sys.version_info[:2] < MIN_PYTHON:
        return Check("python", Status.FAIL, f"Python {found}", "quantfleet needs Python 3.11 or newer: "
                     "install it (apt-get install python3.11) and recreate the virtualenv")  # fmt: skip
    return Check("python", Status.OK, f"Python {found} ({sys.executable})")


def _requirements(extra: str | None) -> list[tuple[str, str | None]]:
    """Return (distribution, minimum version) of quantfleet's requirements (the core ones, or one extra's)."""
    wanted = []
    for line in metadata.requires("quantfleet") or []:
        requirement, _, marker = line.partition(";")
        in_extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if (in_extra.group(1) if in_extra else None) != extra:
            continue
        match = _REQUIREMENT.match(requirement)
        if match and match.group(1) != "quantfleet":
            wanted.append((match.group(1), match.group(2)))
    return wanted


def check_packages(extra: str | None, *, why: str = "") -> Check:
    """Check that quantfleet's required packages (or one extra's) are installed at their minimum versions."""
    name = f"packages [{extra}]" if extra else "packages"
    try:
        wanted = _requirements(extra)
    except metadata.PackageNotFoundError:
        return Check(name, Status.FAIL, "quantfleet is not installed as a package", "pip install -e '.[dev]'")
    missing, old = [], []
    for dist, minimum in wanted:
        try:
            have = metadata.version(dist)
        except metadata.PackageNotFoundError:
            missing.append(dist)
            continue
        if minimum and _version_tuple(have) < _version_tuple(minimum):
            old.append(f"{dist} {have} < {minimum}")
    target = f"'quantfleet[{extra}]'" if extra else "quantfleet"
    if missing or old:
        detail = "; ".join([*(f"missing {m}" for m in missing), *old])
        return Check(name, Status.FAIL, detail, f"pip install -U {target}" + (f" ({why})" if why else ""))
    listed = ", ".join(f"{d} {metadata.version(d)}" for d, _ in wanted[:4])
    more = f" and {len(wanted) - 4} more" if len(wanted) > 4 else ""
    return Check(name, Status.OK, f"{listed}{more}")


def check_sandbox(settings: Settings, *, force: bool) -> Check:
    """Run the sandbox self-test (the canary) when workers sandbox jobs, or when asked to."""
    launcher = settings.resolved_launcher  # bubblewrap unless QUANTFLEET_SANDBOX=trusted chose another
    sandboxed = launcher == "bubblewrap"
    if not (sandboxed or force):
        return Check("sandbox", Status.WARN, f"workers launch jobs with {launcher} (QUANTFLEET_SANDBOX="
                     f"{settings.sandbox}): jobs run unisolated (not checked)", "for untrusted code unset "
                     "QUANTFLEET_SANDBOX and QUANTFLEET_WORKER_LAUNCHER (or set QUANTFLEET_WORKER_LAUNCHER="
                     "bubblewrap; workers run as root) and run 'quantfleet doctor' again")  # fmt: skip
    if sandboxed:
        from quantfleet.core.errors import ConfigError
        from quantfleet.dispatch.trusted import check_data_reachable

        try:
            check_data_reachable(settings, kind=launcher)
        except ConfigError as exc:
            problem, _, fix = str(exc).partition(": keep")
            return Check("sandbox", Status.FAIL, problem, "keep" + fix)
    if shutil.which("bwrap") is None:
        return Check("sandbox", Status.FAIL, "bubblewrap (bwrap) is not installed", "apt-get install bubblewrap")
    if os.geteuid() != 0:
        return Check("sandbox", Status.FAIL, "the sandbox needs root (cgroups, per-slot uids)",
                     "run workers and this check as root (in a container: the worker image's entry point)")  # fmt: skip
    from quantfleet.sandbox.isolation import sandbox_self_test

    report = sandbox_self_test(timeout=30.0)
    if report.ok:
        return Check("sandbox", Status.OK, report.summary())
    status = Status.FAIL if sandboxed else Status.WARN
    return Check("sandbox", status, "; ".join(report.failures)[:600], "see 'The sandbox' in README.md; workers "
                 "with QUANTFLEET_WORKER_LAUNCHER=bubblewrap refuse to start until this passes")  # fmt: skip


def check_database(settings: Settings) -> Check:
    """Check that the job database answers and its schema is at this build's newest migration."""
    from quantfleet.cli.db import schema_status
    from quantfleet.core.errors import QuantfleetError
    from quantfleet.store import Database

    url = settings.resolved_database_url
    try:
        db = Database(url, connect_timeout_s=3.0)
    except Exception as exc:  # a malformed URL, a missing driver
        return Check("database", Status.FAIL, f"{type(exc).__name__}: {exc}"[:300],
                     "set QUANTFLEET_DATABASE_URL to sqlite:///path or postgresql+psycopg://user:pass@host/db "
                     "(PostgreSQL needs pip install 'quantfleet[postgres]')")  # fmt: skip
    try:
        status = schema_status(db)
    except QuantfleetError as exc:
        return Check("database", Status.FAIL, str(exc)[:400], "start the database server, or fix "
                     "QUANTFLEET_DATABASE_URL")  # fmt: skip
    finally:
        db.dispose()
    problem = status.problem(db.describe())
    if problem:
        fix = "quantfleet db upgrade" if status.known else "upgrade quantfleet to the version that migrated it"
        return Check("database", Status.FAIL, problem, fix)
    note = " (SQLite: one machine only)" if db.dialect == "sqlite" else ""
    return Check("database", Status.OK, f"{db.describe()} at revision {status.current}{note}")


def check_objects(settings: Settings) -> Check:
    """Check that the object store accepts, returns and deletes a probe object."""
    from quantfleet.core.errors import QuantfleetError
    from quantfleet.data.storage import StorageOptions
    from quantfleet.store.objects import ObjectStore

    url = settings.resolved_objects_url
    try:
        fs = None
        if "://" in url and not url.startswith("file://"):
            fs = StorageOptions(endpoint_url=settings.s3_endpoint_url, region=settings.s3_region).filesystem(url)
        objects = ObjectStore(url, fs=fs)
        key = f"_doctor/probe-{os.getpid()}-{time.monotonic_ns()}"
        payload = b"quantfleet doctor"
        objects.put(key, payload)
        back = objects.get(key)
        objects.delete_prefix(key)
    except (QuantfleetError, OSError, ImportError, ValueError) as exc:
        return Check("object store", Status.FAIL, f"{url}: {exc}"[:400], "check QUANTFLEET_OBJECTS_URL, "
                     "QUANTFLEET_S3_ENDPOINT_URL and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; the "
                     "bucket must exist and be writable")  # fmt: skip
    if back != payload:
        return Check("object store", Status.FAIL, f"{url}: a probe read back different bytes",
                     "check the object store's consistency settings")  # fmt: skip
    return Check("object store", Status.OK, f"{url} (read, write, delete)")


def check_broker(settings: Settings) -> Check:
    """Check that the Celery broker (when one is configured) accepts a connection."""
    if not settings.broker_url:
        return Check("broker", Status.SKIP, "none configured: the local worker pool claims from the database")
    where = settings.broker_url.split("@")[-1]
    try:
        from kombu.connection import Connection
    except ImportError:
        return Check("broker", Status.FAIL, "QUANTFLEET_BROKER_URL is set but Celery is not installed",
                     "pip install 'quantfleet[celery]'")  # fmt: skip
    try:
        with Connection(settings.broker_url, connect_timeout=3) as conn:  # type: ignore[no-untyped-call]
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:  # kombu raises the transport's own errors
        return Check("broker", Status.FAIL, f"{where}: {type(exc).__name__}: {exc}"[:300],
                     "start the broker (Redis or RabbitMQ) or fix QUANTFLEET_BROKER_URL")  # fmt: skip
    return Check("broker", Status.OK, where)


def check_data(settings: Settings) -> Check:
    """Check that the market-data store holds a snapshot."""
    from quantfleet.core.errors import QuantfleetError

    try:
        store = state.store()
        latest = store.latest()
    except QuantfleetError as exc:
        return Check("data", Status.FAIL, str(exc)[:400], "check QUANTFLEET_DATA_URL (and the S3 settings)")
    if latest is None:
        return Check(
            "data",
            Status.FAIL,
            f"no data snapshot in {settings.resolved_data_url}",
            "ingest some: 'quantfleet data ingest synthetic --symbols AAA,BBB' (or 'quantfleet demo')",
        )
    return Check("data", Status.OK, f"snapshot {latest} in {settings.resolved_data_url}")


def run_checks(settings: Settings, *, sandbox: bool = False) -> list[Check]:
    """Run every check and return the outcomes, in order (one check failing never stops the others)."""
    extras: list[tuple[str, str]] = []
    if settings.resolved_database_url.startswith("postgresql"):
        extras.append(("postgres", "QUANTFLEET_DATABASE_URL names PostgreSQL"))
    if settings.broker_url:
        extras.append(("celery", "QUANTFLEET_BROKER_URL is set"))
    if any(u.startswith("s3://") for u in (settings.resolved_data_url, settings.resolved_objects_url)):
        extras.append(("s3", "a data or objects URL is s3://"))
    steps: list[Callable[[], Check]] = [check_python, lambda: check_packages(None)]
    steps += [lambda e=e, w=w: check_packages(e, why=w) for e, w in extras]  # type: ignore[misc]
    steps += [
        lambda: check_sandbox(settings, force=sandbox),
        lambda: check_database(settings),
        lambda: check_objects(settings),
        lambda: check_broker(settings),
        lambda: check_data(settings),
    ]
    results = []
    for step in steps:
        try:
            results.append(step())
        except Exception as exc:  # a check that crashes is a failure to report, not a traceback
            results.append(Check(getattr(step, "__name__", "check"), Status.FAIL, f"{type(exc).__name__}: {exc}",
                                 "report this as a bug"))  # fmt: skip
    return results


def doctor(
    sandbox: bool = typer.Option(False, "--sandbox", help="Run the sandbox self-test even if workers do not sandbox."),
) -> None:
    """Check the installation: Python, packages, sandbox, database and migrations, object store, broker, data."""
    settings = state.settings or load_settings()
    results = run_checks(settings, sandbox=sandbox)
    table = Table(title="quantfleet doctor", show_lines=True)
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("found")
    table.add_column("fix")
    for check in results:
        colour = _COLOURS[check.status]
        table.add_row(Text(check.name), Text(check.status.value, style=colour), Text(check.detail), Text(check.fix))
    out.print(table)
    failed = [c for c in results if c.status is Status.FAIL]
    if failed:
        out.print(f"[bold red]{len(failed)} check(s) failed:[/bold red] " + ", ".join(c.name for c in failed))
        raise typer.Exit(1)
    out.print("[green]all checks passed[/green]")
