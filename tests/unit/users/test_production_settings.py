"""Production mode: servers refuse to start without a real secret key or with the default SQLite database."""

from __future__ import annotations

import pytest

from quantfleet.core.errors import ConfigError
from quantfleet.core.settings import load_settings

GOOD_SECRET = "x8Jq2mVn5pLr7tYw9zBc4dFg6hKs3aEu1oIi0"
PG = "postgresql+psycopg://qf:pw@db/quantfleet"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("QUANTFLEET_ENVIRONMENT", "QUANTFLEET_SECRET_KEY", "QUANTFLEET_DATABASE_URL", "QUANTFLEET_SANDBOX"):
        monkeypatch.delenv(name, raising=False)


def test_development_is_the_default_and_checks_nothing() -> None:
    settings = load_settings()
    assert (settings.environment, settings.secret_key) == ("development", None)
    settings.check_production()


def test_production_reads_the_environment_and_keeps_the_secret_out_of_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTFLEET_ENVIRONMENT", "production")
    monkeypatch.setenv("QUANTFLEET_SECRET_KEY", GOOD_SECRET)
    monkeypatch.setenv("QUANTFLEET_DATABASE_URL", PG)
    settings = load_settings()
    settings.check_production()
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == GOOD_SECRET
    assert GOOD_SECRET not in repr(settings)
    assert GOOD_SECRET not in str(settings.model_dump())


def test_production_without_a_secret_or_a_database_names_both_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTFLEET_ENVIRONMENT", "production")
    with pytest.raises(ConfigError) as caught:
        load_settings().check_production()
    message = str(caught.value)
    assert "QUANTFLEET_SECRET_KEY is not set" in message
    assert "QUANTFLEET_DATABASE_URL is not set" in message
    assert "secrets.token_urlsafe(32)" in message
    assert "postgresql+psycopg://" in message


@pytest.mark.parametrize("secret", ["changeme", "  ", "secret", "short-but-random-8f2"])
def test_production_refuses_a_placeholder_or_short_secret(secret: str) -> None:
    settings = load_settings(environment="production", secret_key=secret, database_url=PG)
    with pytest.raises(ConfigError, match="QUANTFLEET_SECRET_KEY"):
        settings.check_production()


def test_production_refuses_the_default_sqlite_file_even_when_spelled_out() -> None:
    settings = load_settings(environment="production", secret_key=GOOD_SECRET)
    default = settings.resolved_database_url
    for database_url in (None, default):
        with pytest.raises(ConfigError, match="QUANTFLEET_DATABASE_URL is not set") as caught:
            load_settings(
                environment="production", secret_key=GOOD_SECRET, database_url=database_url
            ).check_production()
        assert "SECRET_KEY" not in str(caught.value)


def test_a_bad_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTFLEET_ENVIRONMENT", "prod")
    with pytest.raises(ConfigError, match="QUANTFLEET_ENVIRONMENT"):
        load_settings()
