"""Hostile jobs that go for the kernel: ptrace, raw system calls, nested namespaces, terminals, sockets, io_uring.

Each program reports, per attempt, ``ok`` or the errno name it got; the
filter's answer is ``EPERM`` (``EAFNOSUPPORT`` for sockets, ``ENOSYS`` for
``clone3``). The ``bare`` runs drop only the seccomp layer, to show that what
the filter refuses would otherwise work here (so these tests can fail), and
that the layers under it (``--disable-userns``, the new session) hold alone.
"""

from __future__ import annotations

import json
import platform
import secrets
import signal
import socket
import threading
import time
from pathlib import Path

import pyseccomp
import pytest

import quantfleet.sandbox.isolation.process as process

RAW = """
import ctypes, errno, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
out = {}
def raw(label, name, *args):
    ctypes.set_errno(0)
    passed = [a if isinstance(a, (bytes, ctypes.Array)) else ctypes.c_long(a) for a in args]
    result = libc.syscall(ctypes.c_long(NR[name]), *passed)
    code = ctypes.get_errno()
    out[label] = "ok" if result >= 0 else errno.errorcode.get(code, str(code))
    return result
def report():
    print("RESULT " + json.dumps(out), flush=True)
"""


def numbers(*names: str) -> str:
    """Return the host's numbers of ``names`` (the sandbox runs the same kernel), as the program's argument."""
    return json.dumps({name: pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name) for name in names})


def result(text: str) -> dict[str, str]:
    """Return the program's report (its RESULT line)."""
    lines = [line for line in text.splitlines() if line.startswith("RESULT ")]
    assert lines, text
    return dict(json.loads(lines[-1].removeprefix("RESULT ")))


@pytest.fixture
def bare(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the next jobs without the seccomp filter (every other layer as usual)."""
    real = process.bwrap_command

    def without_seccomp(argv: list[str], **kw: object) -> list[str]:
        command = real(argv, **kw)  # type: ignore[arg-type]
        at = command.index("--seccomp")
        return command[:at] + command[at + 2 :]

    monkeypatch.setattr(process, "bwrap_command", without_seccomp)


PTRACE = (
    RAW
    + """
import signal, time
sibling = os.fork()
if sibling == 0:
    time.sleep(30)
    os._exit(0)
PTRACE_TRACEME, PTRACE_ATTACH, PTRACE_SEIZE = 0, 16, 0x4206
raw("attach", "ptrace", PTRACE_ATTACH, sibling, 0, 0)
raw("seize", "ptrace", PTRACE_SEIZE, sibling, 0, 0)
buf = ctypes.create_string_buffer(16)
local = (ctypes.c_uint64 * 2)(ctypes.addressof(buf), 16)
remote = (ctypes.c_uint64 * 2)(0x400000, 16)
raw("vm_readv", "process_vm_readv", sibling, local, 1, remote, 1, 0)
raw("pidfd_getfd", "pidfd_getfd", raw("pidfd", "pidfd_open", sibling, 0), 1, 0)
child = os.fork()
if child == 0:
    code = libc.ptrace(PTRACE_TRACEME, 0, 0, 0)
    os._exit(0 if code == 0 else ctypes.get_errno())
out["traceme"] = "ok" if (c := os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])) == 0 else errno.errorcode[c]
status = open(f"/proc/{sibling}/status").read()
out["sibling_tracer"] = status.split("TracerPid:")[1].split()[0]
os.kill(sibling, signal.SIGKILL)
os.waitpid(sibling, 0)
report()
"""
)
PTRACE_CALLS = numbers("ptrace", "process_vm_readv", "pidfd_open", "pidfd_getfd")


def test_ptrace_of_a_sibling_or_of_itself_is_refused(run_job) -> None:
    job = run_job(PTRACE, args=(PTRACE_CALLS,))
    got = result(job.text)
    assert got == {
        "attach": "EPERM",
        "seize": "EPERM",
        "vm_readv": "EPERM",
        "pidfd": "ok",  # a pidfd is only a handle: harmless, and allowed
        "pidfd_getfd": "EPERM",
        "traceme": "EPERM",
        "sibling_tracer": "0",  # nobody traces the sibling
    }, job.text
    assert job.result.verdict.kind.value == "ok", job.text


def test_without_the_filter_ptrace_works_in_the_sandbox(run_job, bare: None) -> None:
    got = result(run_job(PTRACE, args=(PTRACE_CALLS,)).text)
    assert got["attach"] == "ok"
    assert got["traceme"] == "ok"
    assert got["sibling_tracer"] != "0"


KERNEL = (
    RAW
    + """
