"""Where the market-data store lives: a local folder or an ``s3://`` prefix.

:class:`StorageOptions` turns one endpoint description into the options each
client needs (delta-rs for tables, fsspec for plain files), and
:func:`storage_errors` turns their connection failures into
:class:`~quantfleet.core.errors.StorageUnavailable` with a message that names
the endpoint and the fix.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

from quantfleet.core.errors import StorageUnavailable

__all__ = ["StorageOptions", "is_remote", "normalize_url", "storage_errors"]

_UNREACHABLE = (
    "connection refused",
    "connect error",
    "error trying to connect",
    "dns error",
    "timed out",
    "timeout",
    "could not connect",
    "failed to connect",
    "max retries",
    "endpoint",
    "nosuchbucket",
    "bucket does not exist",
    "the specified bucket does not exist",
)


def is_remote(url: str) -> bool:
    """Return whether ``url`` names an object store rather than a local path."""
    return "://" in url and not url.startswith("file://")


def normalize_url(url: str) -> str:
    """Return ``url`` without a trailing slash; local paths become absolute."""
    if url.startswith("file://"):
        url = url[len("file://") :]
    if is_remote(url):
        return url.rstrip("/")
    return str(Path(url).expanduser().resolve())


@dataclass(frozen=True, kw_only=True)
class StorageOptions:
    """How to reach an S3-compatible endpoint; ignored for local paths.

    Credentials are not held here: both clients read the standard
    ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` variables themselves.
    """

    endpoint_url: str | None = None
    region: str = "us-east-1"
    # A single writer per table is quantfleet's model (ingest is one process);
    # S3 has no atomic rename, so delta-rs must be told that is acceptable.
    allow_unsafe_rename: bool = True
    timeout_s: float = 10.0
    max_retries: int = 2

    def delta(self, url: str) -> dict[str, str]:
        """Return delta-rs ``storage_options`` for a table under ``url``."""
        if not is_remote(url):
            return {}
        opts = {
            "AWS_REGION": self.region,
            "AWS_S3_ALLOW_UNSAFE_RENAME": str(self.allow_unsafe_rename).lower(),
            "timeout": f"{self.timeout_s:g}s",
            "connect_timeout": f"{self.timeout_s:g}s",
            "max_retries": str(self.max_retries),
            "retry_timeout": f"{self.timeout_s * (self.max_retries + 1):g}s",
        }
        if self.endpoint_url:
            opts["AWS_ENDPOINT_URL"] = self.endpoint_url
            if self.endpoint_url.startswith("http://"):
                opts["AWS_ALLOW_HTTP"] = "true"
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            if os.environ.get(name):
                opts[name] = os.environ[name]
        return opts

    def filesystem(self, url: str) -> fsspec.AbstractFileSystem:
        """Return an fsspec filesystem for ``url`` (local or S3)."""
        if not is_remote(url):
            return fsspec.filesystem("file")
        protocol = url.split("://", 1)[0]
        kwargs: dict[str, Any] = {}
        if protocol in ("s3", "s3a"):
            protocol = "s3"
            client: dict[str, Any] = {"region_name": self.region}
            if self.endpoint_url:
                client["endpoint_url"] = self.endpoint_url
            kwargs = {
                "client_kwargs": client,
                "config_kwargs": {
                    "connect_timeout": self.timeout_s,
                    "read_timeout": self.timeout_s,
                    "retries": {"max_attempts": self.max_retries + 1},
                },
                "skip_instance_cache": True,
            }
        return fsspec.filesystem(protocol, **kwargs)

    def describe(self, url: str) -> str:
        """Return a short description of where ``url`` lives, for messages."""
        if not is_remote(url):
            return url
        return f"{url} (endpoint {self.endpoint_url or 'AWS default'})"


@contextlib.contextmanager
def storage_errors(url: str, options: StorageOptions) -> Iterator[None]:
    """Re-raise connection failures under ``url`` as :class:`StorageUnavailable`."""
    try:
        yield
    except StorageUnavailable:
        raise
    except Exception as exc:  # delta-rs, botocore and aiohttp raise many kinds
        text = str(exc).lower()
        if is_remote(url) and any(marker in text for marker in _UNREACHABLE):
            first_line = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise StorageUnavailable(
                f"cannot reach the market-data store at {options.describe(url)}: {first_line}. "
                "Check that the S3 server is running and that QUANTFLEET_S3_ENDPOINT_URL, "
                "QUANTFLEET_DATA_URL and the AWS credentials are right."
            ) from exc
        raise
