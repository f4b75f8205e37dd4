"""The worker's parts on their own: the child's environment, limits, and the log pump."""

from __future__ import annotations

import os

from quantfleet.dispatch.launcher import child_environment
from quantfleet.dispatch.limits import Limits
from quantfleet.dispatch.logs import LogPump
from quantfleet.testing.jobs import wait_until


def test_the_childs_environment_carries_no_database_url_or_secret() -> None:
    env = child_environment(
        {
            "PATH": "/usr/bin",
            "LC_ALL": "C.UTF-8",
            "QUANTFLEET_DATABASE_URL": "postgresql://u:pw@db/q",
            "QUANTFLEET_HOME": "/srv/qf",
            "QUANTFLEET_API_TOKEN": "t",
            "AWS_SECRET_ACCESS_KEY": "s",
            "APCA_API_SECRET_KEY": "k",
            "HOME": "/root",
        }
    )
    assert env["PATH"] == "/usr/bin"
    assert env["QUANTFLEET_HOME"] == "/srv/qf"
    assert env["LC_ALL"] == "C.UTF-8"
    assert env["OPENBLAS_NUM_THREADS"] == "1"
    for secret in ("QUANTFLEET_DATABASE_URL", "QUANTFLEET_API_TOKEN", "AWS_SECRET_ACCESS_KEY", "APCA_API_SECRET_KEY"):
        assert secret not in env
    assert "AWS_SECRET_ACCESS_KEY" in child_environment({"AWS_SECRET_ACCESS_KEY": "s"}, remote_data=True)


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
