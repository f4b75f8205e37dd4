"""Creating a paper deployment through the dashboard's form in headless Chromium, over ``quantfleet api`` and
``quantfleet web`` on loopback: the form's own checks, an API refusal naming its field, then the new
deployment's page. Screenshots go to the browser tests' artifacts folder; the browser logs no error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from quantfleet.client import Client
from quantfleet.core.settings import Settings
from quantfleet.jobs import JobService
from quantfleet.testing.jobs import tiny_market
from quantfleet.users import UserService

Stack = Any  # conftest.Stack: where the API and the dashboard answer, and the token
Session = Any  # conftest.Session: a signed-in page and the console errors seen on it
STRATEGY = "def run(ctx, size: int = 10):\n    ctx.order('AAA', size)\n"
expect.set_options(timeout=30_000)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, stack_runner: Callable[..., Any]) -> Iterator[Stack]:
    """Start ``quantfleet api`` and ``quantfleet web`` on a fresh home with a quarter of bars; stop them after."""
    home = tmp_path_factory.mktemp("newdeployment") / "home"
    settings = Settings(home=home)
    tiny_market(settings)
    users = UserService(JobService.from_settings(settings).db)
    users.add_user("alice")
    token = users.create_token("alice", label="browser")[0]
    with stack_runner(home, token, worker=False) as running:
        yield running


@pytest.fixture
def session(sign_in: Callable[..., Any], stack: Stack) -> Iterator[Session]:
    """Return a signed-in page on the dashboard, recording console errors."""
    with sign_in(stack) as made:
        yield made


def test_a_paper_deployment_is_created_through_the_form(session: Session, stack: Stack, tmp_path: Path) -> None:
    page = session.page
    source = tmp_path / "sizer.py"
    source.write_text(STRATEGY)

    page.locator("#qf-nav-deployments").click()
    expect(page.locator("#deployments-message")).to_contain_text("No deployments yet")
    page.locator("#deployments-new").click()
    expect(page.locator("h1")).to_have_text("New deployment")
    assert page.url.endswith("/deployments/new")

    create = page.locator("#newdep-button")
    create.click()
    problems = page.locator("#newdep-problems")
    expect(problems).to_contain_text("Strategy file: upload the strategy's .py file first")
    expect(problems).to_contain_text("Symbols: give at least one")
    expect(problems).to_contain_text("Cron expression: give one")
    session.screenshot("newdeployment-empty.png")

    page.locator("#newdep-upload input[type=file]").set_input_files(str(source))
    expect(page.locator("#newdep-file-info")).to_contain_text("sizer.py")
    expect(page.locator("#newdep-params-table")).to_contain_text("size")
    page.locator("#newdep-params-table input").first.fill("25")
    page.locator("#newdep-symbols").fill("AAA, BBB")
    page.locator("#newdep-cron").fill("61 10 * * MON-FRI")
    page.locator("#newdep-account").fill("main")
    page.locator("#newdep-max_position").fill("100")
    page.locator("#newdep-max_orders_per_day").fill("2.5")
    create.click()
    expect(problems).to_have_text("Max orders per day: '2.5' is not a whole number; give e.g. 20 or leave it blank")

    page.locator("#newdep-max_orders_per_day").fill("4")
    create.click()  # the form passes it; the API's cron check refuses minute 61 and names the field
    expect(problems).to_contain_text("The API refused the deployment (HTTP 422)")
    expect(problems).to_contain_text("Cron expression: '61 10 * * MON-FRI' is not a cron expression")
    session.screenshot("newdeployment-refused.png")
    with Client(stack.api, stack.token) as qf:
        assert qf.deployments() == []

    page.locator("#newdep-cron").fill("0 10 * * MON-FRI")
    create.click()
    expect(page.locator("#deployment-status")).to_contain_text("active")
    dep_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    expect(page.locator("#deployment-facts")).to_contain_text("cron 0 10 * * MON-FRI on XNYS sessions")
    session.screenshot("newdeployment-created.png")
    with Client(stack.api, stack.token) as qf:
        (listed,) = qf.deployments()
    assert listed["id"] == dep_id
    assert listed["name"] == "sizer"
    assert listed["account"] == "alice:main"
    assert listed["universe"] == ["AAA", "BBB"]

    page.locator("#qf-nav-deployments").click()
    expect(page.locator("#deployments-table")).to_contain_text("sizer")
    session.screenshot("newdeployment-list.png")
    assert session.errors == []


def test_the_form_fits_a_laptop_window(sign_in: Callable[..., Any], stack: Stack) -> None:
    with sign_in(stack, width=1024, height=768) as session:
        session.page.goto(stack.web + "/deployments/new")
        expect(session.page.locator("#newdep-button")).to_be_visible()
        wider = session.page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        session.screenshot("newdeployment-1024.png")
        assert wider == 0
        assert session.errors == []
