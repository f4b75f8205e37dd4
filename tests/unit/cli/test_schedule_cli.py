"""quantfleet data schedule add/ls/run/rm, and the scheduler pulling a stored schedule into a new snapshot.

The vendor is Alpaca's real client (alpaca-py) answered with the recorded bars responses under
tests/fixtures/vendors, as in tests/unit/data/ingest/test_alpaca.py: no network.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import responses
from typer.testing import CliRunner

from quantfleet.cli.app import app
from quantfleet.cli.deploy import build_scheduler
from quantfleet.core.settings import load_settings
from quantfleet.data import MarketDataStore
from quantfleet.jobs import JobService
from quantfleet.live.deployments import DeploymentService
from quantfleet.live.ingest import IngestBook
from quantfleet.testing import FrozenClock

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "vendors"
BARS = "https://data.alpaca.markets/v2/stocks/bars"
KEYS = {"APCA_API_KEY_ID": "PKTEST", "APCA_API_SECRET_KEY": "secret"}


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("QUANTFLEET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "250")
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    return CliRunner()


@pytest.fixture
def alpaca() -> Iterator[responses.RequestsMock]:
    """Answer Alpaca's bars endpoint with the two recorded pages of AAPL daily bars."""

    def page(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        assert request.headers["APCA-API-KEY-ID"] == "PKTEST"  # the keys come from the environment
        second = "page_token=" in (request.url or "")
        return 200, {}, (FIXTURES / f"alpaca_bars_AAPL_1d_page{2 if second else 1}.json").read_text()

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_callback(responses.GET, re.compile(re.escape(BARS) + r".*"), callback=page)
        yield rsps


def invoke(cli: CliRunner, *args: str, code: int = 0) -> str:
    done = cli.invoke(app, list(args), catch_exceptions=False)
    assert done.exit_code == code, done.output
    return done.output


def test_a_stored_schedule_is_pulled_by_the_scheduler_into_a_new_snapshot(
    cli: CliRunner, alpaca: responses.RequestsMock
) -> None:
    """Added from the CLI, the schedule is found by the scheduler, fired when due, and its snapshot recorded."""
    added = invoke(cli, "data", "schedule", "add", "eod", "--vendor", "alpaca", "--symbols", "AAPL",
                   "--cron", "30 17 * * MON-FRI", "--calendar", "XNYS")  # fmt: skip
    assert "first pull" in added
    settings = load_settings()
    jobs = JobService.from_settings(settings)
    record = IngestBook(jobs.db).get("eod")
    assert record.next_at is not None
    store = MarketDataStore.from_settings(settings)
    assert store.latest() is None

    # The scheduler as 'quantfleet scheduler' builds it, ticked at the due time and just before.
    clock = FrozenClock(record.next_at)
    scheduler = build_scheduler(DeploymentService(jobs, clock=clock), store, clock=clock, env=KEYS)
    assert scheduler.tick(clock.advance(-60)) == []
    assert scheduler.tick(clock.advance(60)) == ["eod"]
    snapshot = store.latest()
    assert snapshot is not None
    bars = store.read_bars("AAPL", frequency="1d", snapshot=snapshot)
    assert len(bars) == 4  # the four recorded sessions
    assert IngestBook(jobs.db).get("eod").last_snapshot == snapshot
    listed = invoke(cli, "data", "schedule", "ls")
    assert "eod" in listed
    assert "alpaca" in listed
    assert "30 17 * * MON-FRI XNYS" in listed
    assert str(snapshot) in listed
    assert "alpaca:eod" in invoke(cli, "data", "snapshots")  # the snapshot names where it came from

    # Pulled by hand: the same window again is one more snapshot, its bars replaced (upsert), none doubled.
    assert "snapshot" in invoke(cli, "data", "schedule", "run", "eod")
    assert store.latest() != snapshot
    assert len(store.read_bars("AAPL", frequency="1d")) == 4
    invoke(cli, "data", "schedule", "rm", "eod")
    assert "eod" not in invoke(cli, "data", "schedule", "ls")


def test_bad_input_is_refused_naming_the_fix(cli: CliRunner) -> None:
    def refused(*args: str) -> str:
        done = cli.invoke(app, ["data", "schedule", *args])
        assert done.exit_code != 0
        return str(done.exception) + done.output

    assert "five fields" in refused("add", "eod", "--vendor", "yahoo", "--symbols", "AAPL", "--cron", "daily")
    assert "vendor" in refused("add", "eod", "--vendor", "bloomberg", "--symbols", "AAPL", "--cron", "0 18 * * *")
    assert "data schedule ls" in refused("rm", "nothing")
    invoke(cli, "data", "schedule", "add", "eod", "--vendor", "yahoo", "--symbols", "AAPL", "--cron", "0 18 * * *")
    assert "remove it first" in refused("add", "eod", "--vendor", "yahoo", "--symbols", "AAPL", "--cron", "0 19 * * *")
    kept = IngestBook(JobService.from_settings(load_settings()).db).list()
    assert [(r.job.name, r.job.trigger.cron) for r in kept] == [
        ("eod", "0 18 * * *")
    ]  # the refused add changed nothing
