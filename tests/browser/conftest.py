"""Real-browser tests: headless Chromium (Debian's) opens report pages with the network cut off.

One browser per test module. Without /usr/bin/chromium the tests skip, with
the command that installs it; under ``CI=true`` they fail instead.
Screenshots go to ``.quantfleet/test-artifacts/`` at the repository root
(ignored by git); each test prints the path it wrote.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

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
