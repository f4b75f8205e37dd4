"""The job service from settings: SQLite and a local object folder under <home> by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantfleet.core.errors import ConfigError
from quantfleet.core.settings import load_settings
from quantfleet.jobs import JobService
from quantfleet.testing import FrozenClock
from quantfleet.testing.databases import head_revision


def test_defaults_live_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QUANTFLEET_DATABASE_URL", "QUANTFLEET_OBJECTS_URL", "QUANTFLEET_LEASE_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QUANTFLEET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("QUANTFLEET_MAX_ATTEMPTS", "5")
    settings = load_settings()
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'home' / 'quantfleet.db'}"
    assert settings.resolved_objects_url == str(tmp_path / "home" / "objects")
    assert (settings.lease_seconds, settings.max_attempts) == (30.0, 5)
    service = JobService.from_settings(settings, clock=FrozenClock())
    try:
        assert service.db.revision() == head_revision()  # migrated at start
        assert service.max_attempts == 5
        ref = service.put_code(b"x = 1\n", "x.py")
        assert (tmp_path / "home" / "objects" / "code" / ref.sha256).read_bytes() == b"x = 1\n"
    finally:
        service.db.dispose()


def test_bad_job_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTFLEET_MAX_ATTEMPTS", "0")
    with pytest.raises(ConfigError, match="QUANTFLEET_MAX_ATTEMPTS"):
        load_settings()
