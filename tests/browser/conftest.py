"""Real-browser tests: headless Chromium (Debian's) opens report pages with the network cut off, and the
dashboard over a real API (:func:`running_stack` starts ``quantfleet api``, ``web`` and maybe ``worker``).

One browser per test module. Without /usr/bin/chromium the tests skip, with
the command that installs it; under ``CI=true`` they fail instead.
Screenshots go to ``.quantfleet/test-artifacts/`` at the repository root
(ignored by git); each test prints the path it wrote.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect, sync_playwright

from quantfleet.testing.jobs import wait_until
from quantfleet.testing.servers import in_ci

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / ".quantfleet" / "test-artifacts"
RENDERED = """() => {
  const divs = Array.from(document.querySelectorAll('.qf-chart'));
  return divs.length > 0 && divs.every(d => d._fullLayout && d.querySelector('.main-svg'));
}"""


CHART_STATE = """() => Object.fromEntries(Array.from(document.querySelectorAll('.qf-chart')).map(d => [d.id, {
  traces: d.data.length, svgs: d.querySelectorAll('.main-svg').length, declared: Number(d.dataset.traces)}]))"""


@pytest.fixture(scope="session")
def samples() -> ModuleType:
    """Return the unit tests' synthetic-run builders (tests/unit/analytics/test_tearsheet.py), shared, not copied."""
    path = REPO / "tests" / "unit" / "analytics" / "test_tearsheet.py"
    spec = importlib.util.spec_from_file_location("quantfleet_tearsheet_samples", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Opened:
    """A page opened offline, with what went wrong on it."""

    page: Page
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def screenshot(self, name: str) -> Path:
        """Save a full-page screenshot under the artifacts folder and print where."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path

    def charts(self) -> dict[str, dict[str, int]]:
        """Return, per chart div id, the traces Plotly holds, the rendered SVG layers and the declared count."""
        state: dict[str, dict[str, int]] = self.page.evaluate(CHART_STATE)
        return state


def _file_only(route: Route) -> None:
    """Let file:// requests through and abort everything else."""
    if route.request.url.startswith("file:"):
        route.continue_()
    else:
        route.abort()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Return a headless Chromium, shared by the tests of one module."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing; install it with 'apt-get install chromium'"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def open_offline(browser: Browser) -> Iterator[Callable[[Path], Opened]]:
    """Return a function that opens a file with networking disabled and waits for every chart to render."""
    contexts = []

    def open_file(path: Path) -> Opened:
        context = browser.new_context(offline=True, viewport={"width": 1360, "height": 900})
        contexts.append(context)
        context.route(
            "**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort()
        )
        page = context.new_page()
        opened = Opened(page)
        page.on("console", lambda m: opened.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: opened.errors.append(f"page error: {e}"))
        page.on("request", lambda r: opened.requests.append(r.url))
        started = time.perf_counter()
        page.goto(path.resolve().as_uri(), wait_until="load")
        page.wait_for_function(RENDERED, timeout=60_000)
        opened.seconds = time.perf_counter() - started
        return opened

    yield open_file
    for context in contexts:
        context.close()


# -- the dashboard over a real API --------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    """Where the API and the dashboard answer, a signed-up user's token, and the home behind them."""

    api: str
    web: str
    token: str
    home: Path


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args} exited: {log.read_text()[-2000:]}")
        try:
            return httpx.get(url, timeout=1.0).status_code < 500
        except httpx.HTTPError:
            return False

    wait_until(up, timeout=60, what=f"{url} to answer")


@contextmanager
def running_stack(home: Path, token: str, *, worker: bool = True) -> Iterator[Stack]:
    """Start ``quantfleet api``, ``quantfleet web`` (and a 2-slot worker) on ``home``; stop them after."""
    api_port, web_port = free_port(), free_port()
    env = {**os.environ, "QUANTFLEET_HOME": str(home), "QUANTFLEET_WORKER_LAUNCHER": "forkserver"}
    cli = [sys.executable, "-m", "quantfleet.cli.app"]
    commands = {
        "api": [*cli, "api", "--port", str(api_port), "--log-level", "warning"],
        "web": [*cli, "web", "--port", str(web_port), "--api-url", f"http://127.0.0.1:{api_port}"],
    }
    if worker:
        commands["worker"] = [*cli, "worker", "--slots", "2", "--grace", "1"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, argv in commands.items():
            with (home.parent / f"{name}.log").open("wb") as log:  # the child keeps its own copy of the handle
                procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT))
        _wait_http(f"http://127.0.0.1:{api_port}/healthz", procs[0], home.parent / "api.log")
        _wait_http(f"http://127.0.0.1:{web_port}/", procs[1], home.parent / "web.log")
        yield Stack(f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{web_port}", token, home)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class Session:
    """A signed-in dashboard page and the console errors seen on it."""

    page: Page
    errors: list[str]

    def screenshot(self, name: str) -> Path:
        """Save a full-page screenshot under the artifacts folder and print where."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")
        return path


@contextmanager
def signed_in(browser: Browser, stack: Stack, *, width: int = 1440, height: int = 900) -> Iterator[Session]:
    """Yield a page signed in to the dashboard at a ``width`` x ``height`` viewport, recording console errors."""
    context: BrowserContext = browser.new_context(viewport={"width": width, "height": height})
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.goto(stack.web + "/")
        page.locator("#signin-token").fill(stack.token)
        page.locator("#signin-submit").click()
        expect(page.locator("#qf-queue-depth")).to_be_visible()
        assert stack.token not in page.url
        yield Session(page, errors)
    finally:
        context.close()


@pytest.fixture(scope="session")
def stack_runner() -> Callable[..., Any]:
    """Return :func:`running_stack`, for module-scoped stacks (test modules do not import conftest)."""
    return running_stack


@pytest.fixture
def sign_in(browser: Browser) -> Callable[..., Any]:
    """Return ``sign_in(stack, width=..., height=...)``: :func:`signed_in` on this module's browser."""

    def make(stack: Stack, **viewport: int) -> Any:
        return signed_in(browser, stack, **viewport)

    return make
