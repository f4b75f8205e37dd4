"""The HTTP client: one object, a method per action, retries that never duplicate a job."""

from __future__ import annotations

import builtins
import heapq
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

from quantfleet.client._errors import ClientError, ServerUnavailable, error_for
from quantfleet.client._models import ArtifactInfo, JobInfo

__all__ = ["KINDS", "Client"]

KINDS = {"backtest": "backtests", "sweep": "sweeps", "walk-forward": "walkforwards"}
"""A job's kind, and the path of its collection."""

Progress = Callable[[JobInfo], None]


def _plural(kind: str) -> str:
    cleaned = kind.strip().lower()
    if cleaned in KINDS.values():
        return cleaned
    if cleaned.replace("_", "-") in KINDS:
        return KINDS[cleaned.replace("_", "-")]
    if cleaned == "walkforward":
        return "walkforwards"
    raise ValueError(f"unknown job kind {kind!r}; choose one of: {', '.join(KINDS)}")


def _symbols(symbols: str | Iterable[str]) -> list[str]:
    names = symbols.split(",") if isinstance(symbols, str) else list(symbols)
    return [s.strip().upper() for s in names if s.strip()]


def _day(value: date | str | None) -> str | None:
    return None if value is None else value.isoformat() if isinstance(value, date) else str(value)


