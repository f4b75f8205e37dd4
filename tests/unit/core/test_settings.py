"""Settings come from QUANTFLEET_* variables; bad values name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantfleet.core.errors import ConfigError
from quantfleet.core.settings import load_settings
from quantfleet.core.types import Frequency


def test_defaults_live_under_dot_quantfleet(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QUANTFLEET_HOME", "QUANTFLEET_DATA_URL", "QUANTFLEET_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.resolved_data_url == str(Path(".quantfleet") / "data")
    assert settings.resolved_cache_dir == Path(".quantfleet") / "cache"
    assert settings.cache_threshold == 0.8


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTFLEET_DATA_URL", "s3://bucket/market")
    monkeypatch.setenv("QUANTFLEET_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("QUANTFLEET_CACHE_CAPACITY_GB", "2")
    settings = load_settings()
    assert settings.resolved_data_url == "s3://bucket/market"
    assert settings.s3_endpoint_url == "http://127.0.0.1:9000"
    assert settings.cache_capacity_bytes == 2 * 1024**3


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTFLEET_CACHE_CAPACITY_GB", "-1")
    with pytest.raises(ConfigError, match="QUANTFLEET_CACHE_CAPACITY_GB"):
        load_settings()


def test_frequency_parsing() -> None:
    assert Frequency.parse("daily") is Frequency.DAILY
    assert Frequency.parse("1min") is Frequency.MINUTE_1
    with pytest.raises(ValueError, match="use one of 1m"):
        Frequency.parse("2w")
