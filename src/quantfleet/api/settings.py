"""Settings of the HTTP API: limits on what a request may carry, read once at start and validated.

Every limit has a sane default and an environment variable (``QUANTFLEET_API_<NAME>``);
a refusal names the limit it hit (413 or 422 problem).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ApiSettings"]


class ApiSettings(BaseSettings):
    """Limits and knobs of the HTTP API; unknown fields are refused."""

    model_config = SettingsConfigDict(env_prefix="QUANTFLEET_API_", extra="forbid", frozen=True)

    max_upload_bytes: int = Field(default=5 * 1024 * 1024, gt=0, description="Largest strategy upload (file or zip).")
    max_archive_members: int = Field(default=200, gt=0, description="Most members a zip archive may list.")
    max_unpacked_bytes: int = Field(
        default=20 * 1024 * 1024, gt=0, description="Largest total unpacked size a zip archive may declare."
    )
    max_spec_bytes: int = Field(default=256 * 1024, gt=0, description="Largest 'spec' JSON part.")
    max_params: int = Field(default=100, gt=0, description="Most strategy parameters (and grid entries) in a spec.")
    max_symbols: int = Field(default=1000, gt=0, description="Most symbols in a spec.")
    max_symbol_length: int = Field(default=32, gt=0, description="Longest symbol.")
    max_param_value_bytes: int = Field(default=1024, gt=0, description="Largest parameter value, as JSON.")
    idempotency_retention_hours: float = Field(
        default=24.0, gt=0, description="How long an Idempotency-Key's stored response is replayed."
    )
    log_follow_poll_seconds: float = Field(default=0.5, gt=0, description="How often a followed log is re-read.")
    retry_after_seconds: int = Field(default=5, gt=0, description="Retry-After sent with a 503.")
