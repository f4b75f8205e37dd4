"""The worker's parts on their own: the child's environment, limits, and the log pump."""

from __future__ import annotations

import os

from quantfleet.core.errors import StorageUnavailable
from quantfleet.dispatch.launcher import child_environment
from quantfleet.dispatch.limits import Limits
from quantfleet.dispatch.logs import LogPump
from quantfleet.testing.jobs import wait_until

SECRET = "fake-secret-0xdeadbeef"
EVERY_SETTING = [
    "QUANTFLEET_DATABASE_URL", "QUANTFLEET_BROKER_URL", "QUANTFLEET_OBJECTS_URL", "QUANTFLEET_HOME",
    "QUANTFLEET_S3_ACCESS_KEY_ID", "QUANTFLEET_S3_SECRET_ACCESS_KEY", "QUANTFLEET_API_TOKEN",
    "QUANTFLEET_DB_URL", "QUANTFLEET_POSTGRES_DSN", "QUANTFLEET_REDIS_URL", "QUANTFLEET_ANYTHING_ELSE",
    "DATABASE_URL", "PGPASSWORD", "PGHOST", "MYSQL_PWD", "REDIS_URL", "APCA_API_SECRET_KEY", "GITHUB_TOKEN",
    "USER", "SSH_AUTH_SOCK",
]  # fmt: skip
DATA_SETTINGS = {
    "QUANTFLEET_DATA_URL": "s3://market/data", "QUANTFLEET_CACHE_DIR": "/var/cache/qf",
    "QUANTFLEET_CACHE_CAPACITY_GB": "5", "QUANTFLEET_CACHE_THRESHOLD": "0.7",
    "QUANTFLEET_S3_ENDPOINT_URL": "http://minio:9000", "QUANTFLEET_S3_REGION": "eu-west-1",
}  # fmt: skip


def test_the_childs_environment_is_a_whitelist_without_any_secret() -> None:
    environ = {
        "PATH": "/usr/bin", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "TZ": "UTC", "HOME": "/root",
        "AWS_SECRET_ACCESS_KEY": "s", **{k: SECRET for k in EVERY_SETTING}, **DATA_SETTINGS,
    }  # fmt: skip
    env = child_environment(environ)
    assert env["PATH"] == "/usr/bin"
    assert env["LC_ALL"] == "C.UTF-8"
    assert env["TZ"] == "UTC"
    assert env["OPENBLAS_NUM_THREADS"] == "1"
    assert {k: env[k] for k in DATA_SETTINGS} == DATA_SETTINGS
    assert SECRET not in env.values()
    assert not set(EVERY_SETTING) & set(env)
    assert "HOME" not in env  # each launch sets the job's private one
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert "AWS_SECRET_ACCESS_KEY" in child_environment({"AWS_SECRET_ACCESS_KEY": "s"}, remote_data=True)
    assert SECRET not in child_environment(environ, remote_data=True).values()


def test_limits_travel_through_task_json() -> None:
    limits = Limits(cpu_seconds=5.0, wall_seconds=60.0, memory_bytes=2**30)
    assert Limits.from_json({**limits.to_json(), "future_key": 1}) == limits


class Sink:
    def __init__(self) -> None:
        self.text = ""
        self.parts: list[str] = []
        self._pending = ""

    def write(self, text: str) -> None:
        self._pending += text

    def flush(self) -> None:
        if self._pending:
            self.parts.append(self._pending)
            self.text += self._pending
            self._pending = ""


def test_the_pump_flushes_while_the_writer_stays_open_and_drains_to_eof() -> None:
    read, write = os.pipe()
    sink = Sink()
    pump = LogPump(read, sink, flush_seconds=0.2).start()
    os.write(write, b"first line\npartial")
    wait_until(lambda: "partial" in sink.text, timeout=5, what="a timed flush without a newline")
    os.write(write, "é".encode()[:1])  # half a UTF-8 character: decoded once the rest arrives
    os.write(write, "é".encode()[1:] + b"\n")
    os.close(write)
    assert pump.join(timeout=5)
    os.close(read)
    assert sink.text == "first line\npartialé\n"
    assert len(sink.parts) >= 2


def test_the_pump_flushes_every_n_lines() -> None:
    read, write = os.pipe()
    sink = Sink()
    pump = LogPump(read, sink, flush_seconds=3600, flush_lines=10).start()
    os.write(write, b"".join(b"line %d\n" % i for i in range(25)))
    wait_until(lambda: sink.text.count("\n") >= 10, timeout=5, what="a flush after 10 lines")
    os.close(write)
    assert pump.join(timeout=5)
    os.close(read)
    assert sink.text.count("\n") == 25


class FlakySink(Sink):
    """A log writer whose store fails ``failures`` times, keeping its buffer (as the job service's does)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def flush(self) -> None:
        if self.failures:
            self.failures -= 1
            raise StorageUnavailable("the object store is restarting")
        super().flush()


def test_the_pump_retries_a_failed_flush_and_loses_nothing() -> None:
    read, write = os.pipe()
    sink = FlakySink(failures=1)
    pump = LogPump(read, sink, flush_seconds=0.05).start()
    os.write(write, b"before the outage\n")
    wait_until(lambda: sink.failures == 0, timeout=5, what="the failed flush")
    os.write(write, b"after the outage\n")
    wait_until(lambda: "after the outage" in sink.text, timeout=5, what="the output after the outage")
    os.close(write)
    assert pump.join(timeout=5)
    os.close(read)
    assert sink.text == "before the outage\nafter the outage\n"
    assert not pump.lost


class RefusingSink(Sink):
    def write(self, text: str) -> None:
        raise StorageUnavailable("the log store is gone")


def test_the_pump_reports_output_it_could_not_hand_to_the_log() -> None:
    read, write = os.pipe()
    pump = LogPump(read, RefusingSink(), flush_seconds=0.05).start()
    os.write(write, b"lost line\n")
    os.close(write)
    assert pump.join(timeout=5)
    os.close(read)
    assert pump.lost
    assert isinstance(pump.error, StorageUnavailable)
