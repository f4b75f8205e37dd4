"""What a job is asked to do: :class:`JobSpec`, frozen and strict, so a job can be rerun exactly.

Job ids are :data:`JobId`: a uuid4 as 32 lowercase hex digits (``uuid.uuid4().hex``),
the same in the database, in object keys and on the command line.

The spec keeps engine and sweep settings as plain JSON dicts: they are
validated by the layers that own them (engine, sweep) when the job runs, so
``jobs`` does not import the research core. Everything else is checked here.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import date
from enum import StrEnum
from typing import Any, Literal, NewType

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from quantfleet.core.settings import LimitMaxima
from quantfleet.core.types import Frequency

__all__ = ["CodeRef", "JobId", "JobKind", "JobSpec", "Limits", "new_job_id", "parse_job_id"]

JobId = NewType("JobId", str)
"""A job's id: a uuid4 as 32 lowercase hex digits."""

_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def new_job_id() -> JobId:
    """Return a fresh job id."""
    return JobId(uuid.uuid4().hex)


def parse_job_id(text: str) -> JobId:
    """Return ``text`` as a :data:`JobId`; dashes and upper case (a uuid string) are accepted."""
    from quantfleet.jobs.errors import JobNotFound

    cleaned = text.strip().lower().replace("-", "")
    if not _HEX32.match(cleaned):
        raise JobNotFound(f"{text!r} is not a job id (32 hex digits); list jobs with 'quantfleet jobs ls'")
    return JobId(cleaned)


class JobKind(StrEnum):
    """What a job runs. A live run is one run of a deployment (``live`` names it), claimed by the live runner."""

    BACKTEST = "backtest"
    SWEEP = "sweep"
    WALK_FORWARD = "walk-forward"
    LIVE = "live"


_SETTINGS_KINDS = frozenset({JobKind.SWEEP, JobKind.WALK_FORWARD})
_CODE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,200}$")


class CodeRef(BaseModel):
    """The strategy code of a job: content address (sha256), file name and optional class name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the code bytes, lowercase hex.")
    name: str = Field(description="File name the code was submitted as, e.g. 'sma_cross.py'.")
    class_name: str | None = Field(default=None, description="Strategy class in the file; None: the only one.")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not _CODE_NAME.match(value) or value in (".", ".."):
            raise ValueError(f"{value!r} is not a plain file name (letters, digits, '_', '-', '.'; no folders)")
        return value


class Limits(BaseModel):
    """Resource limits of one attempt, each within the installation's maxima (:meth:`within`).

    The defaults are the sandbox's (see the README's sandbox section). The
    network is never reachable: ``network`` takes only ``"none"``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    wall_time_s: float = Field(default=1800.0, gt=0, description="Wall-clock limit per attempt, seconds.")
    cpu_time_s: float | None = Field(default=None, gt=0, description="CPU-time limit, seconds; None: none.")
    cpus: float = Field(default=1.0, gt=0, le=256, description="CPU quota, in cores (the cgroup's CPU share).")
    memory_mb: int = Field(default=2048, gt=0, description="Memory limit (swap included), MiB.")
    processes: int = Field(default=256, ge=8, description="Processes and threads the job may have at once.")
    open_files: int = Field(default=256, ge=16, description="Open files per process.")
    file_size_mb: int = Field(default=1024, gt=0, description="Largest file the job may write, MiB.")
    work_mb: int = Field(default=2048, gt=0, description="Size of the job's /work, MiB.")
    work_files: int = Field(default=10_000, ge=100, description="Files and folders in the job's /work.")
    log_mb: float = Field(default=10.0, gt=0, description="stdout and stderr together, MiB: past it the job fails.")
    artifact_files: int = Field(default=100, gt=0, description="Result files the job may leave in out/.")
    artifact_mb: int = Field(default=1024, gt=0, description="Total size of the result files, MiB.")
    network: Literal["none"] = Field(default="none", description="Network access: none (the only choice).")

    def within(self, maxima: LimitMaxima) -> Limits:
        """Return these limits with every default above a maximum lowered to it; refuse a request above one.

        A limit the job asked for (set explicitly) above the installation's
        maximum raises :class:`LimitAboveMaximum`, naming the limit, the maximum
        and the fix; one left to its default gets the maximum when the default
        is higher (an admin may set a maximum below a default).
        """
        from quantfleet.jobs.errors import LimitAboveMaximum

        lowered: dict[str, Any] = {}
        for name, maximum in maxima.model_dump().items():
            value = getattr(self, name)
            if maximum is None or value is None or value <= maximum:
                continue
            if name not in self.model_fields_set:
                lowered[name] = maximum
                continue
            default = Limits.model_fields[name].default
            leave = f" (or leave it out for {min(default, maximum):g})" if default is not None else ""
            raise LimitAboveMaximum(
                f"limits.{name} = {value:g} is above this installation's maximum of {maximum:g}; ask for at "
                f"most {maximum:g}{leave}, or ask an admin to raise QUANTFLEET_LIMITS_MAX__{name.upper()}",
                limit=name,
                value=float(value),
                maximum=float(maximum),
            )
        return self.model_copy(update=lowered) if lowered else self


