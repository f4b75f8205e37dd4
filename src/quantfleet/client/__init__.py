"""The Python client of the quantfleet HTTP API: a small public surface over httpx.

::

    from quantfleet.client import Client

    with Client("http://127.0.0.1:8000", token) as qf:
        job = qf.submit_backtest("examples/sma_crossover.py", symbols=["AAA", "BBB"], params={"fast": 5})
        print(qf.wait(job.id).metrics)

It imports only the standard library, httpx and quantfleet's core: no job
service, store or engine, so it installs anywhere the server can be reached.
"""

from quantfleet.client._client import KINDS, Client
from quantfleet.client._errors import (
    BadRequest,
    ClientError,
    Conflict,
    Forbidden,
    NotFound,
    QuotaExceeded,
    RateLimited,
    ServerError,
    ServerUnavailable,
    Unauthorized,
)
from quantfleet.client._models import ArtifactInfo, JobInfo

__all__ = [
    "KINDS",
    "ArtifactInfo",
    "BadRequest",
    "Client",
    "ClientError",
    "Conflict",
    "Forbidden",
    "JobInfo",
    "NotFound",
    "QuotaExceeded",
    "RateLimited",
    "ServerError",
    "ServerUnavailable",
    "Unauthorized",
]
