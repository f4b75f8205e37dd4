"""Submit, list and show over both metadata databases: SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from quantfleet.api import create_app
from quantfleet.core.settings import Settings
from quantfleet.jobs import JobService
from quantfleet.testing.jobs import tiny_market
from quantfleet.users import UserService

HOLD = b"def run(ctx):\n    pass\n"


def test_submit_list_show(db_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url=db_url)
    tiny_market(settings)
    service = JobService.from_settings(settings)
    users = UserService(service.db)
    users.add_user("alice")
    token, _ = users.create_token("alice")
    app = create_app(settings, service=service, auth=users)
    try:
        with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
            parts = {"strategy": ("hold.py", HOLD), "spec": (None, json.dumps({"symbols": ["AAA", "BBB"]}))}
            key = {"Idempotency-Key": "db"}
            created = client.post("/v1/backtests", files=parts, headers=key)
            assert created.status_code == 201, created.text
            assert client.post("/v1/backtests", files=parts, headers=key).json() == created.json()
            job_id = created.json()["id"]
            listed = client.get("/v1/backtests").json()
            assert [j["id"] for j in listed["items"]] == [job_id]
            shown = client.get(f"/v1/backtests/{job_id}").json()
            assert shown["spec"]["universe"] == ["AAA", "BBB"]
            assert shown["owner"] == "alice"
    finally:
        service.db.dispose()
