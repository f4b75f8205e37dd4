"""The parent side of the sandbox: run one job's process isolated, limited, and ended as a group.

Layers, outermost first: a per-job cgroup (memory with swap, processes, CPU),
a capped tmpfs ``/work``, resource limits set before exec, a drop to a
per-slot uid, bubblewrap (empty environment, every namespace new, no
network, read-only system and runtime), and a seccomp filter (plus an
optional strict mode: no exec or fork). :func:`sandbox_self_test` proves them
on this host before a worker takes jobs. Imports only the standard library,
``pyseccomp`` (ctypes over libseccomp) and :mod:`quantfleet.core`: no
database code or credentials reach it.
"""

from quantfleet.sandbox.isolation.bwrap import Bind, PythonRuntime, bwrap_command
from quantfleet.sandbox.isolation.cgroup import CgroupLayout, JobCgroup, detect_cgroups
from quantfleet.sandbox.isolation.limits import DEFAULT_SANDBOX_LIMITS, GIB, MIB, SandboxLimits
from quantfleet.sandbox.isolation.process import (
    IsolationConfig,
    Sandbox,
    SandboxedProcess,
    SandboxResult,
    sandbox_environment,
)
from quantfleet.sandbox.isolation.selftest import SelfTestReport, require_sandbox, sandbox_self_test
from quantfleet.sandbox.isolation.verdict import Verdict, VerdictKind

__all__ = [
    "DEFAULT_SANDBOX_LIMITS",
    "GIB",
    "MIB",
    "Bind",
    "CgroupLayout",
    "IsolationConfig",
    "JobCgroup",
    "PythonRuntime",
    "Sandbox",
    "SandboxLimits",
    "SandboxResult",
    "SandboxedProcess",
    "SelfTestReport",
    "Verdict",
    "VerdictKind",
    "bwrap_command",
    "detect_cgroups",
    "require_sandbox",
    "sandbox_environment",
    "sandbox_self_test",
]
