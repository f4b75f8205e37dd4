"""Prove the sandbox on this host before taking jobs: fail closed.

A canary runs in the real sandbox and tries what a hostile job would: open a
TCP connection to a listener this test starts on the host's loopback, reach a
host abstract Unix socket, read a world-readable secret file of the host,
find a host process's environment (a decoy holding a token), read
``/proc/1/environ``, write to the system, ``ptrace`` itself, create a user
namespace, open a netlink socket; it must fail at each, must run under a
seccomp filter, and must succeed writing ``/work``. Any layer that cannot be set up, or any canary
success, makes the report fail; :func:`require_sandbox` turns that into an
InfrastructureError naming the layer and its fix.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from quantfleet.core.errors import InfrastructureError
from quantfleet.sandbox.isolation.limits import MIB, SandboxLimits
from quantfleet.sandbox.isolation.process import Sandbox

__all__ = ["SelfTestReport", "require_sandbox", "sandbox_self_test"]

_CANARY = r"""
import json, os, socket, sys
port, abstract, secret_path, token = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
out = {}
def attempt(name, fn):
    try:
        fn()
        out[name] = "reached"
    except Exception as exc:
        out[name] = "blocked: " + type(exc).__name__
def tcp():
    socket.create_connection(("127.0.0.1", int(port)), timeout=2).close()
def unix():
    s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect("\0" + abstract); s.close()
def secret():
    open(secret_path).read()
def system():
    open("/usr/quantfleet-canary", "w").write("x")
attempt("network_tcp", tcp)
# Seccomp refuses the TCP socket itself; the network namespace must hold on its own: the host's listener must not
# be among this namespace's sockets either.
try:
    listening = {line.split()[1].rsplit(":", 1)[1] for line in open("/proc/net/tcp").readlines()[1:]}
except OSError:
    listening = set()
if "%04X" % int(port) in listening:
    out["network_tcp"] = "reached"
attempt("network_unix", unix)
attempt("host_file", secret)
attempt("readonly_system", system)
found = []
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            if token.encode() in open(f"/proc/{pid}/environ", "rb").read():
                found.append(pid)
        except OSError:
            pass
out["host_environ"] = "reached" if found else "blocked"
init = open("/proc/1/environ", "rb").read().split(b"\0")
out["init_environ"] = "reached: " + str(len([e for e in init if e])) if any(init) else "blocked"
try:
    # Only mount points of runtime binds may show there (a Python under /root), never the host's files.
    out["root_folder"] = "reached" if set(os.listdir("/root")) - {".pyenv", ".local"} else "blocked"
except OSError:
    out["root_folder"] = "blocked"
out["uid"] = "reached" if os.getuid() == 0 else "blocked"
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
mode = status.get("Seccomp", "?").strip()
out["seccomp"] = "ok" if mode == "2" else "failed: mode " + mode
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def refused(call, *args):
    def run():
        if getattr(libc, call)(*args) != 0:
            raise OSError(ctypes.get_errno(), call)
    return run
attempt("ptrace", refused("ptrace", 0, 0, 0, 0))  # PTRACE_TRACEME: allowed by the kernel, refused by seccomp
attempt("unshare", refused("unshare", 0x10000000))  # CLONE_NEWUSER
attempt("netlink", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW).close())
try:
    with open("/work/canary", "w") as f:
        f.write("ok")
    out["work_writable"] = "ok"
except OSError as exc:
    out["work_writable"] = "failed: " + str(exc)
