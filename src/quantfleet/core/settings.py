"""Settings: one object, read from ``QUANTFLEET_*`` environment variables at the edge.

Faces (CLI, API, workers) call :func:`load_settings` once and pass the values
down; nothing below them reads the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from quantfleet.core.errors import ConfigError

__all__ = ["Settings", "load_settings"]

GIB = 1024**3


class Settings(BaseSettings):
    """Every quantfleet setting, with the defaults of a one-machine setup."""

    model_config = SettingsConfigDict(env_prefix="QUANTFLEET_", frozen=True, extra="forbid", env_file=None)

    home: Path = Field(
        default=Path(".quantfleet"),
        description="Folder for everything quantfleet keeps locally.",
    )
    data_url: str | None = Field(
        default=None,
        description="Root of the market-data store: a path or s3://bucket/prefix. Default: <home>/data.",
    )
    cache_dir: Path | None = Field(
        default=None,
        description="Local cache of remote data files. Default: <home>/cache.",
    )
    cache_capacity_gb: float = Field(default=20.0, gt=0, description="Capacity of the local data cache, in GiB.")
    cache_threshold: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Evict least-recently-used files once the cache passes this share of its capacity.",
    )
    calendar: str = Field(default="XNYS", description="Default exchange calendar for ingest validation.")
    s3_endpoint_url: str | None = Field(
        default=None,
        description="S3-compatible endpoint (MinIO, moto, ...). Credentials come from the "
        "standard AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables.",
    )
    s3_region: str = Field(default="us-east-1", description="S3 region.")
    database_url: str | None = Field(
        default=None,
        description="Job metadata database (SQLAlchemy URL): sqlite:///path or "
        "postgresql+psycopg://user:pass@host/db. Default: sqlite:///<home>/quantfleet.db.",
    )
    objects_url: str | None = Field(
        default=None,
        description="Root of job objects (code, logs, artifacts): a path or s3://bucket/prefix. "
        "Default: <home>/objects.",
    )
    lease_seconds: float = Field(
        default=30.0, gt=0, description="A worker's lease on a running job; renewed by heartbeat."
    )
    max_attempts: int = Field(
        default=3, ge=1, description="Attempts before a job whose infrastructure keeps failing is dead."
    )

    @field_validator("calendar")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.strip()

    @property
    def resolved_data_url(self) -> str:
        """Return the market-data root, defaulting to ``<home>/data``."""
        return self.data_url or str(self.home / "data")

    @property
    def resolved_cache_dir(self) -> Path:
        """Return the cache folder, defaulting to ``<home>/cache``."""
        return self.cache_dir or self.home / "cache"

    @property
    def resolved_database_url(self) -> str:
        """Return the job database URL, defaulting to ``sqlite:///<home>/quantfleet.db``."""
        return self.database_url or f"sqlite:///{self.home / 'quantfleet.db'}"

    @property
    def resolved_objects_url(self) -> str:
        """Return the job objects root, defaulting to ``<home>/objects``."""
        return self.objects_url or str(self.home / "objects")

    @property
    def cache_capacity_bytes(self) -> int:
        """Return the cache capacity in bytes."""
        return int(self.cache_capacity_gb * GIB)


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; raise :class:`ConfigError` naming a bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "QUANTFLEET_" + "_".join(str(p) for p in err["loc"]).upper()
            problems.append(f"{name}: {err['msg']}")
        raise ConfigError(
            "invalid settings: " + "; ".join(problems) + ". Fix or unset these variables "
            "(see the settings table in README.md)."
        ) from None
