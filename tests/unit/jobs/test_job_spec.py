"""Job specs are frozen, strict and reproducible; ids have one form."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from quantfleet.jobs import CodeRef, JobKind, JobNotFound, JobSpec, new_job_id, parse_job_id

CODE = CodeRef(sha256="ab" * 32, name="sma.py", class_name="SmaCross")


def _spec(**changes: object) -> JobSpec:
    fields: dict[str, object] = {"code": CODE, "universe": ["AAA"], "snapshot": 7, "owner": "ana"}
    fields.update(changes)
    return JobSpec.model_validate(fields)


def test_frozen_and_strict() -> None:
    spec = _spec()
    with pytest.raises(ValidationError):
        spec.snapshot = 8  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        _spec(unknown=1)
    with pytest.raises(ValidationError, match="extra"):
        CodeRef.model_validate({"sha256": "ab" * 32, "name": "x.py", "path": "/tmp"})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"snapshot": None}, "snapshot"),
        ({"snapshot": -1}, "snapshot"),
        ({"universe": []}, "universe"),
        ({"universe": ["A", "A"]}, "twice"),
        ({"start": "2024-02-01", "end": "2024-01-01"}, "after"),
        ({"kind": "sweep"}, "needs its settings"),
        ({"sweep": {"grid": {"fast": [1, 2]}}}, "takes no 'sweep'"),
        ({"params": {"x": float("nan")}}, "plain JSON"),
        ({"params": {"x": object()}}, "plain JSON"),
        ({"parent": "not-an-id"}, "parent"),
        ({"limits": {"memory_mb": 0}}, "memory_mb"),
        ({"code": {"sha256": "AB" * 32, "name": "x.py"}}, "sha256"),
        ({"code": {"sha256": "ab" * 32, "name": "../x.py"}}, "plain file name"),
    ],
)
def test_bad_specs_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _spec(**changes)


def test_sweep_kinds_take_settings() -> None:
    spec = _spec(kind="walk-forward", sweep={"train": "2y", "test": "6m"})
    assert spec.kind is JobKind.WALK_FORWARD


def test_fingerprint_ignores_key_order_but_not_values() -> None:
    a = _spec(params={"fast": 1, "slow": 2}, engine={"fill_at": "open", "cash": 1e6})
    b = _spec(engine={"cash": 1e6, "fill_at": "open"}, params={"slow": 2, "fast": 1})
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != _spec(params={"fast": 1, "slow": 3}).fingerprint()
    assert JobSpec.model_validate_json(a.model_dump_json()) == a


def test_job_ids_are_32_hex_digits() -> None:
    job_id = new_job_id()
    assert len(job_id) == 32
    assert int(job_id, 16) >= 0
    assert parse_job_id(str(uuid.UUID(job_id)).upper()) == job_id
    with pytest.raises(JobNotFound, match="quantfleet jobs ls"):
        parse_job_id("nope")
