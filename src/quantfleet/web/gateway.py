"""The dashboard's one way to the platform: the HTTP API, through :class:`quantfleet.client.Client`.

A :class:`Gateway` is made per callback from the API's URL and the signed-in
user's token, and closed after it: the dashboard keeps no state of its own.
The few reads the client has no method for (one page of the all-kinds list,
a job's source, the fleet summary, raw artifact bytes) go through the
second connection with the same token, timeout and error classes.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from quantfleet.client import (
    KINDS,
    BadRequest,
    Client,
    ClientError,
    Conflict,
    Forbidden,
    JobInfo,
    NotFound,
    RateLimited,
    ServerError,
    ServerUnavailable,
    Unauthorized,
)

__all__ = ["Gateway", "JobPage", "describe", "gateway"]

_BY_STATUS: dict[int, type[ClientError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    422: BadRequest,
    429: RateLimited,
    503: ServerUnavailable,
}


@dataclass(frozen=True)
class JobPage:
    """One page of the all-kinds job list and the cursor of the next (None: the last page)."""

    items: list[JobInfo]
    next_cursor: str | None


def describe(exc: Exception) -> str:
    """Return the message a page shows for a failed request: what went wrong and what to do."""
    if isinstance(exc, ClientError):
        if exc.status == 401:
            return "Your token is unknown, revoked or expired: sign in again with a valid token."
        if isinstance(exc, ServerUnavailable):
            return f"The API cannot be reached right now ({exc.detail}); the page retries on its own."
        return exc.detail
    return f"{type(exc).__name__}: {exc}"


class Gateway:
    """The API calls the pages make, for one user's token."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        timeout: float = 15.0,
        retries: int = 1,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.client = Client(api_url, token, timeout=timeout, retries=retries, transport=transport, backoff=0.1)
        self.http = httpx.Client(
            base_url=self.client.url,
            timeout=timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )

    def close(self) -> None:
        """Close the connections."""
        self.client.close()
        self.http.close()

    def _get(self, path: str, **params: Any) -> httpx.Response:
        try:
            response = self.http.get(path, params={k: v for k, v in params.items() if v is not None})
        except httpx.TransportError as exc:
            raise ServerUnavailable(f"cannot reach {self.client.url}: {exc}") from exc
        if response.is_error:
            try:
                body = response.json()
            except ValueError:
                body = {}
            detail = str((body if isinstance(body, dict) else {}).get("detail") or response.reason_phrase)
            status = response.status_code
            cls = _BY_STATUS.get(status, ServerError if status >= 500 else ClientError)
            raise cls(f"{detail} (HTTP {status})", status=status, problem=body if isinstance(body, dict) else {})
        return response

    # -- reads ------------------------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        """Check the token with the cheapest authenticated read; return the fleet summary."""
        return self.fleet()

    def fleet(self) -> dict[str, Any]:
        """Return queue depth, jobs per state and the workers running jobs."""
        body: dict[str, Any] = self._get("/v1/fleet").json()
        return body

    def jobs(
        self,
        *,
        state: Sequence[str] = (),
        q: str | None = None,
        cursor: str | None = None,
        limit: int = 25,
        include_children: bool = False,
    ) -> JobPage:
        """Return one page of jobs of every kind, newest first."""
        params: dict[str, Any] = {
            "limit": limit,
            "include_children": include_children,
            "q": q or None,
            "cursor": cursor,
            "state": list(state) or None,
        }
        body = self._get("/v1/jobs", **params).json()
        rows = [JobInfo.from_json({**j, "spec": {"params": j.get("params") or {}}}) for j in body["items"]]
        return JobPage(rows, body.get("next_cursor"))

    def job(self, job_id: str) -> JobInfo:
        """Return a job with its spec, attempts and children."""
        return self.client.get(job_id)

    def source(self, job_id: str) -> dict[str, Any]:
        """Return the strategy file of a job: name, sha256, class name and text."""
        body: dict[str, Any] = self._get(f"/v1/jobs/{job_id}/source").json()
        return body

    def log(self, job_id: str, *, tail: int = 20_000) -> str:
        """Return the end of the job's log (latest attempt)."""
        text = "".join(self.client.logs(job_id))
        return text[-tail:]

    def artifacts(self, job_id: str) -> list[Any]:
        """Return the job's result files."""
        return self.client.artifacts(job_id)

    def artifact(self, job_id: str, name: str, *, kind: str = "backtest") -> bytes:
        """Return one artifact's bytes."""
        return self._get(f"/v1/{KINDS[kind]}/{job_id}/artifacts/{name}").content

    def table(self, job_id: str, name: str, *, kind: str = "backtest") -> pa.Table:
        """Return a Parquet artifact as an Arrow table."""
        return pq.read_table(io.BytesIO(self.artifact(job_id, name, kind=kind)))

    def snapshots(self) -> list[dict[str, Any]]:
        """Return the market-data snapshots, newest first."""
        body: list[dict[str, Any]] = self._get("/v1/data/snapshots").json()
        return body

    def symbols(self, snapshot: str | None = None) -> list[dict[str, Any]]:
        """Return what a snapshot holds per symbol."""
        body: list[dict[str, Any]] = self._get("/v1/data/symbols", snapshot=snapshot).json()
        return body

    def bars(self, symbol: str, *, frequency: str = "1d", snapshot: str | None = None) -> dict[str, Any]:
        """Return one symbol's downsampled closes and its longest gaps."""
        body: dict[str, Any] = self._get("/v1/data/bars", symbol=symbol, frequency=frequency, snapshot=snapshot).json()
        return body

    def deployments(self) -> list[dict[str, Any]]:
        """Return the live deployments (an empty list where the server has no live trading)."""
        try:
            body = self._get("/v1/deployments").json()
        except ClientError as exc:
            if exc.status in (404, 405):
                return []
            raise
        items = body.get("items", []) if isinstance(body, dict) else body
        return [d for d in items if isinstance(d, dict)]

    def deployment(self, deployment_id: str) -> dict[str, Any]:
        """Return one deployment with its books: positions, cash, equity, orders, the P&L series and state."""
        return self.client.deployment(deployment_id)

    # -- actions ----------------------------------------------------------------------------------

    def change_deployment(self, deployment_id: str, action: str, *, flatten: bool = False) -> dict[str, Any]:
        """Pause, resume, stop or kill (``flatten``: also close positions) a deployment; return it as listed."""
        if action == "pause":
            return self.client.pause_deployment(deployment_id)
        if action == "resume":
            return self.client.resume_deployment(deployment_id)
        if action == "stop":
            return self.client.stop_deployment(deployment_id)
        if action == "kill":
            return self.client.kill_deployment(deployment_id, flatten=flatten)
        raise ValueError(f"unknown deployment action {action!r}; choose pause, resume, stop or kill")

    def create_deployment(self, filename: str, code: bytes, spec: dict[str, Any]) -> dict[str, Any]:
        """Deploy uploaded code with the form's spec (``symbols``, ``schedule`` or ``on_bars``, ...); return it."""
        with tempfile.TemporaryDirectory(prefix="quantfleet-web-") as folder:
            path = Path(folder) / Path(filename).name
            path.write_bytes(code)
            body = dict(spec)
            return self.client.create_deployment(path, symbols=body.pop("symbols"), **body)

    def cancel(self, job_id: str) -> JobInfo:
        """Cancel a job."""
        return self.client.cancel(job_id)

    def rerun(self, job_id: str) -> JobInfo:
        """Submit a job's spec again."""
        return self.client.rerun(job_id)

    def submit(self, kind: str, filename: str, code: bytes, spec: dict[str, Any]) -> JobInfo:
        """Submit uploaded code (kind: backtest or sweep) with the form's spec."""
        with tempfile.TemporaryDirectory(prefix="quantfleet-web-") as folder:
            path = Path(folder) / Path(filename).name
            path.write_bytes(code)
            body = dict(spec)
            symbols = body.pop("symbols")
            if kind == "sweep":
                return self.client.submit_sweep(path, symbols=symbols, grid=body.pop("grid"), **body)
            return self.client.submit_backtest(path, symbols=symbols, **body)


@contextmanager
def gateway(api_url: str, token: str | None, **kw: Any) -> Iterator[Gateway]:
    """Yield a gateway for ``token``; raise :class:`~quantfleet.client.Unauthorized` when signed out."""
    if not token:
        raise Unauthorized("you are not signed in: sign in with an API token", status=401)
    made = Gateway(api_url, token, **kw)
    try:
        yield made
    finally:
        made.close()
