"""``quantfleet api`` hands uvicorn the app factory by name; the factory builds the app from the environment."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from quantfleet.cli.api import APP_FACTORY, api


def test_the_command_serves_the_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    app = typer.Typer()
    app.command("api")(api)
    app.command("other")(lambda: None)
    result = CliRunner().invoke(app, ["api", "--host", "0.0.0.0", "--port", "9001"])
    assert result.exit_code == 0, result.output
    (args, kw), *_ = calls
    assert args == (APP_FACTORY,)
    assert kw["factory"] is True
    assert (kw["host"], kw["port"]) == ("0.0.0.0", 9001)


def test_the_factory_reads_settings_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTFLEET_HOME", str(tmp_path / "home"))
    module, name = APP_FACTORY.split(":")
    factory = getattr(importlib.import_module(module), name)
    app = factory()
    assert app.openapi()["info"]["title"] == "quantfleet"
