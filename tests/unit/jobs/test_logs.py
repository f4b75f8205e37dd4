"""Logs as numbered parts: followable while the job runs, capped, on a local folder and on S3."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from quantfleet.core.errors import UserError
from quantfleet.jobs import JobService, JobSpec, JobState, Outcome
from quantfleet.jobs.logs import LogWriter, read_parts
from quantfleet.store import Database, ObjectStore
from quantfleet.testing import FrozenClock

SpecFactory = Callable[..., JobSpec]


def test_follow_a_running_log(service: JobService, new_spec: SpecFactory, tmp_path: Path) -> None:
    job = service.submit(new_spec())
    assert service.read_log(job.id).text == ""
    claim = service.claim("w1")
    assert claim is not None
    log = service.log_writer(claim)
    log.write("bar 1\n")
    log.write("bar 2 — €\n")  # multi-byte characters keep offsets in bytes consistent
    assert service.read_log(job.id).text == ""  # written, not yet flushed
    log.flush()
    log.flush()  # nothing buffered: no empty part
    first = service.read_log(job.id)
    assert (first.text, first.attempt, first.complete) == ("bar 1\nbar 2 — €\n", 1, False)
    log.write("bar 3\n")
    log.close()
    parts = sorted(p.name for p in (tmp_path / "objects" / "logs" / job.id / "1").iterdir())
    assert parts == ["00001.txt", "00002.txt"]
    more = service.read_log(job.id, offset=first.next_offset)
    assert more.text == "bar 3\n"
    assert service.read_log(job.id, offset=more.next_offset).text == ""
    assert service.finish(claim, Outcome(state=JobState.SUCCEEDED))
    assert service.read_log(job.id).complete
    assert service.read_log(job.id, attempt=1).text == "bar 1\nbar 2 — €\nbar 3\n"
    with pytest.raises(UserError, match="no attempt 2"):
        service.read_log(job.id, attempt=2)


def test_each_attempt_has_its_own_log(service: JobService, new_spec: SpecFactory, clock: FrozenClock) -> None:
    job = service.submit(new_spec())
    first = service.claim("w1")
    assert first is not None
    with service.log_writer(first) as log:
        log.write("attempt one\n")
    clock.advance(31)
    service.reap()
    second = service.claim("w2")
    assert second is not None
    with service.log_writer(second) as log:
        log.write("attempt two\n")
    assert service.read_log(job.id).text == "attempt two\n"
    assert service.read_log(job.id, attempt=1).text == "attempt one\n"
    assert service.read_log(job.id, attempt=1).complete
    assert not service.read_log(job.id).complete


def test_cap_truncates_with_a_marker(tmp_path: Path) -> None:
    objects = ObjectStore(str(tmp_path))
    with LogWriter(objects, "j" * 32, 1, cap_bytes=100) as log:
        log.write("x" * 60)
        log.flush()
        log.write("é" * 30)  # 60 bytes: only 40 of them (20 characters) fit
        log.write("lost line\n")
        assert log.truncated
        assert log.bytes_written == 100
    text, offset = read_parts(objects, "j" * 32, 1)
    assert text.startswith("x" * 60 + "é" * 20)
    assert "lost line" not in text
    assert text.endswith("log truncated at 100 bytes; later output was dropped]\n")
    assert text.count("truncated") == 1
    assert offset == len(text.encode())


def test_the_service_caps_logs(db: Database, tmp_path: Path, new_spec: SpecFactory, service: JobService) -> None:
    small = JobService(db, service.objects, clock=service.clock, log_cap_bytes=10)
    small.submit(new_spec())
    claim = small.claim("w1")
    assert claim is not None
    with small.log_writer(claim) as log:
        log.write("0123456789abcdef")
    assert small.read_log(claim.job_id).text.startswith("0123456789\n[quantfleet: log truncated")


@pytest.mark.server
@pytest.mark.usefixtures("aws_env")
def test_logs_on_s3_are_parts_and_followable(s3_bucket: str, s3_storage: object, s3_client: object) -> None:
    from quantfleet.data import StorageOptions

    assert isinstance(s3_storage, StorageOptions)
    url = f"s3://{s3_bucket}/qf"
    objects = ObjectStore(url, fs=s3_storage.filesystem(url))
    job = "a" * 32
    log = LogWriter(objects, job, 1)
    log.write("line 1\n")
    log.flush()
    text, offset = read_parts(objects, job, 1)
    assert text == "line 1\n"
    log.write("line 2\n")
    log.close()
    assert read_parts(objects, job, 1, offset) == ("line 2\n", offset + 7)
    keys = sorted(o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"])  # type: ignore[attr-defined]
    assert keys == [f"qf/logs/{job}/1/00001.txt", f"qf/logs/{job}/1/00002.txt"]
