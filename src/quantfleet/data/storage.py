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
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

from quantfleet.core.errors import QuantfleetError, StorageUnavailable

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
)
_NO_BUCKET = ("nosuchbucket", "bucket does not exist")
# delta-rs colours its error chains: "Generic S3 error\n  \x1b[31m↳\x1b[0m ...".
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


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
        if protocol not in ("s3", "s3a"):
            return fsspec.filesystem(protocol)
        client: dict[str, Any] = {"region_name": self.region}
        if self.endpoint_url:
            client["endpoint_url"] = self.endpoint_url
        # fsspec keeps one instance per these arguments (and per process and
        # thread): building an S3 client for every data file read is slow.
        # Listings are not cached, so tags.json written by another process is
        # seen at once.
        fs = fsspec.filesystem(
            "s3",
            client_kwargs=client,
            config_kwargs={
                "connect_timeout": self.timeout_s,
                "read_timeout": self.timeout_s,
                "retries": {"mode": "standard", "total_max_attempts": self.max_retries + 1},
            },
            use_listings_cache=False,
        )
        # botocore retries each request (above); s3fs would retry every failed
        # call five more times on top, so an unreachable endpoint took minutes.
        fs.retries = 1
        return fs

    def describe(self, url: str) -> str:
        """Return a short description of where ``url`` lives, for messages."""
        if not is_remote(url):
            return url
        return f"{url} (endpoint {self.endpoint_url or 'AWS default'})"


@contextlib.contextmanager
def storage_errors(url: str, options: StorageOptions) -> Iterator[None]:
    """Re-raise connection failures and a missing bucket under ``url`` as :class:`StorageUnavailable`."""
    try:
        yield
    except QuantfleetError:  # ours (bad bars halfway through a streamed write) say what they mean
        raise
    except Exception as exc:  # delta-rs, botocore and aiohttp raise many kinds
        if not is_remote(url):
            raise
        text = _ANSI.sub("", str(exc))
        lowered = text.lower()
        if any(marker in lowered for marker in _NO_BUCKET):
            bucket = url.split("://", 1)[1].split("/", 1)[0]
            endpoint = f" --endpoint-url {options.endpoint_url}" if options.endpoint_url else ""
            raise StorageUnavailable(
                f"the bucket {bucket!r} of the market-data store at {options.describe(url)} does not exist. "
                f"Create it (e.g. 'aws s3 mb s3://{bucket}{endpoint}') or point QUANTFLEET_DATA_URL at an "
                "existing bucket (and QUANTFLEET_S3_ENDPOINT_URL at the server that holds it)."
            ) from exc
        if any(marker in lowered for marker in _UNREACHABLE):
            raise StorageUnavailable(
                f"cannot reach the market-data store at {options.describe(url)}: {_summary(text, exc)}. "
                "Check that the S3 server is running and that QUANTFLEET_S3_ENDPOINT_URL, "
                "QUANTFLEET_DATA_URL and the AWS credentials are right."
            ) from exc
        raise


def _summary(text: str, exc: Exception) -> str:
    """Return the first and the last (most specific) line of an error chain."""
    lines = [line.strip(" ↳\t") for line in text.strip().splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return type(exc).__name__
    first, last = lines[0][:200], lines[-1][:200]
    return first if first == last else f"{first} ... {last}"
