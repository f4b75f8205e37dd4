"""One symbol's closing prices from a snapshot, downsampled for a chart, with the gaps between its bars.

Read-only, for the dashboard's data page: a 20-year minute series becomes at
most ``max_points`` points (the first, last, low and high of each bucket, so
spikes survive), and the longest gaps tell whether the history has holes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from quantfleet.analytics.series import minmax_indices
from quantfleet.api.deps import CurrentUser, Data
from quantfleet.core.errors import UserError
from quantfleet.core.types import Frequency

__all__ = ["BarsPublic", "GapPublic", "router"]

router = APIRouter(prefix="/v1/data", tags=["data"])


class GapPublic(BaseModel):
    """Time between two consecutive bars of a symbol."""

    after: datetime
    before: datetime
    days: float


class BarsPublic(BaseModel):
    """Closing prices of one symbol (downsampled when longer than asked) and its longest gaps."""

    symbol: str
    frequency: Frequency
    snapshot: int
    rows: int = Field(description="Bars the snapshot holds in the range, before downsampling.")
    ts: list[datetime]
    close: list[float]
    gaps: list[GapPublic] = Field(description="The longest gaps between consecutive bars, longest first.")


def _at(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, tz=UTC)


@router.get("/bars", response_model=BarsPublic, summary="Show one symbol's closing prices, downsampled")
def bars(
    store: Data,
    user: CurrentUser,
    symbol: Annotated[str, Query(min_length=1, max_length=64)],
    frequency: Frequency = Frequency.DAILY,
    snapshot: Annotated[
        str | None, Query(max_length=64, description="Snapshot id or tag; default: the newest.")
    ] = None,
    max_points: Annotated[int, Query(ge=10, le=20_000)] = 2_000,
    gaps: Annotated[int, Query(ge=0, le=100, description="How many of the longest gaps to list.")] = 5,
) -> BarsPublic:
    name = symbol.strip().upper()
    data = store.read_bars([name], frequency=frequency, fields=["close"], snapshot=snapshot)
    if len(data) == 0:
        raise UserError(
            f"snapshot {int(data.snapshot)} has no {frequency.value} bars for {name}; "
            "list what it holds with GET /v1/data/symbols"
        )
    columns = data.to_numpy(name)
    ts = np.asarray(columns["ts"]).astype("datetime64[us]").astype(np.int64)
    close = np.asarray(columns["close"], dtype=np.float64)
    keep = minmax_indices(close, max_points)
    steps = np.diff(ts)
    longest = np.argsort(steps)[::-1][:gaps] if len(steps) else np.empty(0, dtype=np.int64)
    return BarsPublic(
        symbol=name,
        frequency=frequency,
        snapshot=int(data.snapshot),
        rows=len(ts),
        ts=[_at(int(t)) for t in ts[keep]],
        close=[float(c) for c in close[keep]],
        gaps=[
            GapPublic(after=_at(int(ts[i])), before=_at(int(ts[i + 1])), days=float(steps[i]) / 86_400e6)
            for i in longest
        ],
    )
