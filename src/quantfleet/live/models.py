"""What a deployment is: its spec (frozen, strict), its trigger, its risk limits, and how it reads back."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, NewType

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, field_validator

from quantfleet.core.types import Frequency

__all__ = [
    "BarsTrigger",
    "CronTrigger",
    "Deployment",
    "DeploymentId",
    "DeploymentSpec",
    "DeploymentStatus",
    "RiskLimits",
    "Run",
    "Trigger",
]

DeploymentId = NewType("DeploymentId", str)
"""A deployment's id: 32 lowercase hex digits."""

_FROZEN = ConfigDict(frozen=True, extra="forbid")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class DeploymentStatus(StrEnum):
    """Where a deployment is: trading, held (orders refused, runs skipped), or ended for good."""

    ACTIVE = "active"
    PAUSED = "paused"
    STOPPED = "stopped"


class RiskLimits(BaseModel):
    """Limits checked before each order leaves for the broker; None: no limit.

    ``max_position``: largest absolute quantity held of one symbol after the order.
    ``max_order_value``: largest value of one order at the newest close.
    ``max_daily_loss``: equity may fall this much below the day's first equity;
    past it the deployment pauses. ``max_orders_per_day``: orders sent per day
    (the exchange's day).
    """

    model_config = _FROZEN

    max_position: PositiveFloat | None = None
    max_order_value: PositiveFloat | None = None
    max_daily_loss: PositiveFloat | None = None
    max_orders_per_day: PositiveInt | None = None


class CronTrigger(BaseModel):
    """Run on a cron schedule in the exchange's time zone, on its trading sessions only.

    ``half_days``: what a run due after an early close does: ``skip`` it, or
    ``move`` it to the last minute of the session.
    """

    model_config = _FROZEN

    kind: Literal["cron"] = "cron"
    cron: str = Field(description="Five-field cron expression, e.g. '*/15 9-16 * * MON-FRI'.")
    calendar: str = "XNYS"
    half_days: Literal["skip", "move"] = "skip"
    sessions_only: bool = Field(default=True, description="Fire only inside trading sessions (open to close).")


class BarsTrigger(BaseModel):
    """Run on market events: each bar arriving on the MQTT topics of the deployment's symbols calls on_bar."""

    model_config = _FROZEN

    kind: Literal["bars"] = "bars"


Trigger = Annotated[CronTrigger | BarsTrigger, Field(discriminator="kind")]


class DeploymentSpec(BaseModel):
    """Everything that defines a deployment: strategy version and parameters, broker, trigger, limits."""

    model_config = _FROZEN

    name: str = Field(description="A short name: letters, digits, '_', '-', '.'.")
    owner: str = Field(min_length=1, max_length=200)
    code_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    code_name: str
    class_name: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    universe: tuple[str, ...] = Field(min_length=1)
    frequency: Frequency = Frequency.DAILY
    broker: Literal["paper", "alpaca"] = "paper"
    account: str = Field(default="", description="Broker account; paper: the paper account's name (default: the id).")
    trigger: Trigger
    risk: RiskLimits = Field(default_factory=RiskLimits)
    engine: dict[str, Any] = Field(default_factory=dict, description="Paper fill settings (EngineConfig fields).")
    history_bars: int = Field(default=500, ge=1, le=100_000, description="Bars of history a scheduled run sees.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r}: name a deployment with 1-64 letters, digits, '_', '-' or '.'")
        return value

    @field_validator("universe")
    @classmethod
    def _symbols(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(s.strip() for s in value)
        if any(not s for s in cleaned) or len(set(cleaned)) != len(cleaned):
            raise ValueError("symbols must be non-empty and listed once each")
        return cleaned


class Deployment(BaseModel):
    """A deployment as stored: its spec, status and bookkeeping."""

    model_config = ConfigDict(frozen=True)

    id: DeploymentId
    spec: DeploymentSpec
    status: DeploymentStatus
    reason: str | None = None
    state: dict[str, Any] = Field(default_factory=dict)
    runs: int = 0
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    heartbeat_at: datetime | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def account(self) -> str:
        """Return the broker account (a paper deployment without one trades its own, named by its id)."""
        return self.spec.account or f"paper-{self.id}"


class Run(BaseModel):
    """One run of a deployment: when it was due, its job, how it ended."""

    model_config = ConfigDict(frozen=True)

    deployment_id: DeploymentId
    number: int
    due_at: datetime
    job_id: str | None = None
    status: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
