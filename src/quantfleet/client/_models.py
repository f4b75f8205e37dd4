"""What the client returns: plain frozen records of the API's JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["ArtifactInfo", "JobInfo"]

TERMINAL_STATES = frozenset({"succeeded", "failed", "timed_out", "cancelled", "dead"})


def _at(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


@dataclass(frozen=True, kw_only=True)
class JobInfo:
    """A job as the API shows it; ``spec``, ``attempts`` and ``children`` are filled by ``Client.get``."""

    id: str
    kind: str
    state: str
    owner: str
    strategy: str
    priority: int
    attempt: int
    submitted_at: datetime
    updated_at: datetime
    parent: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested: bool = False
    error: str | None = None
    reason: str | None = None
    """Why it ended (completed, error, memory, wall, cpu, cancelled, ...); None until then."""
    metrics: dict[str, Any] | None = None
    spec: dict[str, Any] | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    children: list[JobInfo] | None = None

    @property
    def terminal(self) -> bool:
        """Return whether the job has ended."""
        return self.state in TERMINAL_STATES

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> JobInfo:
        """Return the job of an API response body."""
        children = body.get("children")
        return cls(
            id=body["id"],
            kind=body["kind"],
            state=body["state"],
            owner=body["owner"],
            strategy=body["strategy"],
            priority=int(body.get("priority", 0)),
            attempt=int(body.get("attempt", 0)),
            submitted_at=_at(body["submitted_at"]),  # type: ignore[arg-type]
            updated_at=_at(body["updated_at"]),  # type: ignore[arg-type]
            parent=body.get("parent"),
            started_at=_at(body.get("started_at")),
            finished_at=_at(body.get("finished_at")),
            cancel_requested=bool(body.get("cancel_requested", False)),
            error=body.get("error"),
            reason=body.get("reason"),
            metrics=body.get("metrics"),
            spec=body.get("spec"),
            attempts=list(body.get("attempts") or []),
            children=None if children is None else [cls.from_json(c) for c in children],
        )


@dataclass(frozen=True, kw_only=True)
class ArtifactInfo:
    """A result file of a job; ``Client.download`` fetches it."""

    name: str
    size: int
    sha256: str
    content_type: str
    created_at: datetime
    href: str

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ArtifactInfo:
        """Return the artifact of an API response body."""
        return cls(name=body["name"], size=int(body["size"]), sha256=body["sha256"],
                   content_type=body["content_type"], created_at=_at(body["created_at"]),  # type: ignore[arg-type]
                   href=body["href"])  # fmt: skip
