"""What a worker hands a child, and what the child hands back: files in the job's private work folder.

The child never talks to the database: the worker writes everything the
child needs into the work folder, and reads back what it produced::

    WORK/
      task.json      the task (kind, spec, data store, limits), written by the worker
      <strategy>.py  the strategy code, fetched from the object store by its sha256
      children.json  a sweep gather's input: each child job's parameters and metrics
      live.json, bars.npz, orders.json   a live run's snapshot in, its order messages out
                     (see quantfleet.engine.live.messages)
      out/           what the child writes: a run folder, or a sweep's leaderboard and report
      result.json    the outcome, written by the child: status, message, metrics or combinations

Exit codes of the child: 0 done, 2 user error (message on stderr and in
result.json), anything else an infrastructure failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from quantfleet.core.settings import Settings
from quantfleet.data import MarketDataStore
from quantfleet.data.cache import FileCache
from quantfleet.data.storage import StorageOptions
from quantfleet.dispatch.limits import Limits

__all__ = [
    "EXIT_INFRA",
    "EXIT_OK",
    "EXIT_USER",
    "DataRef",
    "Task",
    "TaskKind",
    "TaskResult",
    "read_result",
]

EXIT_OK = 0
EXIT_USER = 2
EXIT_INFRA = 3

TASK_FILE = "task.json"
RESULT_FILE = "result.json"
CHILDREN_FILE = "children.json"
OUT_DIR = "out"


class TaskKind(StrEnum):
    """What a child does."""

    BACKTEST = "backtest"  # run_spec into out/
    EXPAND = "expand"  # list a sweep's combinations (grid or seeded random draw) into result.json
    GATHER = "gather"  # rank a sweep's finished children: leaderboard.parquet, report.html, sweep.json
    SWEEP = "sweep"  # run a whole sweep in one child (optimizer and walk-forward searches are sequential)
    LIVE = "live"  # one scheduled run of a deployment: snapshot in, order messages out (quantfleet.sandbox.live)
    LIVE_SESSION = "live-session"  # an on-bars deployment: bars in on stdin, messages out (sandbox.live_session)


@dataclass(frozen=True, kw_only=True)
class DataRef:
    """Where the child reads market data: the store's URL and this worker's shared local cache."""

    url: str
    endpoint_url: str | None = None
    region: str = "us-east-1"
    cache_root: str | None = None
    cache_capacity: int = 0
    cache_threshold: float = 0.8

    @classmethod
    def from_settings(cls, settings: Settings) -> DataRef:
        """Return the data store the settings point at, with the worker's cache folder."""
        url = settings.resolved_data_url
        if "://" not in url:
            url = str(Path(url).resolve())  # the child works in its own folder
        return cls(
            url=url,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            cache_root=str(Path(settings.resolved_cache_dir).resolve()),
            cache_capacity=settings.cache_capacity_bytes,
            cache_threshold=settings.cache_threshold,
        )

    def open(self) -> MarketDataStore:
        """Return the store, opened in this process."""
        cache = None
        if self.cache_root is not None and self.cache_capacity > 0:
            cache = FileCache(Path(self.cache_root), capacity_bytes=self.cache_capacity, threshold=self.cache_threshold)
        storage = StorageOptions(endpoint_url=self.endpoint_url, region=self.region)
        return MarketDataStore(self.url, storage=storage, cache=cache)


@dataclass(frozen=True, kw_only=True)
class Task:
    """One child's work: a kind, its spec (JSON), the data store and the limits."""

    kind: TaskKind
    spec: dict[str, Any]
    data: DataRef
    limits: Limits = field(default_factory=Limits)

    def write(self, work: Path) -> None:
        """Write task.json into ``work``."""
        body = {
            "kind": self.kind.value,
            "spec": self.spec,
            "data": self.data.__dict__,
            "limits": self.limits.to_json(),
        }
        (work / TASK_FILE).write_text(json.dumps(body, indent=2, sort_keys=True))

    @classmethod
    def read(cls, work: Path) -> Task:
        """Read task.json from ``work``."""
        body = json.loads((work / TASK_FILE).read_text())
        return cls(
            kind=TaskKind(body["kind"]),
            spec=body["spec"],
            data=DataRef(**body["data"]),
            limits=Limits.from_json(body.get("limits", {})),
        )


@dataclass(frozen=True, kw_only=True)
class TaskResult:
    """What the child reported in result.json (``status`` is ok, user_error or infra_error)."""

    status: str
    message: str | None = None
    metrics: dict[str, Any] | None = None
    combos: list[dict[str, Any]] | None = None
    reason: str | None = None
    """For a user error: the limit it hit, as an ``EndReason`` value (memory, file_size, ...); None: the code's own."""

    def to_json(self) -> dict[str, Any]:
        """Return the result as result.json holds it."""
        return {"status": self.status, "message": self.message, "metrics": self.metrics, "combos": self.combos,
                "reason": self.reason}  # fmt: skip

    def write(self, work: Path) -> None:
        """Write result.json into ``work`` (aside, then renamed: never half a file)."""
        tmp = work / (RESULT_FILE + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), sort_keys=True, allow_nan=False, default=str))
        tmp.replace(work / RESULT_FILE)


def read_result(work: Path) -> TaskResult | None:
    """Return the child's result.json, or None when it wrote none (it died first)."""
    try:
        body = json.loads((work / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return TaskResult(
        status=str(body.get("status")),
        message=body.get("message"),
        metrics=body.get("metrics"),
        combos=body.get("combos"),
        reason=body.get("reason") if isinstance(body.get("reason"), str) else None,
    )
