"""The sweep detail page over a real sweep and a real walk-forward, submitted through the API and run by a worker."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

from quantfleet.api import create_app as create_api
from quantfleet.core.settings import Settings
from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars
from quantfleet.jobs import JobService
from quantfleet.testing.workers import unsandboxed_worker
from quantfleet.users import UserService
from quantfleet.web.common import Api
from quantfleet.web.gateway import Gateway
from quantfleet.web.pages import detail, sweep

# Dash 4 deprecates its DataTable (the pages build them; the browser tests show they work as they are).
pytestmark = pytest.mark.filterwarnings(r"ignore:\s*The dash_table.DataTable will be removed:DeprecationWarning")
SMA = Path(__file__).resolve().parents[3] / "examples" / "sma_crossover.py"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, str, dict[str, str]]]:
    """Return the API in process, alice's token, and the ids of a finished sweep and walk-forward."""
    settings = Settings(home=tmp_path_factory.mktemp("sweeps") / "home")
    data = synthetic_bars(["AAA", "BBB"], start=date(2022, 1, 1), end=date(2023, 12, 31), actions=False)
    MarketDataStore.from_settings(settings).ingest_bars([data.bars], frequency="1d", source="test")
    service = JobService.from_settings(settings)
    users = UserService(service.db)
    users.add_user("alice")
    token = users.create_token("alice", label="web")[0]
    worker = unsandboxed_worker(settings, slots=2, service=service)
    try:
        with TestClient(create_api(settings, service=service, auth=users)) as http:
            where = Api("http://testserver", transport=http._transport)
            with where.open(token) as gw:
                grid = gw.client.submit_sweep(
                    SMA, symbols=["AAA", "BBB"], grid=["fast=5:15:5", "slow=20,40"], metric="sharpe"
                )
                walk = gw.client.submit_walkforward(
                    SMA, symbols=["AAA", "BBB"], grid=["fast=5,10", "slow=20,40"], train="6m", test="3m"
                )
            worker.run_until_empty(timeout=300)
            with where.open(token) as gw:
                for job_id in (grid.id, walk.id):
                    done = gw.job(job_id)
                    assert done.state == "succeeded", done.error
            yield where, token, {"sweep": grid.id, "walk": walk.id}
    finally:
        worker.shutdown(grace=0)


def find(tree: Any, id: str) -> Any:
    """Return the component with ``id`` in a Dash layout (None when absent)."""
    if getattr(tree, "id", None) == id:
        return tree
    children = tree if isinstance(tree, list | tuple) else getattr(tree, "children", None)
    for child in children if isinstance(children, list | tuple) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            hit = find(child, id)
            if hit is not None:
                return hit
    return None


def test_a_sweep_shows_its_leaderboard_heat_map_and_child_links(finished: tuple[Api, str, dict[str, str]]) -> None:
    where, token, ids = finished
    with where.open(token) as gw:
        job = gw.job(ids["sweep"])
        page = detail.body(gw, job)
        board = gw.table(job.id, "leaderboard.parquet", kind="sweep")
    grid = find(page, "sweep-board")
    assert len(grid.data) == board.num_rows == 6
    assert page[0].children[0].children == "Leaderboard (6 combinations)"
    assert {(r["fast"], r["slow"]) for r in grid.data} == {(f, s) for f in (5, 10, 15) for s in (20, 40)}
    assert sweep.param_columns(job, board.column_names) == ["fast", "slow"]
    heat = find(page, "sweep-heat").figure.data[0]
    assert (list(heat.x), list(heat.y)) == (["5", "10", "15"], ["20", "40"])
    best = max(r["sharpe"] for r in grid.data)
    assert max(v for row in heat.z for v in row) == pytest.approx(best)
    assert find(page, "sweep-heat-metric").value == "sharpe"
    children = find(page, "sweep-children").children
    assert len(children) == len(job.children or []) == 6
    hrefs = {item.children[0].href for item in children}
    assert hrefs == {f"/jobs/{c.id}" for c in job.children or []}
    assert find(page, "sweep-walkforward") is None


def _windows(gw: Gateway, job_id: str) -> list[dict[str, Any]]:
    return gw.table(job_id, "windows.parquet", kind="walk-forward").to_pylist()


def test_a_walkforward_shows_in_and_out_of_sample_side_by_side(finished: tuple[Api, str, dict[str, str]]) -> None:
    where, token, ids = finished
    with where.open(token) as gw:
        job = gw.job(ids["walk"])
        page = detail.body(gw, job)
        windows = _windows(gw, job.id)
    assert len(windows) >= 4
    bars = find(page, "sweep-walkforward").figure.data
    assert [b.name for b in bars] == ["In sample", "Out of sample"]
    metric = (job.spec or {})["sweep"]["metric"]
    assert list(bars[0].y) == [w[f"in_sample.{metric}"] for w in windows]
    assert list(bars[1].y) == [w[f"out_of_sample.{metric}"] for w in windows]
    assert len(bars[0].x) == len(windows)
    oos = find(page, "sweep-oos").figure.data
    assert len(oos) == 1
    assert len(oos[0].x) > 100  # the stitched out-of-sample equity, one point a bar
    board = find(page, "sweep-board")
    assert {r["window"] for r in board.data} == {w["window"] for w in windows}
    heat = find(page, "sweep-heat").figure.data[0]
    assert (list(heat.x), list(heat.y)) == (["5", "10"], ["20", "40"])
    last = max(w["window"] for w in windows)
    expected = max(r[metric] for r in board.data if r["window"] == last)
    assert max(v for row in heat.z for v in row if v is not None) == pytest.approx(expected)
    assert f"In-sample, last window (#{last})" in str(find(page, "sweep-heat-card"))
    assert page[0].children[0].children == f"In-sample leaderboards ({len(windows)} windows, {len(board.data)} rows)"
