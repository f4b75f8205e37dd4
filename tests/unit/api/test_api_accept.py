"""A submission a Celery fleet could not be told of: withdrawn and answered 503, unless a worker already runs it.

The broker is a port (:class:`~quantfleet.dispatch.notify.Dispatch`); here a
fake one that is up when asked, then fails the publish after the commit, as a
broker that goes down in that instant does. The real one, against Redis
restarted for real, is in tests/integration/test_celery_fleet.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from quantfleet.api import create_app
from quantfleet.api.accept import WITHDRAWN_BY
from quantfleet.core.settings import Settings
from quantfleet.dispatch.notify import BrokerUnavailable
from quantfleet.jobs import Claim, JobId, JobService, JobState
from quantfleet.users import UserService

HOLD = b"from quantfleet import Strategy\n\n\nclass Hold(Strategy):\n    def on_bar(self, ctx, bars):\n        pass\n"
SPEC = json.dumps({"symbols": ["AAA"], "start": "2024-01-01", "end": "2024-03-31"})


class FlakyBroker:
    """A broker that answers its check, then loses ``fail`` publishes; ``claimer`` takes the job in that instant."""

    queue = "quantfleet"

    def __init__(self, *, fail: int, claimer: JobService | None = None) -> None:
        self.fail = fail
        self.claimer = claimer
        self.claims: list[Claim | None] = []
        self.published: list[JobId] = []

    def require(self) -> None:
        pass

    def check(self) -> int:
        return 0

    def publish(self, job_id: JobId) -> None:
        if self.claimer is not None:  # a worker polling the database took the job before the publish failed
            self.claims.append(self.claimer.claim_job("w1", job_id))
        if self.fail:
            self.fail -= 1
            raise BrokerUnavailable("the job broker at redis://127.0.0.1:6379/0 is unreachable (connection reset)")
        self.published.append(job_id)


@pytest.fixture
def api(settings: Settings, service: JobService, users: UserService) -> Iterator[tuple[TestClient, FlakyBroker]]:
    users.add_user("ana")
    token = users.create_token("ana")[0]
    broker = FlakyBroker(fail=1)
    app = create_app(settings, service=service, auth=users, dispatch=broker)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}, raise_server_exceptions=False) as http:
        yield http, broker


def _post(http: TestClient, key: str) -> httpx.Response:
    files = {"strategy": ("hold.py", HOLD, "text/x-python"), "spec": (None, SPEC, "application/json")}
    return http.post("/v1/backtests", files=files, headers={"Idempotency-Key": key})


def test_a_job_the_fleet_was_not_told_of_is_withdrawn_and_the_retry_makes_it_once(
    api: tuple[TestClient, FlakyBroker], service: JobService
) -> None:
    http, broker = api
    refused = _post(http, "k1")
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"]
    [withdrawn] = service.list(owner="ana").items
    assert (withdrawn.state, withdrawn.cancelled_by) == (JobState.CANCELLED, WITHDRAWN_BY)
    assert "could not be published" in (service.events(withdrawn.id)[-1].detail or "")
    again = _post(http, "k1")  # the client's retry, the broker back
    assert again.status_code == 201, again.text
    assert broker.published == [again.json()["id"]]
    assert service.get(again.json()["id"]).state is JobState.QUEUED
    assert len(service.list(owner="ana").items) == 2


def test_a_job_a_worker_claimed_before_the_publish_failed_runs_and_is_accepted(
    api: tuple[TestClient, FlakyBroker], service: JobService
) -> None:
    http, broker = api
    broker.claimer = service
    accepted = _post(http, "k1")
    assert accepted.status_code == 201, accepted.text  # a 503 would make the client submit it again
    [claim] = broker.claims
    assert claim is not None
    job = service.get(accepted.json()["id"])
    assert (job.state, job.cancel_requested_at) == (JobState.RUNNING, None)  # not cancelled under the worker