buf = ctypes.create_string_buffer(256)
raw("unshare", "unshare", 0x10000000)
raw("setns", "setns", os.open("/proc/self/ns/user", os.O_RDONLY), 0)
raw("mount", "mount", b"none", b"/tmp", b"tmpfs", 0, 0)
raw("umount2", "umount2", b"/tmp", 0)
raw("fsopen", "fsopen", b"tmpfs", 0)
raw("open_tree", "open_tree", -100, b"/usr", 1)
raw("pivot_root", "pivot_root", b"/tmp", b"/tmp")
raw("chroot", "chroot", b"/tmp")
raw("keyctl", "keyctl", 0, -3, 1)  # KEYCTL_GET_KEYRING_ID of the session keyring, creating it
raw("add_key", "add_key", b"user", b"quantfleet", b"x", 1, -3)
raw("request_key", "request_key", b"user", b"quantfleet", 0, 0)
raw("bpf", "bpf", 0, buf, 64)
raw("perf_event_open", "perf_event_open", buf, 0, -1, -1, 0)
raw("userfaultfd", "userfaultfd", 1)  # UFFD_USER_MODE_ONLY: allowed to anyone by the kernel
raw("init_module", "init_module", buf, 16, b"")
raw("finit_module", "finit_module", os.open("/usr/bin/true", os.O_RDONLY), b"", 0)
raw("delete_module", "delete_module", b"ext4", 0)
raw("kexec_load", "kexec_load", 0, 0, 0, 0)
raw("swapon", "swapon", b"/work/swap", 0)
raw("open_by_handle_at", "open_by_handle_at", -100, buf, 0)
raw("personality", "personality", 0x0040000)  # ADDR_NO_RANDOMIZE
raw("clone3", "clone3", buf, 88)
raw("plain_personality", "personality", 0)  # PER_LINUX, what the job runs under: allowed
report()
"""
)
KERNEL_CALLS = numbers(
    "unshare", "setns", "mount", "umount2", "fsopen", "open_tree", "pivot_root", "chroot", "keyctl", "add_key",
    "request_key", "bpf", "perf_event_open", "userfaultfd", "init_module", "finit_module", "delete_module",
    "kexec_load", "swapon", "open_by_handle_at", "personality", "clone3",
)  # fmt: skip


def test_raw_system_calls_through_ctypes_are_refused(run_job) -> None:
    job = run_job(KERNEL, args=(KERNEL_CALLS,))
    got = result(job.text)
    expected = dict.fromkeys(json.loads(KERNEL_CALLS), "EPERM") | {"clone3": "ENOSYS", "plain_personality": "ok"}
    assert got == expected, job.text


def test_without_the_filter_the_kernel_answers_those_calls_itself(run_job, bare: None) -> None:
    got = result(run_job(KERNEL, args=(KERNEL_CALLS,)).text)
    # Keyrings, userfaultfd and personality flags are open to any process: only the filter keeps them out.
    assert {got["keyctl"], got["add_key"], got["userfaultfd"], got["personality"]} == {"ok"}, got
    assert got["clone3"] != "ENOSYS"
    # The rest the kernel refuses to the job anyway (no capabilities): the filter is a second wall there.
    assert got["mount"] == "EPERM"
    assert got["unshare"] == "ENOSPC"  # --disable-userns holds on its own


NESTED = (
    RAW
    + """
import subprocess
for flags in (["-U"], ["-U", "-r"], ["-m"], ["-n"], ["-p", "-f"], ["-U", "-m", "-n", "-p", "-f"]):
    run = subprocess.run(["/usr/bin/unshare", *flags, "/bin/true"], capture_output=True, text=True)
    out["unshare " + " ".join(flags)] = "ok" if run.returncode == 0 else run.stderr.strip().split(": ")[-1]
