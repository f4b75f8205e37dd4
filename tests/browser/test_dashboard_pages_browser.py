"""The dashboard's sweep, walk-forward and deployment pages in headless Chromium, a 2,000-job list, and the
layout at a laptop's and a wide monitor's width.

One home for the module: two years of daily bars, a grid sweep and a walk-forward
submitted through the API and run by a worker, a paper deployment that has run
three times through the scheduler, and then 2,000 queued backtests (no worker
runs them). ``quantfleet api`` and ``quantfleet web`` serve it on loopback.
Every test saves screenshots to the artifacts folder and asserts that the
browser logged no error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from quantfleet.client import Client
from quantfleet.core.settings import Settings
from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars
from quantfleet.jobs import JobService, JobSpec
from quantfleet.testing.live import traded_paper_deployment
from quantfleet.testing.workers import unsandboxed_worker
from quantfleet.users import UserService

Stack = Any  # conftest.Stack: where the API and the dashboard answer, and the token
Session = Any  # conftest.Session: a signed-in page and the console errors seen on it
SMA = Path(__file__).resolve().parents[2] / "examples" / "sma_crossover.py"
QUEUED = 2_000
expect.set_options(timeout=30_000)  # the first chart waits for plotly.js to load, slow on a busy machine

# The main layout may not be wider than the window: a wide table scrolls inside its own panel instead.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const main = document.querySelector('.qf-main');
  const wide = Array.from(document.querySelectorAll('.qf-main > *, .qf-card, .qf-header'))
    .filter(e => e.getBoundingClientRect().right > width + 1)
    .map(e => (e.id || e.className) + ' ' + Math.round(e.getBoundingClientRect().right));
  return {page: document.documentElement.scrollWidth - width, main: main.scrollWidth - main.clientWidth, wide};
}"""


@dataclass
class Pages:
    stack: Stack
    sweep: str
    walk: str
    child: str
    deployment: str


def _queue(settings: Settings, snapshot: int, n: int) -> None:
    service = JobService.from_settings(settings)
    code = service.put_code(b"def run(ctx, n: int = 0):\n    pass\n", "hold.py")
    for i in range(n):
        service.submit(JobSpec(code=code, universe=("AAA",), snapshot=snapshot, params={"n": i}, owner="alice"))
    service.db.dispose()


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory, stack_runner: Callable[..., Any]) -> Iterator[Pages]:
    """Return the running stack and the ids of a finished sweep, walk-forward, sweep child and deployment."""
    home = tmp_path_factory.mktemp("pages") / "home"
    settings = Settings(home=home)
    data = synthetic_bars(["AAA", "BBB"], start=date(2022, 1, 1), end=date(2024, 6, 28), actions=False)
    store = MarketDataStore.from_settings(settings)
    store.ingest_bars([data.bars], frequency="1d", source="test")
    snapshot = int(store.resolve(None))
    service = JobService.from_settings(settings)
    users = UserService(service.db)
    users.add_user("alice")
    token = users.create_token("alice", label="browser")[0]
    deployment = traded_paper_deployment(settings, owner="alice")
    with stack_runner(home, token, worker=False) as stack:
        with Client(stack.api, token) as qf:
            period = {"start": "2022-01-01", "end": "2023-12-31"}
            sweep = qf.submit_sweep(SMA, symbols=["AAA", "BBB"], grid=["fast=5:15:5", "slow=20,40"], **period)
            walk = qf.submit_walkforward(
                SMA, symbols=["AAA", "BBB"], grid=["fast=5,10", "slow=20,40"], train="6m", test="3m", **period
            )
        worker = unsandboxed_worker(settings, slots=2, service=service)
        try:
            worker.run_until_empty(timeout=300)
        finally:
            worker.shutdown(grace=0)
        with Client(stack.api, token) as qf:
            done = qf.get(sweep.id)
            assert done.state == "succeeded", done.error
            assert qf.get(walk.id).state == "succeeded"
        _queue(settings, snapshot, QUEUED)
        yield Pages(stack, sweep.id, walk.id, (done.children or [])[0].id, deployment)


