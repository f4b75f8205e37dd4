"""Layer 6: the seccomp filter of every sandboxed job, and the optional strict mode.

The filter allows every system call except those a strategy never needs and
an attacker wants (the kernel's attack surface, or a way past the other layers):

=====================================================  ====================  ==========================
denied                                                 how                   why
=====================================================  ====================  ==========================
``ptrace``, ``process_vm_readv/writev``,               ``EPERM``             read or steer another
``pidfd_getfd``, ``process_madvise``                                         process of the job
``mount``, ``umount2``, the new mount API              ``EPERM``             change what the job sees
(``open_tree``, ``move_mount``, ``fsopen``, ...),
``pivot_root``, ``chroot``
``unshare``, ``setns``; ``clone`` with a namespace     ``EPERM``             nested namespaces: the
flag (``CLONE_NEWUSER``, ``NEWNS``, ``NEWPID``, ...)                         kernel's largest surface
``clone3``                                             ``ENOSYS``            its flags are in memory a
                                                                             filter cannot read; libc
                                                                             falls back to ``clone``
``keyctl``, ``add_key``, ``request_key``               ``EPERM``             the kernel keyrings
``bpf``, ``perf_event_open``, ``userfaultfd``,         ``EPERM``             frequent exploit tools
``io_uring_setup/enter/register``
``init_module``, ``finit_module``, ``delete_module``,  ``EPERM``             the host itself
``kexec_load``, ``kexec_file_load``, ``reboot``,
``swapon``, ``swapoff``, ``open_by_handle_at``
``personality`` setting ``ADDR_NO_RANDOMIZE``,         ``EPERM``             ASLR off, executable
``READ_IMPLIES_EXEC``, ``MMAP_PAGE_ZERO``, ...                               data, page zero
``socket`` of any family but ``AF_UNIX``               ``EAFNOSUPPORT``      no network, no netlink
``ioctl`` ``TIOCSTI``, ``TIOCLINUX``                   ``EPERM``             typing into a terminal
=====================================================  ====================  ==========================

It is compiled by libseccomp (through ``pyseccomp``'s ctypes bindings), which
also kills calls of another ABI (``int 0x80``, x32) outright, and handed to
bubblewrap as ``--seccomp FD``: bubblewrap loads it last, after it set up the
namespaces (it needs ``unshare`` and ``mount`` itself), just before it execs
the job's program, so everything the job runs inherits it.

Strict mode (:func:`enter_strict_mode`) adds a second filter from inside,
after the interpreter and quantfleet's imports have started and before any
user code is loaded: no ``execve``/``execveat``, no ``fork``/``vfork``, no
``clone`` without ``CLONE_THREAD`` (threads still work). The child entry point
enters it when :data:`STRICT_ENV` is ``"1"`` (the worker sets it from
``IsolationConfig.strict``). It is loaded for every thread at once (``TSYNC``)
and can never be removed.
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile
from types import ModuleType
from typing import Any

from quantfleet.core.errors import InfrastructureError

__all__ = [
    "DENIED",
    "NAMESPACE_FLAGS",
    "STRICT_ENV",
    "enter_strict_mode",
    "program_fd",
    "sandbox_program",
    "strict_program",
]

STRICT_ENV = "QUANTFLEET_SANDBOX_STRICT"
"""Set to ``"1"`` inside the sandbox: the child entry point enters strict mode before loading user code."""

DENIED: tuple[str, ...] = (
    # other processes
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "process_madvise",
    # the file system's shape
    "mount",
    "umount2",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "pivot_root",
    "chroot",
    # namespaces
    "unshare",
    "setns",
    # kernel surfaces
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    # the host
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "open_by_handle_at",
    "acct",
    "quotactl",
    "syslog",
)
"""System calls refused with ``EPERM`` whatever their arguments."""

# <linux/sched.h>. CLONE_NEWTIME (0x80) is unshare/clone3 only: in clone() the low byte is the exit signal.
CLONE_THREAD = 0x00010000
NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
# <linux/personality.h>: the flags that weaken the address space.
_PERSONALITY_FLAGS = {
    "ADDR_NO_RANDOMIZE": 0x0040000,
    "MMAP_PAGE_ZERO": 0x0100000,
    "ADDR_COMPAT_LAYOUT": 0x0200000,
    "READ_IMPLIES_EXEC": 0x0400000,
    "ADDR_LIMIT_32BIT": 0x0800000,
    "ADDR_LIMIT_3GB": 0x8000000,
}
_AF_UNIX = 1
# <asm-generic/ioctls.h>. The kernel reads an ioctl's request as 32 bits: compare only those (a request with
# high bits set is the same request to the kernel).
_TERMINAL_IOCTLS = {"TIOCSTI": 0x5412, "TIOCLINUX": 0x541C}
_LOW32 = 0xFFFFFFFF
_ARCHES_WITH_CLONE_FLAGS_FIRST = ("X86_64", "AARCH64")
_FIX = "install libseccomp (apt-get install libseccomp2) and pyseccomp (pip install pyseccomp)"


def _library() -> ModuleType:
    """Return pyseccomp, or raise InfrastructureError naming the fix (it needs libseccomp.so.2)."""
    try:
        import pyseccomp  # ctypes over libseccomp.so.2: loading it finds the library
    except (ImportError, RuntimeError, OSError) as exc:
        raise InfrastructureError(f"sandbox layer 'seccomp': cannot load libseccomp ({exc}); {_FIX}") from exc
    module: ModuleType = pyseccomp
    return module


def _native_arch(sc: Any) -> str:
    native = sc.system_arch()
    for name in _ARCHES_WITH_CLONE_FLAGS_FIRST:
        if native == getattr(sc.Arch, name):
            return name
    raise InfrastructureError(
        f"sandbox layer 'seccomp': architecture {native:#x} is not supported (clone's flags are not its first "
        "argument there, so namespace flags cannot be filtered); run workers on x86_64 or aarch64"
    )


def _rule(flt: Any, sc: Any, action: int, name: str, *args: Any) -> None:
    number = sc.resolve_syscall(sc.Arch.NATIVE, name)
    if number == -1:  # __NR_SCMP_ERROR: this libseccomp does not know the call, so it cannot filter it
        raise InfrastructureError(
            f"sandbox layer 'seccomp': the installed libseccomp does not know {name}(); {_FIX} (2.5 or newer)"
        )
    flt.add_rule(action, number, *args)


def _sandbox_filter() -> Any:
    sc = _library()
    _native_arch(sc)
    flt = sc.SyscallFilter(sc.ALLOW)
    deny = sc.ERRNO(errno.EPERM)
    for name in DENIED:
        _rule(flt, sc, deny, name)
    for flag in NAMESPACE_FLAGS.values():
        _rule(flt, sc, deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    _rule(flt, sc, sc.ERRNO(errno.ENOSYS), "clone3")
    for flag in _PERSONALITY_FLAGS.values():
        _rule(flt, sc, deny, "personality", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    _rule(flt, sc, sc.ERRNO(errno.EAFNOSUPPORT), "socket", sc.Arg(0, sc.NE, _AF_UNIX))
    for request in _TERMINAL_IOCTLS.values():
        _rule(flt, sc, deny, "ioctl", sc.Arg(1, sc.MASKED_EQ, _LOW32, request))
    return flt


def _strict_filter() -> Any:
    sc = _library()
    _native_arch(sc)
    flt = sc.SyscallFilter(sc.ALLOW)
    deny = sc.ERRNO(errno.EPERM)
    for name in ("execve", "execveat", "fork", "vfork"):
        _rule(flt, sc, deny, name)
    _rule(flt, sc, deny, "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_THREAD, 0))  # a process, not a thread
    _rule(flt, sc, sc.ERRNO(errno.ENOSYS), "clone3")
    flt.set_attr(sc.Attr.CTL_TSYNC, 1)  # every thread of the interpreter, not only the caller
    return flt


def _export(flt: Any) -> bytes:
    with tempfile.TemporaryFile() as out:
        try:
            flt.export_bpf(out)
        except OSError as exc:
            raise InfrastructureError(f"sandbox layer 'seccomp': libseccomp cannot export the filter ({exc})") from exc
        out.seek(0)
        return out.read()


@functools.cache
def sandbox_program() -> bytes:
    """Return the sandbox's filter as a BPF program (``struct sock_filter`` array, what bwrap reads)."""
    return _export(_sandbox_filter())


@functools.cache
def strict_program() -> bytes:
    """Return strict mode's filter as a BPF program (for inspection; :func:`enter_strict_mode` loads it)."""
    return _export(_strict_filter())


def program_fd(program: bytes) -> int:
    """Return a new fd holding ``program`` from its start (each bwrap reads its own to the end)."""
    fd = os.memfd_create("quantfleet-seccomp")
    try:
        os.write(fd, program)
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd


def enter_strict_mode() -> None:
    """Forbid exec and new processes in this process from now on (every thread; irreversible)."""
    flt = _strict_filter()
    try:
        flt.load()
    except OSError as exc:
        raise InfrastructureError(f"sandbox layer 'seccomp': cannot enter strict mode ({exc})") from exc
