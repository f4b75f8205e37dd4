"""The dashboard end to end in headless Chromium: a real API, worker and dashboard on loopback, started here.

Sign in, submit the example strategy through the form, watch it go from
queued to succeeded, see its equity chart drawn, compare two runs, cancel a
running job, and no console error on the way. Screenshots go to the
browser tests' artifacts folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from quantfleet.client import Client
from quantfleet.core.settings import Settings
from quantfleet.jobs import JobService
from quantfleet.testing.jobs import tiny_market
from quantfleet.users import UserService

Stack = Any  # conftest.Stack: where the API and the dashboard answer, and the token
Session = Any  # conftest.Session: a signed-in page and the console errors seen on it
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "sma_crossover.py"
expect.set_options(timeout=30_000)  # the first chart waits for plotly.js to load, slow on a busy machine
SLOW = "import time\n\n\ndef run(ctx, seconds: float = 120.0):\n    time.sleep(seconds)\n"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_runner: Callable[..., Any]) -> Iterator[Stack]:
    """Start ``quantfleet api``, ``quantfleet worker`` and ``quantfleet web`` on a fresh home; stop them after."""
    home = tmp_path_factory.mktemp("dashboard") / "home"
    settings = Settings(home=home)
    tiny_market(settings)
    users = UserService(JobService.from_settings(settings).db)
    users.add_user("alice")
    token = users.create_token("alice", label="browser")[0]
    with stack_runner(home, token) as running:
        yield running


@pytest.fixture
def session(sign_in: Callable[..., Any], stack: Stack) -> Iterator[Session]:
    """Return a signed-in page on the dashboard, recording console errors."""
    with sign_in(stack) as made:
        yield made


def _submit(stack: Stack, source: Path, **params: object) -> str:
    with Client(stack.api, stack.token) as qf:
        return qf.submit_backtest(source, symbols=["AAA", "BBB"], params=params).id


def _finished(stack: Stack, job_id: str) -> None:
    with Client(stack.api, stack.token) as qf:
        job = qf.wait(job_id, poll=0.2, timeout=90)
    assert job.state == "succeeded", job.error


def pick(page: Page, dropdown: str, *values: str) -> None:
    """Choose ``values`` in a Dash dropdown by typing into its search box and clicking each match."""
    page.locator(dropdown).click()
    for value in values:
        page.locator(".dash-dropdown-search").fill(value)
        page.locator(f".dash-dropdown-option:has(input[value='{value}'])").click()
    page.keyboard.press("Escape")


def test_a_wrong_token_is_refused_with_a_message(browser: Browser, stack: Stack) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(stack.web + "/")
    page.locator("#signin-token").fill("qf_not-a-token")
    page.locator("#signin-submit").click()
    expect(page.locator("#signin-message")).to_contain_text("sign in again")
    expect(page.locator("#qf-queue-depth")).to_have_count(0)
    context.close()


def test_submit_the_example_and_watch_it_succeed(session: Session, stack: Stack) -> None:
    page = session.page
    page.locator("#qf-nav-submit").click()
    page.locator("#submit-upload input[type=file]").set_input_files(str(EXAMPLE))
    expect(page.locator("#submit-params-table")).to_contain_text("fast")
    pick(page, "#submit-symbols", "AAA", "BBB")
    page.locator("#submit-params-table input").first.fill("5")
    page.locator("#submit-button").click()
    expect(page.locator("#detail-title")).to_be_visible()
    title = page.locator("#detail-title")
    expect(title).to_contain_text("succeeded", timeout=90_000)
    expect(page.locator("#detail-equity .main-svg").first).to_be_visible()
    traces = page.evaluate("document.querySelector('#detail-equity .js-plotly-plot').data.length")
    assert traces == 1
    expect(page.locator("#detail-source")).to_contain_text("class SmaCross")
    expect(page.locator("#detail-metrics")).to_contain_text("Sharpe ratio")
    session.screenshot("dashboard-detail.png")
    page.locator("#qf-nav-jobs").click()
    expect(page.locator("#jobs-table")).to_contain_text("sma_crossover.py")
    expect(page.locator("#jobs-table")).to_contain_text("succeeded")
    session.screenshot("dashboard-jobs.png")
    assert session.errors == []


def test_compare_two_runs(session: Session, stack: Stack) -> None:
    first, second = _submit(stack, EXAMPLE, fast=5), _submit(stack, EXAMPLE, fast=8)
    _finished(stack, first)
    _finished(stack, second)
    page = session.page
    page.goto(f"{stack.web}/compare?ids={first},{second}")
    expect(page.locator("#compare-equity .main-svg").first).to_be_visible()
    assert page.evaluate("document.querySelector('#compare-equity .js-plotly-plot').data.length") == 2
    expect(page.locator("#compare-metrics")).to_contain_text("Total return")
    session.screenshot("dashboard-compare.png")
    assert session.errors == []


def test_cancel_a_running_job(session: Session, stack: Stack, tmp_path: Path) -> None:
    slow = tmp_path / "slow.py"
    slow.write_text(SLOW)
    job_id = _submit(stack, slow)
    page = session.page
    page.goto(f"{stack.web}/jobs/{job_id}")
    expect(page.locator("#detail-title")).to_contain_text("running", timeout=60_000)
    page.locator("#detail-cancel").click()
    expect(page.locator("#detail-title")).to_contain_text("cancelled", timeout=30_000)
    session.screenshot("dashboard-cancelled.png")
    assert session.errors == []


def test_the_data_page_shows_the_catalog_and_a_price_chart(session: Session, stack: Stack) -> None:
    page = session.page
    page.locator("#qf-nav-data").click()
    expect(page.locator("#data-symbol-table")).to_contain_text("AAA")
    pick(page, "#data-symbol", "AAA|1d")
    expect(page.locator("#data-price-chart .main-svg").first).to_be_visible()
    session.screenshot("dashboard-data.png")
    assert session.errors == []


def test_a_failed_job_shows_its_error_and_traceback_first(session: Session, stack: Stack, tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def run(ctx):\n    raise ValueError('the signal is missing')\n")
    job_id = _submit(stack, broken)
    with Client(stack.api, stack.token) as qf:
        assert qf.wait(job_id, poll=0.2, timeout=90).state == "failed"
    page = session.page
    page.goto(f"{stack.web}/jobs/{job_id}")
    expect(page.locator("#detail-error-summary")).to_contain_text("the signal is missing")
    expect(page.locator("#detail-traceback")).to_contain_text("broken.py")
    expect(page.locator("#detail-cancel")).to_be_disabled()
    failure_top = page.locator("#detail-failure").bounding_box()
    log_top = page.locator("#detail-log-card").bounding_box()
    assert failure_top is not None
    assert log_top is not None
    assert failure_top["y"] < log_top["y"]
    session.screenshot("dashboard-failed.png")
    assert session.errors == []