print(json.dumps(out))
"""

_FIXES = {
    "network_tcp": "the job reached a host TCP listener: bubblewrap must unshare the network (--unshare-all)",
    "network_unix": "the job reached a host abstract socket: the network namespace is not private",
    "host_file": "the job read a host file outside its binds: check the bind list",
    "readonly_system": "the job wrote to /usr: the system must be bound read-only",
    "host_environ": "the job read a host process's environment: the pid namespace is not private",
    "init_environ": "bubblewrap's own environment is not empty: start it with an empty environment",
    "root_folder": "the job listed /root: only the runtime may be bound there",
    "uid": "the job runs as root: the drop to the slot's uid failed",
    "work_writable": "the job could not write /work: check the work tmpfs and its owner",
    "seccomp": "the job runs without a seccomp filter: bubblewrap must load it (--seccomp FD)",
    "ptrace": "the job could ptrace: the seccomp filter must deny ptrace (bubblewrap --seccomp FD)",
    "unshare": "the job created a user namespace: use --disable-userns and the seccomp filter",
    "netlink": "the job opened a netlink socket: the seccomp filter must deny non-Unix sockets",
}
_OK_CHECKS = frozenset({"work_writable", "seccomp"})
"""Checks whose good value is ``ok`` (the rest must be ``blocked...``)."""


@dataclass
class SelfTestReport:
    """The outcome of the self-test: each check, and what failed with its fix."""

    ok: bool
    checks: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """Return one line for a log."""
        if self.ok:
            return f"sandbox self-test passed ({len(self.checks)} checks, {self.seconds:.2f} s)"
        return "sandbox self-test FAILED: " + "; ".join(self.failures)


def _listeners() -> tuple[socket.socket, socket.socket, str, list[bool]]:
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(4)
    tcp.settimeout(0.2)
    name = f"quantfleet-canary-{secrets.token_hex(8)}"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind("\0" + name)
    unix.listen(4)
    unix.settimeout(0.2)
    return tcp, unix, name, []


def _accepting(servers: list[socket.socket], hits: list[bool], stop: threading.Event) -> threading.Thread:
    def loop() -> None:
        while not stop.is_set():
            for server in servers:
                try:
                    server.accept()[0].close()
                    hits.append(True)
                except OSError:
                    pass

    thread = threading.Thread(target=loop, name="quantfleet-canary-listener", daemon=True)
    thread.start()
    return thread


def sandbox_self_test(sandbox: Sandbox | None = None, *, timeout: float = 30.0) -> SelfTestReport:
    """Run the canary in the real sandbox; return the report (never raises for a failed layer)."""
    started = time.monotonic()
    own = sandbox is None
    try:
        sandbox = sandbox or Sandbox()
    except InfrastructureError as exc:
        return SelfTestReport(ok=False, failures=[str(exc)], seconds=time.monotonic() - started)
    folder = Path(tempfile.mkdtemp(prefix="quantfleet-selftest-"))
    os.chmod(folder, 0o755)  # the secret is world-readable on purpose: only the sandbox may keep it out
    secret = folder / "secret.txt"
    token = secrets.token_hex(16)
    secret.write_text(token)
    os.chmod(secret, 0o644)
    tcp, unix, abstract, hits = _listeners()
    stop = threading.Event()
    listener = _accepting([tcp, unix], hits, stop)
    decoy = subprocess.Popen(["sleep", str(int(timeout) + 5)], env={"QUANTFLEET_DECOY": token})
    report = SelfTestReport(ok=False)
    slot = None
    work = folder / "work"
    try:
        work.mkdir()
        slot = sandbox.acquire_slot()
        limits = SandboxLimits(wall_seconds=timeout, memory_bytes=256 * MIB, work_bytes=4 * MIB, work_inodes=64)
        sandbox.mount_work(work, limits=limits, slot=slot)
        port = str(tcp.getsockname()[1])
        argv = [sandbox.runtime.python, "-I", "-S", "-c", _CANARY, port, abstract, str(secret), token]
        result = sandbox.spawn(argv, work=work, limits=limits, slot=slot).run(timeout=timeout)
        text = result.output.decode(errors="replace").strip()
        try:
            report.checks = json.loads(text.splitlines()[-1])
        except (ValueError, IndexError):
            report.failures.append(
                f"sandbox layer 'bubblewrap': the canary did not run ({result.verdict.message}): {text[-400:]}"
            )
        for check, value in report.checks.items():
            good = value == "ok" if check in _OK_CHECKS else value.startswith("blocked")
            if not good:
                report.failures.append(f"{check}: {value}; {_FIXES.get(check, 'see the sandbox docs')}")
        if hits:
            report.failures.append("network_tcp: a host listener accepted a connection from the sandbox")
        if report.checks and not (work / "canary").is_file():
            report.failures.append("work_writable: the canary's file is not in the host's work folder")
    except InfrastructureError as exc:
        report.failures.append(str(exc))
    finally:
        stop.set()
        listener.join(2)
        tcp.close()
        unix.close()
        decoy.kill()
        decoy.wait()
        if work.exists():
            sandbox.unmount_work(work)
        if slot is not None:
            sandbox.release_slot(slot)
        shutil.rmtree(folder, ignore_errors=True)
        if own:
            sandbox.close()
    report.ok = not report.failures and bool(report.checks)
    report.seconds = time.monotonic() - started
    return report


def require_sandbox(report: SelfTestReport) -> None:
    """Raise InfrastructureError (the failed layers and their fixes) unless the self-test passed."""
    if not report.ok:
        raise InfrastructureError(
            "the sandbox self-test failed, so this worker takes no jobs: " + "; ".join(report.failures)
        )
