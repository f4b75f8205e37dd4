"""Market data: the snapshots a job can pin, and what each holds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from quantfleet.api.deps import CurrentUser, Data
from quantfleet.api.schemas import SnapshotPublic, SymbolPublic

__all__ = ["router"]

router = APIRouter(prefix="/v1/data", tags=["data"])


@router.get("/snapshots", response_model=list[SnapshotPublic], summary="List market-data snapshots, newest first")
def snapshots(store: Data, user: CurrentUser) -> list[SnapshotPublic]:
    return [
        SnapshotPublic(
            id=int(s.id),
            created=s.created,
            operation=s.operation,
            source=s.source,
            rows_added=s.rows_added,
            tags=list(s.tags),
        )
        for s in store.snapshots()
    ]


@router.get("/symbols", response_model=list[SymbolPublic], summary="List what a snapshot holds per symbol")
def symbols(
    store: Data,
    user: CurrentUser,
    snapshot: Annotated[
        str | None, Query(max_length=64, description="Snapshot id or tag; default: the newest.")
    ] = None,
) -> list[SymbolPublic]:
    return [
        SymbolPublic(symbol=s.symbol, frequency=s.frequency, first=s.first, last=s.last, rows=s.rows)
        for s in store.catalog(snapshot)
    ]