SIGCHLD = 17
for name, flag in (("CLONE_NEWUSER", 0x10000000), ("CLONE_NEWNS", 0x20000), ("CLONE_NEWPID", 0x20000000),
                   ("CLONE_NEWNET", 0x40000000), ("CLONE_NEWUSER|NEWNET", 0x50000000)):
    pid = raw("clone " + name, "clone", flag | SIGCHLD, 0, 0, 0, 0)
    if pid == 0:
        os._exit(0)  # only if the clone went through: the copy leaves at once
    if pid > 0:
        os.waitpid(pid, 0)
report()
"""
)


def test_nested_namespaces_are_refused(run_job) -> None:
    job = run_job(NESTED, args=(numbers("clone"),))
    got = result(job.text)
    assert all(value == "Operation not permitted" for key, value in got.items() if key.startswith("unshare")), got
    assert all(value == "EPERM" for key, value in got.items() if key.startswith("clone")), got
    assert len(got) == 11


def test_without_the_filter_disable_userns_still_refuses_a_user_namespace(run_job, bare: None) -> None:
    got = result(run_job(NESTED, args=(numbers("clone"),)).text)
    assert got["clone CLONE_NEWUSER"] == "ENOSPC", got  # the user-namespace limit --disable-userns sets
    assert got["unshare -U"] != "ok"


TERMINAL = (
    RAW
    + """
import fcntl, pty, termios
out["std_ttys"] = str([os.isatty(fd) for fd in (0, 1, 2)])
try:
    open("/dev/tty")
    out["dev_tty"] = "ok"
except OSError as exc:
    out["dev_tty"] = errno.errorcode[exc.errno]
out["own_session"] = "ok" if os.getsid(0) != os.getsid(1) or os.getsid(0) == 1 else "shared"
# Its own terminal, made its controlling one (a new session): the kernel lets one type into that; the filter not.
pid, master = pty.fork()
if pid == 0:
    for label, request in (("TIOCSTI", 0x5412), ("TIOCSTI_high_bits", 0x5412 | 1 << 32), ("TIOCLINUX", 0x541C)):
        raw(label, "ioctl", 0, request, ctypes.create_string_buffer(b"\\x0b" if label == "TIOCLINUX" else b"x"))
    report()
    os._exit(0)
text = b""
while True:
    try:
        chunk = os.read(master, 4096)
    except OSError:
        break
    if not chunk:
        break
    text += chunk
os.waitpid(pid, 0)
print(text.decode(errors="replace").replace("\\r", ""))
report()
"""
)


def test_terminal_injection_is_refused(run_job) -> None:
    job = run_job(TERMINAL, args=(numbers("ioctl"),))
    inner, outer = [json.loads(line.removeprefix("RESULT ")) for line in job.text.splitlines() if "RESULT " in line]
    injected = {key: inner.get(key) for key in ("TIOCSTI", "TIOCSTI_high_bits", "TIOCLINUX")}
    assert injected == {"TIOCSTI": "EPERM", "TIOCSTI_high_bits": "EPERM", "TIOCLINUX": "EPERM"}, job.text
    # No terminal of the host reaches the job: none of its streams is one, and it has no controlling terminal.
    assert outer["std_ttys"] == "[False, False, False]"
    assert outer["dev_tty"] == "ENXIO"


def test_without_the_filter_a_job_can_type_into_its_own_terminal(run_job, bare: None) -> None:
    job = run_job(TERMINAL, args=(numbers("ioctl"),))
    inner = json.loads(next(line for line in job.text.splitlines() if "RESULT " in line).split("RESULT ", 1)[1])
    assert inner["TIOCSTI"] == "ok", job.text  # so the test above can fail; the host's terminal is out of reach


SOCKETS = (
    RAW
    + """
import socket
for label, family, kind, proto in (
    ("netlink_route", socket.AF_NETLINK, socket.SOCK_RAW, 0),
    ("netlink_uevent", socket.AF_NETLINK, socket.SOCK_DGRAM, 15),
    ("netlink_audit", socket.AF_NETLINK, socket.SOCK_RAW, 9),
    ("netlink_netfilter", socket.AF_NETLINK, socket.SOCK_RAW, 12),
    ("inet", socket.AF_INET, socket.SOCK_STREAM, 0),
    ("inet6", socket.AF_INET6, socket.SOCK_DGRAM, 0),
    ("raw_icmp", socket.AF_INET, socket.SOCK_RAW, 1),
    ("packet", socket.AF_PACKET, socket.SOCK_RAW, 0),
    ("alg", 38, socket.SOCK_SEQPACKET, 0),
    ("vsock", 40, socket.SOCK_STREAM, 0),
):
    try:
        socket.socket(family, kind, proto).close()
        out[label] = "ok"
    except OSError as exc:
        out[label] = errno.errorcode[exc.errno]
