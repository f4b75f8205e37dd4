"""Per-job limits: the issue's defaults, overridable up to the admin's maxima, and carried whole into the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantfleet.core.errors import ConfigError
from quantfleet.core.settings import LimitMaxima, Settings, load_settings
from quantfleet.dispatch.execute import limits_of
from quantfleet.dispatch.sandboxed import CPU_STARTUP_ALLOWANCE_S, sandbox_limits
from quantfleet.jobs import JobService, JobSpec, Limits
from quantfleet.jobs.errors import LimitAboveMaximum
from quantfleet.sandbox.isolation import DEFAULT_SANDBOX_LIMITS, GIB, MIB

CODE = b"def run(ctx):\n    pass\n"


def _spec(service: JobService, **limits: object) -> JobSpec:
    ref = service.put_code(CODE, "s.py")
    return JobSpec(code=ref, universe=("AAA",), snapshot=0, owner="t", limits=Limits(**limits))  # type: ignore[arg-type]


def test_the_defaults_are_the_sandbox_defaults() -> None:
    got = sandbox_limits(limits_of(JobSpec.model_validate(
        {"code": {"sha256": "0" * 64, "name": "s.py"}, "universe": ["AAA"], "snapshot": 0, "owner": "t"}
    )))  # fmt: skip
    assert (got.wall_seconds, got.cpus, got.memory_bytes, got.pids, got.open_files) == (1800, 1.0, 2 * GIB, 256, 256)
    assert (got.file_size_bytes, got.work_bytes, got.work_inodes) == (1 * GIB, 2 * GIB, 10_000)
    assert (got.tmp_bytes, got.shm_bytes) == (DEFAULT_SANDBOX_LIMITS.tmp_bytes, DEFAULT_SANDBOX_LIMITS.shm_bytes)
    limits = Limits()
    assert (limits.log_mb, limits.artifact_files, limits.artifact_mb, limits.network) == (10, 100, 1024, "none")


def test_every_limit_of_the_job_reaches_the_sandbox() -> None:
    asked = Limits(
        wall_time_s=60, cpu_time_s=20, cpus=2, memory_mb=512, processes=64, open_files=128, file_size_mb=8,
        work_mb=64, work_files=500, log_mb=2, artifact_files=7, artifact_mb=9,
    )  # fmt: skip
    spec = JobSpec(code={"sha256": "0" * 64, "name": "s.py"}, universe=("AAA",), snapshot=0, owner="t", limits=asked)  # type: ignore[arg-type]
    child = limits_of(spec)
    got = sandbox_limits(child)
    assert (got.wall_seconds, got.cpus, got.memory_bytes, got.pids, got.open_files) == (60, 2, 512 * MIB, 64, 128)
    assert (got.file_size_bytes, got.work_bytes, got.work_inodes) == (8 * MIB, 64 * MIB, 500)
    assert got.cpu_seconds == 20 + CPU_STARTUP_ALLOWANCE_S  # the child counts the job's own 20 s from its start
    assert (child.log_bytes, child.artifact_files, child.artifact_bytes) == (2 * MIB, 7, 9 * MIB)


def test_a_request_above_the_admin_maximum_is_refused_naming_the_limit_the_maximum_and_the_fix(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path, limits_max=LimitMaxima(memory_mb=4096, wall_time_s=600))
    service = JobService.from_settings(settings)
    with pytest.raises(LimitAboveMaximum) as caught:
        service.submit(_spec(service, memory_mb=8192))
    message = str(caught.value)
    assert "limits.memory_mb = 8192 is above this installation's maximum of 4096" in message
    assert "ask for at most 4096 (or leave it out for 2048)" in message
    assert "QUANTFLEET_LIMITS_MAX__MEMORY_MB" in message
    assert (caught.value.limit, caught.value.maximum) == ("memory_mb", 4096)
    with pytest.raises(LimitAboveMaximum, match=r"limits\.wall_time_s = 601 .* maximum of 600; .* out for 600\)"):
        service.submit(_spec(service, wall_time_s=601))
    assert service.queue_depth() == 0
    at_max = service.submit(_spec(service, memory_mb=4096, wall_time_s=600))  # at the maximum: accepted
    assert (at_max.spec.limits.memory_mb, at_max.spec.limits.wall_time_s) == (4096, 600)
    # The default wall time (1800 s) is above the maximum: left out, the job runs at the maximum.
    lowered = service.submit(_spec(service))
    assert service.get(lowered.id).spec.limits.wall_time_s == 600


def test_the_maxima_are_read_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTFLEET_LIMITS_MAX__PROCESSES", "128")
    settings = load_settings(home=tmp_path)
    assert settings.limits_max.processes == 128
    service = JobService.from_settings(settings)
    with pytest.raises(LimitAboveMaximum, match=r"limits\.processes = 129 .* maximum of 128"):
        service.submit(_spec(service, processes=129))
    monkeypatch.setenv("QUANTFLEET_LIMITS_MAX__PROCESSES", "many")
    with pytest.raises(ConfigError, match="QUANTFLEET_LIMITS_MAX__PROCESSES"):
        load_settings(home=tmp_path)


def test_the_network_cannot_be_asked_for() -> None:
    with pytest.raises(ValueError, match="network"):
        Limits(network="host")  # type: ignore[arg-type]


def test_every_limit_has_a_maximum_setting() -> None:
    assert set(LimitMaxima.model_fields) == set(Limits.model_fields) - {"network"}
