"""A real S3-protocol endpoint on loopback: moto's standalone server, one per test session.

The server runs as a subprocess, not in a thread of the test process: with
moto's ``ThreadedMotoServer`` in-process, ``DeltaTable.history()`` timed out
after its retries although the server logged an answer. delta-rs appears to
hold the GIL during that call, so the server thread cannot finish the reply.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from quantfleet.data import StorageOptions
from quantfleet.testing.servers import in_ci

IN_CI = in_ci()
_START_TIMEOUT_S = 30.0
# AWS settings from the developer's shell that would send requests elsewhere.
_AWS_VARS = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "AWS_CA_BUNDLE",
    "AWS_S3_ALLOW_UNSAFE_RENAME",
)


def _free_port() -> int:
    """Return a loopback TCP port that nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_listening(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Return once ``port`` accepts connections; fail if the server exits or the deadline passes."""
    polls = int(_START_TIMEOUT_S / 0.05)
    for _ in range(polls):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        try:
            proc.wait(timeout=0.05)  # doubles as the pause between polls
        except subprocess.TimeoutExpired:
            continue
        break
    proc.kill()
    proc.wait()
    pytest.fail(f"moto server did not start on port {port}; its output:\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def aws_env() -> Iterator[None]:
    """Give the S3 clients dummy credentials and no other AWS settings; restore the environment after."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "quantfleet-test")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "quantfleet-test")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_CONFIG_FILE", os.devnull)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name in _AWS_VARS:
            mp.delenv(name, raising=False)
        yield


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start moto's S3 server on a free loopback port; return its URL."""
    if importlib.util.find_spec("moto") is None:
        message = "moto is not installed; install the dev extras: pip install -e '.[dev]'"
        if IN_CI:
            pytest.fail(message + " (CI=true: server tests may not be skipped)")
        pytest.skip(message)
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_listening(proc, port, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def s3_client(s3_endpoint: str) -> Iterator[Any]:
    """Return a boto3 S3 client for the test endpoint (to create buckets and inspect objects)."""
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="quantfleet-test",
        aws_secret_access_key="quantfleet-test",
    )
    yield client
    client.close()


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    """Return the name of a new, empty bucket."""
    name = f"qf-{uuid.uuid4().hex[:20]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def s3_storage(s3_endpoint: str) -> StorageOptions:
    """Return storage options for the test endpoint, with short timeouts."""
    return StorageOptions(endpoint_url=s3_endpoint, timeout_s=5.0, max_retries=1)


@pytest.fixture
def closed_endpoint() -> str:
    """Return the URL of a loopback port nothing listens on."""
    return f"http://127.0.0.1:{_free_port()}"
