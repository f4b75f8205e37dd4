"""HTTP API load test: concurrent clients submit trivial jobs and poll their status, on loopback only.

Run ``python benchmarks/api_load.py`` (``--seconds 60 --clients 50`` by default).
In a temporary home (SQLite, local objects, a tiny synthetic market) it starts
the API (uvicorn, one process) and a local worker with 2 slots (``quantfleet
worker``, another process), then runs ``--clients`` asyncio clients for
``--seconds``. Each client submits a trivial backtest (with an Idempotency-Key),
then polls ``GET /v1/backtests/{id}`` every ``--poll`` seconds (default 0.5, as
``Client.wait``) until the job ends (at most 5 s), and starts over. The clients
start evenly over ``--ramp`` seconds (default 5), as a load generator's spawn
rate does; with ``--ramp 0`` they start at once and, since no trivial job ends
within 5 s once the queue has grown, stay in lockstep: 50 submissions arrive
together every 5 s. ``--worker-cpus 1`` pins the worker and its jobs to CPU 1,
as when the API has machines of its own. It reports requests per second,
p50/p99 latency of submissions and of status calls, and every error (goal:
none; status p99 under 100 ms). Nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

HOLD = b"from quantfleet import Strategy\n\n\nclass Hold(Strategy):\n    def on_bar(self, ctx, bars):\n        pass\n"
SPEC = json.dumps({"symbols": ["AAA"], "start": "2024-01-01", "end": "2024-03-31"})
TERMINAL = {"succeeded", "failed", "timed_out", "cancelled", "dead"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class Tally:
    """Latencies and errors of every request."""

    def __init__(self) -> None:
        self.submit: list[float] = []
        self.status: list[float] = []
        self.errors: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()


async def _client(base: str, token: str, deadline: float, poll: float, tally: Tally, delay: float) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30.0) as http:
        await asyncio.sleep(delay)
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                response = await http.post(
                    "/v1/backtests",
                    files={"strategy": ("hold.py", HOLD, "text/x-python"), "spec": (None, SPEC, "application/json")},
                    headers={"Idempotency-Key": str(uuid.uuid4())},
                )
            except httpx.HTTPError as exc:
                tally.errors[f"submit {type(exc).__name__}"] += 1
                continue
            tally.submit.append(time.perf_counter() - started)
            if response.status_code != 201:
                tally.errors[f"submit HTTP {response.status_code}"] += 1
                continue
            job_id = response.json()["id"]
            give_up = time.monotonic() + 5.0
            while time.monotonic() < min(deadline, give_up):
                await asyncio.sleep(poll)
                started = time.perf_counter()
                try:
                    shown = await http.get(f"/v1/backtests/{job_id}")
                except httpx.HTTPError as exc:
                    tally.errors[f"status {type(exc).__name__}"] += 1
                    continue
                tally.status.append(time.perf_counter() - started)
                if shown.status_code != 200:
                    tally.errors[f"status HTTP {shown.status_code}"] += 1
                    continue
                state = shown.json()["state"]
                if state in TERMINAL:
                    tally.finished[state] += 1
                    break


def _prepare(home: Path, database: str | None) -> str:
    """Write a tiny market and a user with a token into ``home`` (jobs in ``database``); return the token."""
    from quantfleet.core.settings import Settings
    from quantfleet.jobs import JobService
    from quantfleet.testing.jobs import tiny_market
    from quantfleet.users import UserService

    settings = Settings(home=home, database_url=database)
    tiny_market(settings)
    users = UserService(JobService.from_settings(settings).db)
    users.add_user("load")
    return users.create_token("load", label="api_load")[0]


def _wait_ready(base: str, server: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the API server exited with code {server.returncode}")
        try:
            if httpx.get(base + "/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the API at {base} did not become ready in {timeout:g} s")


async def _run(base: str, token: str, clients: int, seconds: float, poll: float, ramp: float) -> Tally:
    tally = Tally()
    deadline = time.monotonic() + seconds
    starts = random.Random(0).sample(range(clients), clients)  # client k starts at ramp * k / clients, shuffled
    delays = [ramp * k / clients for k in starts]
    await asyncio.gather(*(_client(base, token, deadline, poll, tally, delay) for delay in delays))
    return tally


def main() -> int:
    """Run the load test and print its numbers."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="How long the clients run (default 60).")
    parser.add_argument("--clients", type=int, default=50, help="Concurrent clients (default 50).")
    parser.add_argument("--poll", type=float, default=0.5, help="Seconds between status calls (default 0.5).")
    parser.add_argument("--slots", type=int, default=2, help="Worker slots (default 2).")
    parser.add_argument(
        "--ramp",
        type=float,
        default=5.0,
        help=(
            "Seconds over which the clients start, evenly (default 5, a client's longest wait for one job, "
            "as a load generator's spawn rate); 0 starts all at once, and they then submit in lockstep."
        ),
    )
    parser.add_argument(
        "--worker-cpus",
        default=None,
        help=(
            "Pin the worker and its jobs to these CPUs (e.g. '1'), leaving the rest to the API and the clients, "
            "as when the API runs on machines of its own (default: all share every core)."
        ),
    )
    parser.add_argument("--api-workers", type=int, default=1, help="uvicorn processes (default 1).")
    where = "Keep jobs in a fresh schema of the PostgreSQL on 127.0.0.1:5432 (default: SQLite)."
    parser.add_argument("--postgres", action="store_true", help=where)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        database = None
        if args.postgres:
            from quantfleet.testing.databases import postgres_schema

            database = stack.enter_context(postgres_schema(prefix="qf_bench"))
        return _bench(args, database)


