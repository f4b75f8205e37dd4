"""``quantfleet up`` for real: it serves, runs a job submitted over HTTP, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from quantfleet.core.settings import Settings
from quantfleet.testing.databases import POSTGRES_HOST, POSTGRES_PORT, POSTGRES_START, postgres_schema
from quantfleet.testing.jobs import tiny_market, wait_until
from quantfleet.testing.servers import require_server

ROOT = Path(__file__).resolve().parents[2]
REDIS_DB = 11  # a database of the shared Redis no other suite uses; its list empties as the worker consumes it


def _tree(root: int) -> dict[int, str]:
    """Return {pid: start time} of ``root``'s descendants, read from /proc."""
    parents: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid, ppid = int(entry.name), int(fields[1])
        parents.setdefault(ppid, []).append(pid)
        starts[pid] = fields[19]
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            found[child] = starts[child]
            todo.append(child)
    return found


def _still_running(pids: dict[int, str]) -> list[int]:
    alive = []
    for pid, start in pids.items():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[19] == start and fields[0] != "Z":  # the same process (not a reused pid), not a zombie
            alive.append(pid)
    return alive


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


class Up:
    """A ``quantfleet up`` process and the lines it prints."""

    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        self.errors = home.parent / "up.err"
        full_env = {**os.environ, "QUANTFLEET_HOME": str(home), "COLUMNS": "300", **(env or {})}
        with self.errors.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "quantfleet.cli.app", "up", "--api-port", "0", "--web-port", "0",
                 "--slots", "1", "--grace", "5", *args],
                env=full_env, cwd=home.parent, stdout=subprocess.PIPE, stderr=err, text=True,
            )  # fmt: skip
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def value(self, label: str) -> str:
        """Wait for the line ``label: VALUE`` and return VALUE."""

        def find() -> str | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"quantfleet up exited {self.proc.returncode}: {self.errors.read_text()[-3000:]}")
            return next((ln.split(":", 1)[1].strip() for ln in self.lines if ln.startswith(label + ":")), None)

        return wait_until(find, timeout=120, what=f"quantfleet up to print {label!r}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _run_a_backtest(api: str, token: str) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=api, headers=headers, timeout=30) as client:
        created = client.post(
            "/v1/backtests",
            files={"strategy": ("sma.py", (ROOT / "examples" / "sma_crossover.py").read_bytes())},
            data={"spec": json.dumps({"symbols": ["AAA"], "params": {"fast": 3, "slow": 8}})},
        )
        assert created.status_code == 201, created.text
        job_id = created.json()["id"]

        def ended() -> dict[str, object] | None:
            body: dict[str, object] = client.get(f"/v1/backtests/{job_id}").json()
            return body if body["state"] not in ("queued", "running") else None

        return wait_until(ended, timeout=120, what="the job submitted over HTTP to end")


def _up_serves_then_stops_cleanly(
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    check: Callable[[httpx.Client, dict[str, Any]], None] | None = None,
) -> list[str]:
    """Start ``quantfleet up ARGS``, run a backtest over HTTP (then ``check(client, job)``), Ctrl-C it."""
    up = Up(home, *args, env=env)
    try:
        token = up.value("API token")
        api = up.value("API docs").removesuffix("/docs")
        assert token.startswith("qf_")
        job = _run_a_backtest(api, token)
        assert job["state"] == "succeeded", job
        if check is not None:
            with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
                check(client, job)
        children = _tree(up.proc.pid)
        assert len(children) >= 2  # at least the API and the worker
        up.proc.send_signal(signal.SIGINT)
        assert up.proc.wait(90) == 0, up.errors.read_text()[-3000:]
        up.reader.join(10)
        assert _still_running(children) == [], "processes outlived quantfleet up"
        return up.lines
    finally:
        up.stop()


def test_up_on_embedded_defaults_prints_a_token_runs_a_job_and_ctrl_c_leaves_nothing(home: Path) -> None:
    tiny_market(Settings(home=home))
    lines = _up_serves_then_stops_cleanly(home)
    assert any("created user 'admin'" in line for line in lines)
    assert (home / "api-token").stat().st_mode & 0o777 == 0o600
    text = "\n".join(lines)
    assert "sqlite:///" in text
    # A second start prints the same token again (kept in the home), while it still authenticates.
    again = Up(home)
    try:
        assert again.value("API token") == (home / "api-token").read_text().strip()
        again.proc.send_signal(signal.SIGTERM)
        assert again.proc.wait(90) == 0
    finally:
        again.stop()


def test_a_sigkilled_up_leaves_no_server_running(home: Path) -> None:
    tiny_market(Settings(home=home))
    up = Up(home)
    servers: dict[int, str] = {}
    try:
        up.value("API token")  # every component has started
        servers = _tree(up.proc.pid)
        assert len(servers) >= 3, servers  # api, web, worker (and theirs)
        up.proc.kill()  # no chance to clean up: the children are told by Linux (parent-death signal)
        up.proc.wait(30)
        wait_until(lambda: not _still_running(servers), timeout=60, what="up's servers to stop after it was killed")
    finally:
        for pid in _still_running(servers):  # on failure: orphans (holding up's stdout) must not outlive the test
            os.kill(pid, signal.SIGKILL)
        up.stop()


def test_a_component_that_dies_stops_everything_with_exit_1(home: Path, tmp_path: Path) -> None:
    tiny_market(Settings(home=home))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        proc = subprocess.Popen(
            [sys.executable, "-m", "quantfleet.cli.app", "up", "--api-port", port, "--slots", "1", "--grace", "2"],
            env={**os.environ, "QUANTFLEET_HOME": str(home)}, cwd=tmp_path,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode in (1, 3), err
    assert "api exited" in err


@pytest.fixture
def pg_url() -> Iterator[str]:
    require_server("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT, POSTGRES_START)
    with postgres_schema() as url:
        yield url


@pytest.mark.server
def test_up_on_postgres_and_redis_runs_a_job_through_celery(home: Path, pg_url: str) -> None:
    require_server("Redis", "127.0.0.1", 6379, "redis-server --daemonize yes")
    broker = f"redis://127.0.0.1:6379/{REDIS_DB}"
    tiny_market(Settings(home=home))
    password_url = pg_url.replace("postgres@", "postgres:not-needed-with-trust@")
    lines = _up_serves_then_stops_cleanly(home, "--postgres", password_url, "--redis", broker)
    text = "\n".join(lines)
    assert "postgresql+psycopg://postgres:***@127.0.0.1:5432/test" in text
    assert "not-needed-with-trust" not in text  # passwords are never printed
    assert f"broker:    redis://127.0.0.1:6379/{REDIS_DB}" in text, text


def test_a_deployment_created_over_http_is_run_by_ups_scheduler(home: Path) -> None:
    """An on-bars deployment POSTed to up's API gets its process from up's scheduler; Ctrl-C ends it too."""
    require_server("Mosquitto", "127.0.0.1", 1883, "mosquitto -p 1883 -d")
    tiny_market(Settings(home=home))
    up = Up(home)
    try:
        token = up.value("API token")
        api = up.value("API docs").removesuffix("/docs")
        with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            spec = {"symbols": ["AAA"], "trigger": {"kind": "bars"}, "frequency": "1m"}
            created = client.post(
                "/v1/deployments",
                files={"strategy": ("sma.py", (ROOT / "examples" / "sma_crossover.py").read_bytes())},
                data={"spec": json.dumps(spec)},
            )
            assert created.status_code == 201, created.text
            dep_id = created.json()["id"]
            wait_until(lambda: client.get(f"/v1/deployments/{dep_id}").json()["heartbeat_at"], timeout=120,
                       what="the scheduler to start the deployment's process")  # fmt: skip
        children = _tree(up.proc.pid)
        assert any(dep_id.encode() in _cmdline(pid) for pid in _still_running(children))
        up.proc.send_signal(signal.SIGINT)
        assert up.proc.wait(90) == 0, up.errors.read_text()[-3000:]
        assert _still_running(children) == [], "processes outlived quantfleet up"
    finally:
        up.stop()


@pytest.mark.server
@pytest.mark.usefixtures("aws_env")
def test_up_on_s3_keeps_data_and_artifacts_there_and_reads_through_the_worker_cache(
    home: Path, s3_endpoint: str, s3_client: Any, s3_bucket: str
) -> None:
    root = f"s3://{s3_bucket}/team"
    tiny_market(Settings(home=home.parent / "ingest", data_url=f"{root}/data", s3_endpoint_url=s3_endpoint))
    assert not (home / "data").exists()

    def on_s3(client: httpx.Client, job: dict[str, Any]) -> None:
        listed = client.get(f"/v1/backtests/{job['id']}/artifacts")
        assert listed.status_code == 200, listed.text
        names = {a["name"] for a in listed.json()}
        assert {"metrics.json", "equity.parquet", "tearsheet.html"} <= names, names
        served = client.get(f"/v1/backtests/{job['id']}/artifacts/metrics.json")
        assert served.status_code == 200, served.text
        keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="team/objects/")["Contents"]]
        stored = [k for k in keys if k.endswith("/metrics.json") and str(job["id"]) in k]
        assert len(stored) == 1, keys  # the artifact the API served is the object on S3
        assert s3_client.get_object(Bucket=s3_bucket, Key=stored[0])["Body"].read() == served.content
        assert any(k.startswith("team/objects/code/") for k in keys)  # the uploaded strategy too

    lines = _up_serves_then_stops_cleanly(home, "--s3", root, "--s3-endpoint", s3_endpoint, check=on_s3)
    text = "\n".join(lines)
    assert f"objects:   {root}/objects   data: {root}/data" in text, text
    cached = [p for p in (home / "cache").rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert cached, "the worker's children read the market data without its cache"
    assert not (home / "objects").exists()  # nothing fell back to the local folders
    assert not (home / "data").exists()


def test_up_refuses_a_bad_s3_root_with_the_fix(home: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "quantfleet.cli.app", "up", "--s3", "bucket/prefix"],
        env={**os.environ, "QUANTFLEET_HOME": str(home)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "s3://quantfleet/prod" in done.stderr


def test_up_with_the_sandbox_on_refuses_market_data_on_s3_before_starting_anything(home: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "quantfleet.cli.app", "up", "--s3", "s3://team/qf"],
        env={**os.environ, "QUANTFLEET_HOME": str(home), "QUANTFLEET_SANDBOX": "on"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    message = " ".join(done.stderr.split())
    assert "s3://team/qf/data" in message
    assert "QUANTFLEET_DATA_URL=/path" in message
    assert not home.exists()  # refused before migrating or starting anything


def test_s3_root_leaves_an_explicit_data_folder_alone() -> None:
    from quantfleet.cli.up import _services_env

    assert _services_env(None, None, "s3://team/qf/", None) == {
        "QUANTFLEET_DATA_URL": "s3://team/qf/data", "QUANTFLEET_OBJECTS_URL": "s3://team/qf/objects",
    }  # fmt: skip
    assert _services_env(None, None, "s3://team/qf", "http://minio:9000", data_url_set=True) == {
        "QUANTFLEET_OBJECTS_URL": "s3://team/qf/objects", "QUANTFLEET_S3_ENDPOINT_URL": "http://minio:9000",
    }  # fmt: skip
