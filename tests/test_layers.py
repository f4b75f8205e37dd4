"""The layering of ../shared/DESIGN.md holds: import-linter's contracts (pyproject.toml) pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_public_api_is_pinned() -> None:
    import quantfleet

    assert sorted(quantfleet.__all__) == [
        "Adjustment",
        "Frequency",
        "InfrastructureError",
        "QuantfleetError",
        "Strategy",
        "UserError",
        "__version__",
    ]