raw("inet_high_bits", "socket", socket.AF_INET | 1 << 32, socket.SOCK_STREAM, 0)  # the kernel reads an int
# Unix sockets work inside the job, abstract ones too: between its own processes only.
a, b = socket.socketpair()
a.send(b"ping")
out["socketpair"] = "ok" if b.recv(4) == b"ping" else "broken"
server = socket.socket(socket.AF_UNIX)
server.bind("\\0" + sys.argv[2])
server.listen()
client = socket.socket(socket.AF_UNIX)
client.connect("\\0" + sys.argv[2])
conn, _ = server.accept()
client.send(b"pong")
out["abstract_inside"] = "ok" if conn.recv(4) == b"pong" else "broken"
open("/work/bound", "w").write("bound")
import time
deadline = time.monotonic() + 10
while not os.path.exists("/work/probed") and time.monotonic() < deadline:
    time.sleep(0.02)
report()
"""
)


def test_netlink_and_every_non_unix_socket_are_refused_and_abstract_sockets_stay_inside(
    run_job, tmp_path: Path
) -> None:
    name = f"quantfleet-job-{secrets.token_hex(6)}"
    host_view: list[str] = []

    # The job binds an abstract socket and waits; the host tries to reach it meanwhile.
    def host_side() -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            found = list(tmp_path.glob("job*/bound"))
            if found:
                client = socket.socket(socket.AF_UNIX)
                try:
                    client.connect("\0" + name)
                    host_view.append("REACHED")
                except OSError as exc:
                    host_view.append(type(exc).__name__)
                finally:
                    client.close()
                (found[0].parent / "probed").write_text("")
                return
            time.sleep(0.02)

    helper = threading.Thread(target=host_side)
    helper.start()
    job = run_job(SOCKETS, args=(numbers("socket"), name))
    helper.join(20)
    got = result(job.text)
    refused = {key: value for key, value in got.items() if key not in ("socketpair", "abstract_inside")}
    assert set(refused.values()) == {"EAFNOSUPPORT"}, got
    assert len(refused) == 11
    assert got["socketpair"] == "ok"
    assert got["abstract_inside"] == "ok"
    assert host_view == ["ConnectionRefusedError"]  # the job's abstract socket is in its own network namespace


IO_URING = (
    RAW
    + """
params = ctypes.create_string_buffer(120)
fd = raw("setup", "io_uring_setup", 8, params)
raw("enter", "io_uring_enter", 0, 1, 0, 0, 0, 0)
raw("register", "io_uring_register", 0, 0, 0, 0)
report()
"""
)


def test_io_uring_setup_is_refused(run_job) -> None:
    job = run_job(IO_URING, args=(numbers("io_uring_setup", "io_uring_enter", "io_uring_register"),))
    assert result(job.text) == {"setup": "EPERM", "enter": "EPERM", "register": "EPERM"}, job.text


def test_without_the_filter_io_uring_is_open_here(run_job, bare: None) -> None:
    got = result(run_job(IO_URING, args=(numbers("io_uring_setup", "io_uring_enter", "io_uring_register"),)).text)
    assert got["setup"] == "ok"  # kernel.io_uring_disabled = 0 on this host: only the filter keeps it out
    assert got["enter"] != "EPERM"  # the kernel's own answer to a bad ring


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the x32 ABI exists on x86_64 only")
def test_a_system_call_of_another_abi_kills_the_job(run_job) -> None:
    # x32 system calls (bit 30 of the number) bypass a filter that checks x86_64 numbers only: libseccomp kills them.
    job = run_job(RAW + "print('before', flush=True)\nlibc.syscall(ctypes.c_long(0x40000000 | 272), 0x10000000)\n")
    assert "before" in job.text
    assert job.result.code == -signal.SIGSYS, job.text