@pytest.fixture
def session(sign_in: Callable[..., Any], pages: Pages) -> Iterator[Session]:
    """Return a signed-in page at 1440 x 900."""
    with sign_in(pages.stack) as made:
        yield made


def _plotly(page: Page, selector: str) -> list[dict[str, object]]:
    expect(page.locator(f"{selector} .main-svg").first).to_be_visible()
    traces: list[dict[str, object]] = page.evaluate(
        f"""Array.from(document.querySelector('{selector} .js-plotly-plot')._fullData)
            .map(t => ({{type: t.type, name: t.name, points: t._length ?? (t.x || []).length}}))"""
    )
    return traces


def test_the_2000_job_list_shows_one_page_at_a_time(session: Session, pages: Pages) -> None:
    page = session.page
    started = time.perf_counter()
    page.goto(pages.stack.web + "/")
    expect(page.locator("#jobs-pageinfo")).to_have_text("Page 1 · 25 jobs")
    assert time.perf_counter() - started < 15
    expect(page.locator("#qf-queue-depth")).to_have_text(str(QUEUED))
    rows = page.locator("#jobs-table tbody tr:has(td)")
    expect(rows).to_have_count(25)
    first = rows.first.inner_text()
    page.locator("#jobs-next").click()
    expect(page.locator("#jobs-pageinfo")).to_have_text("Page 2 · 25 jobs")
    expect(rows.first).not_to_have_text(first)
    expect(rows).to_have_count(25)
    session.screenshot("pages-jobs-2000.png")
    page.locator("#jobs-prev").click()
    expect(page.locator("#jobs-pageinfo")).to_have_text("Page 1 · 25 jobs")
    assert session.errors == []


def test_a_sweep_page_shows_leaderboard_heat_map_and_child_links(session: Session, pages: Pages) -> None:
    page = session.page
    page.goto(f"{pages.stack.web}/jobs/{pages.sweep}")
    expect(page.locator("#detail-title")).to_contain_text("succeeded")
    expect(page.locator("#sweep-board tbody tr:has(td)")).to_have_count(6)
    (heat,) = _plotly(page, "#sweep-heat")
    assert heat["type"] == "heatmap"
    links = page.locator("#sweep-children a")
    expect(links).to_have_count(6)
    title = "document.querySelector('#sweep-heat .js-plotly-plot').data[0].colorbar.title.text"
    assert page.evaluate(title) == "sharpe"
    page.locator("#sweep-heat-metric").click()
    page.locator(".dash-dropdown-search").fill("total_return")
    page.locator(".dash-dropdown-option:has(input[value='total_return'])").click()
    page.keyboard.press("Escape")
    page.wait_for_function(f"() => {title} === 'total_return'")
    session.screenshot("pages-sweep.png")
    links.first.click()
    expect(page.locator("#detail-title")).to_contain_text("Job ")
    assert "/jobs/" in page.url
    assert pages.sweep not in page.url
    expect(page.locator("#detail-header")).to_contain_text("Sweep")  # the child links back to its sweep
    assert session.errors == []


def test_a_walkforward_page_compares_in_and_out_of_sample(session: Session, pages: Pages) -> None:
    page = session.page
    page.goto(f"{pages.stack.web}/jobs/{pages.walk}")
    expect(page.locator("#detail-title")).to_contain_text("succeeded")
    bars = _plotly(page, "#sweep-walkforward")
    assert [(b["type"], b["name"]) for b in bars] == [("bar", "In sample"), ("bar", "Out of sample")]
    assert bars[0]["points"] == bars[1]["points"]
    assert int(str(bars[0]["points"])) >= 4  # one pair of bars per window
    (oos,) = _plotly(page, "#sweep-oos")
    assert int(str(oos["points"])) > 100
    _plotly(page, "#sweep-heat")
    expect(page.locator("#sweep-heat-card")).to_contain_text("last window")
    expect(page.locator("#sweep-board")).to_contain_text("window")
    session.screenshot("pages-walkforward.png")
    assert session.errors == []