def _bench(args: argparse.Namespace, database: str | None) -> int:
    home = Path(tempfile.mkdtemp(prefix="qf-bench-api-")) / "home"
    token = _prepare(home, database)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "QUANTFLEET_HOME": str(home)}
    if database is not None:
        env["QUANTFLEET_DATABASE_URL"] = database
    env.pop("QUANTFLEET_API_URL", None)
    env.pop("QUANTFLEET_BROKER_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "quantfleet.api:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log", "--workers", str(args.api_workers)], env=env,
    )  # fmt: skip
    cpus = None if args.worker_cpus is None else {int(c) for c in args.worker_cpus.split(",")}
    worker = subprocess.Popen(
        [sys.executable, "-c", "from quantfleet.cli.app import main; main()", "worker", "--slots", str(args.slots),
         "--grace", "0"], env=env, stderr=subprocess.DEVNULL,
        preexec_fn=None if cpus is None else functools.partial(os.sched_setaffinity, 0, cpus),
    )  # fmt: skip
    try:
        _wait_ready(base, server)
        pinned = "" if cpus is None else f" on CPUs {sorted(cpus)}"
        print(
            f"API on {base} ({args.api_workers} processes, {'PostgreSQL' if database else 'SQLite'}), "
            f"worker with {args.slots} slots{pinned}; {args.clients} clients starting over {args.ramp:g} s, "
            f"polling every {args.poll:g} s for {args.seconds:g} s ..."
        )
        began = time.perf_counter()
        tally = asyncio.run(_run(base, token, args.clients, args.seconds, args.poll, args.ramp))
        elapsed = time.perf_counter() - began
        metrics = httpx.get(base + "/metrics", timeout=10.0).text
    finally:
        worker.send_signal(signal.SIGINT)
        server.terminate()
        for process in (worker, server):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    requests = len(tally.submit) + len(tally.status)
    depth = next((line.split()[-1] for line in metrics.splitlines() if line.startswith("quantfleet_queue_depth{")), "?")
    print(f"requests          {requests} in {elapsed:.1f} s = {requests / elapsed:.0f}/s")
    for name, values in (("submit", tally.submit), ("status", tally.status)):
        mean = statistics.fmean(values) * 1000 if values else float("nan")
        print(f"{name}  (n={len(values):5d})  p50 {_pct(values, 0.5):7.1f} ms  p99 {_pct(values, 0.99):7.1f} ms"
              f"  mean {mean:.1f} ms")  # fmt: skip
    print(f"jobs ended while polled: {dict(tally.finished) or 'none'}; queue depth at the end: {depth}")
    print(f"errors            {sum(tally.errors.values())} {dict(tally.errors) if tally.errors else ''}")
    return 1 if tally.errors else 0


if __name__ == "__main__":
    sys.exit(main())
