"""The README's client example runs as written against a live server and a worker."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from quantfleet.dispatch.worker import Worker

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text()
(EXAMPLE,) = [b for b in re.findall(r"```py\n(.*?)```", README, flags=re.S) if "quantfleet.client" in b]


def test_the_readme_client_example_runs(
    url: str, tokens: dict[str, str], worker: Worker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    (tmp_path / "out").mkdir()
    stop = threading.Event()
    serving = threading.Thread(target=worker.serve, args=(stop,))
    serving.start()
    try:
        code = EXAMPLE.replace("http://127.0.0.1:8000", url)
        exec(compile(code, "README.md client example", "exec"), {"token": tokens["alice"]})
    finally:
        stop.set()
        serving.join(timeout=60)
    printed = capsys.readouterr().out
    assert "succeeded" in printed
    assert (tmp_path / "out" / "equity.parquet").read_bytes()[:4] == b"PAR1"