def _retry_after(header: str | None) -> float | None:
    if header is None:
        return None
    if header.strip().isdigit():
        return float(header.strip())
    try:
        return max(0.0, parsedate_to_datetime(header).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class Client:
    """Submit, follow and fetch jobs on a quantfleet server.

    ::

        with Client("http://127.0.0.1:8000", token) as qf:
            job = qf.submit_backtest("examples/sma_crossover.py", symbols=["AAA"], params={"fast": 5})
            job = qf.wait(job.id, progress=lambda j: print(j.state))
            qf.download(job.id, "metrics.json", "out/")

    A request that meets a 503 or no connection is retried up to ``retries``
    times with exponential backoff, waiting at least what ``Retry-After``
    says. Every POST carries an ``Idempotency-Key`` (a new uuid4 unless you
    give one), the same on every retry, so a retried submission never creates
    a second job. ``transport`` is httpx's transport port (``httpx.MockTransport``
    in tests, or a custom one); errors are :class:`ClientError` subclasses.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        retries: int = 5,
        transport: httpx.BaseTransport | None = None,
        backoff: float = 0.25,
        max_backoff: float = 30.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )
        self._kinds: dict[str, str] = {}  # job id -> collection path, learned from answers

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ------------------------------------------------------------------------------

    def _pause(self, attempt: int, retry_after: float | None) -> None:
        wait = min(self.max_backoff, self.backoff * 2**attempt)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_backoff))
        time.sleep(wait)

    def _send(self, method: str, path: str, *, key: str | None = None, stream: bool = False,
              **kw: Any) -> httpx.Response:  # fmt: skip
        headers = dict(kw.pop("headers", None) or {})
        if key is not None:
            headers["Idempotency-Key"] = key
        for attempt in range(self.retries + 1):
            request = self._http.build_request(method, path, headers=headers, **kw)
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise ServerUnavailable(f"cannot reach {self.url}: {exc}") from exc
                self._pause(attempt, None)
                continue
            if response.status_code == 503 and attempt < self.retries:
                response.close()
                self._pause(attempt, _retry_after(response.headers.get("Retry-After")))
                continue
            if response.is_error:
                raise self._error(response)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _error(response: httpx.Response) -> ClientError:
        try:
            response.read()
            body = response.json()
            problem = body if isinstance(body, dict) else {}
        except (ValueError, httpx.HTTPError):
            problem = {}
        finally:
            response.close()
        return error_for(response.status_code, problem, response.reason_phrase or "request failed")

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        return self._send(method, path, **kw).json()

    def _job(self, body: dict[str, Any]) -> JobInfo:
        job = JobInfo.from_json(body)
        self._kinds[job.id] = _plural(job.kind)
        return job

    def _base(self, job_id: str) -> str:
        """Return the path of a job, asking each collection once when its kind is not yet known."""
        job_id = job_id.strip()
        if job_id not in self._kinds:
            for plural in KINDS.values():
                try:
                    self._job(self._json("GET", f"/v1/{plural}/{job_id}"))
                except ClientError as exc:
                    if exc.status in (400, 404, 422):
                        continue
                    raise
                break
            else:
                return f"/v1/backtests/{job_id}"  # the 404 below names the job
        return f"/v1/{self._kinds[job_id]}/{job_id}"

    # -- submitting ---------------------------------------------------------------------------------

    def _submit(self, plural: str, strategy_path: str | Path, spec: dict[str, Any], key: str | None) -> JobInfo:
        path = Path(strategy_path)
        data = path.read_bytes()
        content_type = "application/zip" if path.suffix == ".zip" else "text/x-python"
        part = json.dumps({k: v for k, v in spec.items() if v is not None}, default=str)
        files = {"strategy": (path.name, data, content_type), "spec": (None, part, "application/json")}
        body = self._json("POST", f"/v1/{plural}", files=files, key=key or str(uuid.uuid4()))
        return self._job(body)

    def submit_backtest(
        self,
        strategy_path: str | Path,
        *,
        symbols: str | Sequence[str],
        start: date | str | None = None,
        end: date | str | None = None,
        params: dict[str, Any] | None = None,
        engine: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        **spec: Any,
    ) -> JobInfo:
        """Submit a backtest; ``spec`` takes the other fields (frequency, snapshot, limits, priority, ...)."""
        body = {"symbols": _symbols(symbols), "start": _day(start), "end": _day(end), "params": params,
                "engine": engine, **spec}  # fmt: skip
        return self._submit("backtests", strategy_path, body, idempotency_key)

    def submit_sweep(
        self,
        strategy_path: str | Path,
        *,
        symbols: str | Sequence[str],
        grid: Sequence[str],
        start: date | str | None = None,
        end: date | str | None = None,
        params: dict[str, Any] | None = None,
        engine: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        **spec: Any,
    ) -> JobInfo:
        """Submit a sweep over ``grid`` (``NAME=START:STOP:STEP`` or ``NAME=a,b,c``); ``spec``: where, metric, ..."""
        body = {"symbols": _symbols(symbols), "grid": list(grid), "start": _day(start), "end": _day(end),
                "params": params, "engine": engine, **spec}  # fmt: skip
        return self._submit("sweeps", strategy_path, body, idempotency_key)

    def submit_walkforward(
        self,
        strategy_path: str | Path,
        *,
        symbols: str | Sequence[str],
        grid: Sequence[str],
        train: str,
        test: str,
        idempotency_key: str | None = None,
        **spec: Any,
    ) -> JobInfo:
        """Submit a walk-forward: optimize on each ``train`` window (2y, 6m), test on the ``test`` window after."""
        body = {"symbols": _symbols(symbols), "grid": list(grid), "train": train, "test": test, **spec}
        for name in ("start", "end"):
            body[name] = _day(body.get(name))
        return self._submit("walkforwards", strategy_path, body, idempotency_key)

    # -- reading ------------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobInfo:
        """Return a job with its spec, attempts and (sweeps) children."""
        return self._job(self._json("GET", self._base(job_id)))

    def list(
        self,
        *,
        kind: str | None = None,
        state: str | Sequence[str] | None = None,
        owner: str | None = None,
        include_children: bool = False,
        limit: int | None = None,
        page_size: int = 50,
    ) -> Iterator[JobInfo]:
        """Yield jobs newest first (every kind unless ``kind``), reading page after page; stop after ``limit``."""
        plurals = [_plural(kind)] if kind else list(KINDS.values())
        params: dict[str, Any] = {"limit": page_size, "include_children": include_children}
        if state:
            params["state"] = [state] if isinstance(state, str) else list(state)
        if owner:
            params["owner"] = owner
        streams = [self._pages(p, params) for p in plurals]
        merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda j: j.submitted_at, reverse=True)
        for count, job in enumerate(merged):
            if limit is not None and count >= limit:
                return
            yield job

    def _pages(self, plural: str, params: dict[str, Any]) -> Iterator[JobInfo]:
        cursor: str | None = None
        while True:
            page = self._json("GET", f"/v1/{plural}", params={**params, **({"cursor": cursor} if cursor else {})})
            for item in page["items"]:
                yield self._job(item)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def logs(self, job_id: str, follow: bool = False, *, attempt: int | None = None) -> Iterator[str]:
        """Yield the job's log text (the latest attempt unless ``attempt``); ``follow`` streams it until the end."""
        params: dict[str, Any] = {"offset": 0}
        if attempt is not None:
            params["attempt"] = attempt
        base = self._base(job_id)
        if not follow:
            chunk = self._json("GET", base + "/logs", params=params)
            if chunk["text"]:
                yield chunk["text"]
            return
        response = self._send("GET", base + "/logs", params={**params, "follow": "true"}, stream=True,
                              timeout=httpx.Timeout(self._http.timeout.connect, read=None))  # fmt: skip
        try:
            yield from response.iter_text()
        finally:
            response.close()

    def artifacts(self, job_id: str) -> builtins.list[ArtifactInfo]:
        """Return the job's result files."""
        return [ArtifactInfo.from_json(a) for a in self._json("GET", self._base(job_id) + "/artifacts")]

    def download(self, job_id: str, name: str, dest: str | Path) -> Path:
        """Save one artifact to ``dest`` (a file, or a folder to put it in); return where it went."""
        target = Path(dest)
        if target.is_dir() or str(dest).endswith(("/", "\\")):
            target = target / name.rsplit("/", 1)[-1]
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        response = self._send("GET", f"{self._base(job_id)}/artifacts/{name}", stream=True)
        try:
            with partial.open("wb") as out:
                for block in response.iter_bytes():
                    out.write(block)
        finally:
            response.close()
        partial.replace(target)
        return target

    # -- acting -------------------------------------------------------------------------------------

    def cancel(self, job_id: str) -> JobInfo:
        """Cancel a job (a running one stops within seconds); return it."""
        return self._job(self._json("POST", self._base(job_id) + "/cancel", key=str(uuid.uuid4())))

    def rerun(self, job_id: str, *, idempotency_key: str | None = None) -> JobInfo:
        """Submit the job's exact spec again; return the new job."""
        key = idempotency_key or str(uuid.uuid4())
        return self._job(self._json("POST", self._base(job_id) + "/rerun", key=key))

    def wait(
        self, job_id: str, *, poll: float = 0.5, progress: Progress | None = None, timeout: float | None = None
    ) -> JobInfo:
        """Return the job once it has ended; ``progress(job)`` is called whenever its state changes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: str | None = None
        while True:
            job = self.get(job_id)
            if progress is not None and job.state != seen:
                progress(job)
            seen = job.state
            if job.terminal:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.state} after {timeout:g} s")
            time.sleep(poll)

    # -- deployments ------------------------------------------------------------------------------

    def create_deployment(
        self,
        strategy_path: str | Path,
        *,
        symbols: str | Sequence[str],
        schedule: str | None = None,
        on_bars: bool = False,
        calendar: str = "XNYS",
        half_days: str = "skip",
        idempotency_key: str | None = None,
        **spec: Any,
    ) -> dict[str, Any]:
        """Deploy a strategy file on a cron ``schedule`` (in ``calendar``'s time zone) or ``on_bars``; return it.

        ``spec`` takes the other fields of the API's DeploymentCreate: name, broker (paper, alpaca),
        account, frequency, params, risk (max_position, max_order_value, max_daily_loss,
        max_orders_per_day), engine (the paper account's cash and fill settings), class_name, entry.
        """
        if (schedule is None) == (not on_bars):
            raise ValueError("give either schedule='CRON' or on_bars=True")
        trigger = {"kind": "bars"} if on_bars else {"kind": "cron", "cron": schedule, "calendar": calendar,
                                                    "half_days": half_days}  # fmt: skip
        path = Path(strategy_path)
        content_type = "application/zip" if path.suffix == ".zip" else "text/x-python"
        part = json.dumps({"symbols": _symbols(symbols), "trigger": trigger,
                           **{k: v for k, v in spec.items() if v is not None}}, default=str)  # fmt: skip
        files = {"strategy": (path.name, path.read_bytes(), content_type), "spec": (None, part, "application/json")}
        created: dict[str, Any] = self._json("POST", "/v1/deployments", files=files,
                                             key=idempotency_key or str(uuid.uuid4()))  # fmt: skip
        return created

    def deployments(self) -> builtins.list[dict[str, Any]]:
        """Return your deployments (an admin: everyone's) as the API lists them."""
        found: builtins.list[dict[str, Any]] = self._json("GET", "/v1/deployments")
        return found

    def deployment(self, deployment_id: str) -> dict[str, Any]:
        """Return one deployment with its positions, orders, P&L series and state."""
        found: dict[str, Any] = self._json("GET", f"/v1/deployments/{deployment_id}")
        return found

    def _change(self, deployment_id: str, action: str, query: str = "") -> dict[str, Any]:
        path = f"/v1/deployments/{deployment_id}/{action}{query}"
        changed: dict[str, Any] = self._json("POST", path, key=str(uuid.uuid4()))
        return changed

    def pause_deployment(self, deployment_id: str) -> dict[str, Any]:
        """Pause a deployment: its runs are skipped and its orders refused until resumed."""
        return self._change(deployment_id, "pause")

    def resume_deployment(self, deployment_id: str) -> dict[str, Any]:
        """Resume a paused deployment."""
        return self._change(deployment_id, "resume")

    def stop_deployment(self, deployment_id: str) -> dict[str, Any]:
        """Stop a deployment for good."""
        return self._change(deployment_id, "stop")

    def kill_deployment(self, deployment_id: str, *, flatten: bool = False) -> dict[str, Any]:
        """Kill switch: pause, cancel open orders, and with ``flatten`` close positions at market."""
        return self._change(deployment_id, "kill", "?flatten=true" if flatten else "")