class JobSpec(BaseModel):
    """Everything that defines a job, frozen: the same spec on the same snapshot gives the same results.

    ``snapshot`` is required: the caller pins the newest snapshot at submission,
    so a rerun months later reads the same bytes. ``priority``: higher runs
    first; equal priorities run in submission order.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: JobKind = JobKind.BACKTEST
    code: CodeRef
    params: dict[str, Any] = Field(default_factory=dict)
    universe: tuple[str, ...] = Field(min_length=1)
    start: date | None = None
    end: date | None = None
    frequency: Frequency = Frequency.DAILY
    snapshot: int = Field(ge=0, description="Market-data snapshot id, pinned at submission.")
    engine: dict[str, Any] = Field(default_factory=dict, description="Engine settings, validated by the engine.")
    sweep: dict[str, Any] | None = Field(
        default=None, description="Sweep or walk-forward settings; required for those kinds, refused for others."
    )
    live: dict[str, Any] | None = Field(
        default=None, description="A live run's deployment and run number; required for live jobs, refused for others."
    )
    benchmark: str | None = None
    calendar: str = "XNYS"
    limits: Limits = Field(default_factory=Limits)
    priority: int = Field(default=0, ge=-1000, le=1000)
    owner: str = Field(min_length=1, max_length=200)
    parent: JobId | None = Field(default=None, description="The sweep job this one is a child of.")

    @field_validator("universe")
    @classmethod
    def _symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(s.strip() for s in value)
        if any(not s for s in cleaned):
            raise ValueError("symbols may not be empty")
        if len(set(cleaned)) != len(cleaned):
            raise ValueError("a symbol is listed twice")
        return cleaned

    @field_validator("parent")
    @classmethod
    def _parent_id(cls, value: str | None) -> JobId | None:
        if value is None:
            return None
        if not _HEX32.match(value):
            raise ValueError("parent must be a job id: 32 lowercase hex digits")
        return JobId(value)

    @model_validator(mode="after")
    def _consistent(self) -> JobSpec:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError(f"start {self.start} is after end {self.end}")
        if self.kind in _SETTINGS_KINDS and not self.sweep:
            raise ValueError(f"a {self.kind.value} job needs its settings in 'sweep'")
        if self.kind not in _SETTINGS_KINDS and self.sweep is not None:
            raise ValueError(f"a {self.kind.value} job takes no 'sweep' settings")
        if (self.kind is JobKind.LIVE) != (self.live is not None):
            raise ValueError("a live job names its deployment and run in 'live'; other jobs take no 'live'")
        for name in ("params", "engine", "sweep", "live"):
            try:
                json.dumps(getattr(self, name), allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name} must be plain JSON (str, number, bool, None, list, dict): {exc}") from exc
        return self

    def canonical_json(self) -> str:
        """Return the spec as JSON with sorted keys: equal specs give equal text."""
        body = self.model_dump(mode="json")
        if body.get("live") is None:
            body.pop("live", None)  # specs from before live runs keep their fingerprints
        return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)

    def fingerprint(self) -> str:
        """Return the sha256 of :meth:`canonical_json`: what idempotency keys compare."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()