def test_a_deployment_page_pauses_resumes_kills_and_stops(session: Session, pages: Pages) -> None:
    page = session.page
    page.locator("#qf-nav-deployments").click()
    expect(page.locator("#deployments-table")).to_contain_text("buyer")
    expect(page.locator("#deployments-table")).to_contain_text("cron 0 10 * * MON-FRI")
    session.screenshot("pages-deployments.png")
    page.locator("#deployments-table a", has_text="buyer").click()
    status = page.locator("#deployment-status")
    expect(status).to_have_text("active")
    expect(page.locator("#deployment-facts")).to_contain_text("2024-03-06 15:00 UTC")
    positions = page.locator("#deployment-positions")
    expect(positions).to_contain_text("AAA")
    expect(positions.locator("tbody tr:has(td)")).to_have_count(2)
    expect(page.locator("#deployment-orders")).to_contain_text("filled")
    lines = _plotly(page, "#deployment-pnl")
    assert [t["name"] for t in lines] == ["Equity", "Cash"]
    expect(page.locator("#deployment-resume")).to_be_disabled()
    session.screenshot("pages-deployment.png")

    page.locator("#deployment-pause").click()
    expect(page.locator("#deployment-message")).to_contain_text("Paused")
    expect(status).to_have_text("paused")
    expect(page.locator("#deployment-pause")).to_be_disabled()
    page.locator("#deployment-resume").click()
    expect(status).to_have_text("active")

    page.locator("#deployment-kill").click()
    expect(page.locator("#deployment-confirm")).to_be_visible()
    expect(page.locator("#deployment-confirm")).to_contain_text("Kill switch")
    expect(status).to_have_text("active")  # nothing happens before the confirmation
    page.locator("#deployment-flatten input").check()
    session.screenshot("pages-deployment-kill-confirm.png")
    page.locator("#deployment-confirm-yes").click()
    expect(page.locator("#deployment-message")).to_contain_text("positions sent to close")
    expect(page.locator("#deployment-confirm")).to_be_hidden()
    expect(status).to_have_text("paused")
    expect(page.locator("#deployment-facts")).to_contain_text("kill switch (flatten)")
    expect(page.locator("#deployment-orders")).to_contain_text("kill")

    page.locator("#deployment-stop").click()
    expect(page.locator("#deployment-confirm")).to_contain_text("cannot be resumed")
    expect(page.locator("#deployment-flatten")).to_be_hidden()
    page.locator("#deployment-confirm-no").click()
    expect(page.locator("#deployment-confirm")).to_be_hidden()
    expect(status).to_have_text("paused")
    page.locator("#deployment-stop").click()
    page.locator("#deployment-confirm-yes").click()
    expect(status).to_have_text("stopped")
    expect(page.locator("#deployment-facts")).to_contain_text("none (stopped)")
    for button in ("pause", "resume", "stop", "kill"):
        expect(page.locator(f"#deployment-{button}")).to_be_disabled()
    session.screenshot("pages-deployment-stopped.png")

    page.goto(f"{pages.stack.web}/deployments/{'0' * 32}")
    expect(page.locator("#deployment-message")).to_contain_text("no deployment")
    assert session.errors == []


@pytest.mark.parametrize(("width", "height"), [(1024, 768), (1280, 800), (1920, 1080)])
def test_no_page_is_wider_than_the_window(sign_in: Callable[..., Any], pages: Pages, width: int, height: int) -> None:
    waits = {
        "/": "#jobs-table tbody tr:has(td)",
        f"/jobs/{pages.child}": "#detail-equity .main-svg",
        f"/jobs/{pages.sweep}": "#sweep-heat .main-svg",
        "/deployments": "#deployments-table tbody tr:has(td)",
        f"/deployments/{pages.deployment}": "#deployment-pnl .main-svg",
    }
    names = dict(zip(waits, ("jobs", "backtest", "sweep", "deployments", "deployment"), strict=True))
    with sign_in(pages.stack, width=width, height=height) as session:
        for path, ready in waits.items():
            session.page.goto(pages.stack.web + path)
            expect(session.page.locator(ready).first).to_be_visible()
            overflow = session.page.evaluate(OVERFLOW)
            session.screenshot(f"pages-{width}-{names[path]}.png")
            assert overflow == {"page": 0, "main": 0, "wide": []}, (path, overflow)
        assert session.errors == []
