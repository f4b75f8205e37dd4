"""The README's Python examples run as written, against the demo's data layout."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from quantfleet.data import MarketDataStore
from quantfleet.data.ingest.synthetic import synthetic_bars

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.fixture
def demo_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Build a store like the demo's: five snapshots, AAA and BBB daily bars with actions."""
    monkeypatch.chdir(tmp_path)
    store = MarketDataStore(".quantfleet/data")
    data = synthetic_bars(["AAA", "BBB"], start=date(2023, 1, 1), end=date(2024, 12, 31))
    store.ingest_bars([data.bars], frequency="1d")
    store.ingest_corporate_actions(data.actions)
    assert data.instruments is not None
    store.ingest_instruments(data.instruments)
    store.ingest_bars(
        [synthetic_bars(["AAA"], start=date(2024, 1, 1), end=date(2024, 1, 31), frequency="1m").bars],
        frequency="1m",
    )
    store.tag("demo")
    assert store.latest() == 3
    store.ingest_instruments(data.instruments)
    return tmp_path


def test_readme_has_the_two_quickstart_commands() -> None:
    text = README.read_text()
    quickstart = text.split("## Quickstart", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^make \w+", quickstart, flags=re.M)
    assert commands == ["make demo", "make test"]


@pytest.mark.parametrize("index", range(2))
def test_python_examples_run(demo_layout: Path, index: int, capsys: pytest.CaptureFixture[str]) -> None:
    blocks = python_blocks()
    assert len(blocks) == 2
    exec(compile(blocks[index], f"README.md python block {index}", "exec"), {})
    printed = capsys.readouterr().out
    assert "AAA" in printed if index == 1 else printed.startswith("4 ")
