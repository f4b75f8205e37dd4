"""Settings: one object, read from ``QUANTFLEET_*`` environment variables at the edge.

Faces (CLI, API, workers) call :func:`load_settings` once and pass the values
down; nothing below them reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from quantfleet.core.errors import ConfigError

__all__ = ["LimitMaxima", "Settings", "load_settings"]

GIB = 1024**3
# Values of QUANTFLEET_SECRET_KEY seen in examples and templates; production refuses them.
_PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "change_me", "secret", "default", "dev", "quantfleet"})
_MIN_SECRET_CHARS = 32


class LimitMaxima(BaseModel):
    """The most one job may ask for, per limit (the admin's maxima; field names as in ``jobs.Limits``).

    Set each with ``QUANTFLEET_LIMITS_MAX__<NAME>`` (e.g. ``QUANTFLEET_LIMITS_MAX__MEMORY_MB=8192``);
    ``None``: no maximum. A submission above one is refused, naming the limit and its maximum.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    wall_time_s: float | None = Field(default=24 * 3600.0, gt=0)
    cpu_time_s: float | None = Field(default=None, gt=0)
    cpus: float | None = Field(default=4.0, gt=0)
    memory_mb: int | None = Field(default=16 * 1024, gt=0)
    processes: int | None = Field(default=4096, gt=0)
    open_files: int | None = Field(default=4096, gt=0)
    file_size_mb: int | None = Field(default=16 * 1024, gt=0)
    work_mb: int | None = Field(default=16 * 1024, gt=0)
    work_files: int | None = Field(default=1_000_000, gt=0)
    log_mb: float | None = Field(default=100.0, gt=0)
    artifact_files: int | None = Field(default=1000, gt=0)
    artifact_mb: int | None = Field(default=16 * 1024, gt=0)


class Settings(BaseSettings):
    """Every quantfleet setting, with the defaults of a one-machine setup."""

    model_config = SettingsConfigDict(
        env_prefix="QUANTFLEET_", frozen=True, extra="forbid", env_file=None, env_nested_delimiter="__"
    )

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
    worker_launcher: Literal["forkserver", "subprocess", "bubblewrap"] | None = Field(
        default=None,
        description="How a worker starts each job's child: bubblewrap (the sandbox: namespaces, no network, "
        "cgroup limits; the worker runs as root), or, only with QUANTFLEET_SANDBOX=trusted, forkserver (fast, "
        "not isolated) or subprocess. Default: bubblewrap, or forkserver when the sandbox is off.",
    )
    sandbox: Literal["on", "trusted"] = Field(
        default="on",
        description="on: every job runs in the sandbox, and a worker that cannot set it up takes no jobs. "
        "trusted: jobs run unsandboxed (a loud warning on every job); for one user on their own machine only, "
        "refused in production and with more than one user.",
    )
    limits_max: LimitMaxima = Field(
        default_factory=LimitMaxima,
        description="The most a job may ask for, per limit (QUANTFLEET_LIMITS_MAX__MEMORY_MB=8192, ...).",
    )
    sandbox_strict: bool = Field(
        default=False,
        description="The sandbox's seccomp strict mode: once a job's child has started, it may not exec a "
        "program or fork a process (threads still work; a sweep's own worker processes are refused).",
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker that carries job ids to the fleet: redis://host:6379/0 or "
        "amqp://user:pass@host:5672//. None: the local worker pool claims from the database.",
    )
    visibility_timeout: float = Field(
        default=86400.0,
        gt=0,
        description="Seconds before the broker re-delivers a message no worker acknowledged (Redis); "
        "keep it above the longest job's wall-clock limit (a late re-delivery is harmless, only wasted).",
    )
    sweep_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A job queued this long without being claimed has its id published again "
        "(a message lost while the broker was down).",
    )
    environment: Literal["development", "production"] = Field(
        default="development",
        description="production: servers refuse to start without a real secret key and a server database "
        "(see Settings.check_production).",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Secret of the servers (signing); from the environment only, never logged. "
        "Required in production: 32 or more random characters.",
    )

    @field_validator("calendar")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.strip()

    @property
    def resolved_launcher(self) -> Literal["forkserver", "subprocess", "bubblewrap"]:
        """Return the worker's launcher: the one set, else bubblewrap (sandbox on) or forkserver (trusted)."""
        if self.worker_launcher is not None:
            return self.worker_launcher
        return "bubblewrap" if self.sandbox == "on" else "forkserver"

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

    def check_production(self) -> None:
        """Refuse (with :class:`ConfigError`) a production server with a weak secret or the default database.

        Servers (API, workers, scheduler) call it once at start; in the
        development environment it checks nothing.
        """
        if self.environment != "production":
            return
        problems = []
        secret = self.secret_key.get_secret_value().strip() if self.secret_key is not None else ""
        if not secret:
            problems.append("QUANTFLEET_SECRET_KEY is not set")
        elif secret.lower() in _PLACEHOLDER_SECRETS or len(secret) < _MIN_SECRET_CHARS:
            problems.append(f"QUANTFLEET_SECRET_KEY is a placeholder or shorter than {_MIN_SECRET_CHARS} characters")
        if problems:
            problems[-1] += (
                " (set it to a random value, e.g. the output of "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        if self.sandbox == "trusted":
            problems.append(
                "QUANTFLEET_SANDBOX=trusted runs every job unsandboxed, which production (more than one "
                "user's code) forbids (unset it, and run workers as root with bubblewrap)"
            )
        default_db = f"sqlite:///{self.home / 'quantfleet.db'}"
        if self.database_url is None or self.database_url == default_db:
            problems.append(
                "QUANTFLEET_DATABASE_URL is not set, so the database is the default SQLite file "
                f"{self.home / 'quantfleet.db'} (set it to a server database, "
                "e.g. postgresql+psycopg://user:pass@host/quantfleet)"
            )
        if problems:
            raise ConfigError(
                "refusing to start in production (QUANTFLEET_ENVIRONMENT=production): "
                + "; ".join(problems)
                + ". For a local trial, set QUANTFLEET_ENVIRONMENT=development instead."
            )


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; raise :class:`ConfigError` naming a bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "QUANTFLEET_" + "__".join(str(p) for p in err["loc"]).upper()
            problems.append(f"{name}: {err['msg']}")
        raise ConfigError(
            "invalid settings: " + "; ".join(problems) + ". Fix or unset these variables "
            "(see the settings table in README.md)."
        ) from None
