"""A missing server fails a test in CI and skips it elsewhere, saying how to start it."""

from __future__ import annotations

import socket

import pytest

from quantfleet.testing.servers import in_ci, require_server


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_missing_server_fails_in_ci() -> None:
    with pytest.raises(pytest.fail.Exception, match="start it with: redis-server"):
        require_server("Redis", "127.0.0.1", closed_port(), "redis-server --daemonize yes", environ={"CI": "true"})


def test_missing_server_skips_elsewhere() -> None:
    with pytest.raises(pytest.skip.Exception, match="start it with: mosquitto -d"):
        require_server("Mosquitto", "127.0.0.1", closed_port(), "mosquitto -d", environ={})


def test_a_listening_server_passes() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        require_server("test", "127.0.0.1", sock.getsockname()[1], "nothing", environ={"CI": "true"})
    assert in_ci({"CI": "TRUE"})
    assert not in_ci({"CI": "false"})
