"""Fixtures of the storage tests: ``db_url`` over SQLite and PostgreSQL, and moto's S3 server."""

from __future__ import annotations

# Reuse the session's moto S3 server fixtures of the integration tests (tests/ is on sys.path).
from integration.conftest import aws_env, s3_bucket, s3_client, s3_endpoint, s3_storage  # noqa: F401
