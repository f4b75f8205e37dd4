"""A job's ``/work``: a size- and inode-capped tmpfs, seen by the worker at its own work folder.

A plain host folder lets a job fill the host disk; a tmpfs with ``size`` and
``nr_inodes`` caps both bytes and files, and its pages are charged to the
job's memory cgroup too. It is mounted on a *stage* folder the slot's uid can
reach (bubblewrap, already running as that uid, binds it as ``/work``) and
bound over the worker's work folder (what the worker wrote there is copied in
first), so the worker reads the results where it always does;
:func:`unmount_work` removes both once the worker is done. Read-only host
binds (:func:`bind_readonly`) stage runtime folders the uid cannot reach (a
Python under ``/root``). Needs CAP_SYS_ADMIN (a root worker).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
from pathlib import Path

from quantfleet.core.errors import InfrastructureError

__all__ = ["WORK_SOURCE", "bind_readonly", "mount_work", "sweep_stale_mounts", "unmount", "unmount_work"]

_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_NOEXEC = 0x8
_MS_RDONLY = 0x1
_MS_REMOUNT = 0x20
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MNT_DETACH = 0x2

WORK_SOURCE = "quantfleet-work"
"""The device name of every job's tmpfs: ``quantfleet-work-<worker pid>`` (so a dead worker's are found)."""

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _mount(source: str | Path, target: Path, fstype: str | None, flags: int, options: str | None = None) -> None:
    data = options.encode() if options is not None else None
    kind = fstype.encode() if fstype is not None else None
    if _libc.mount(os.fsencode(source), os.fsencode(target), kind, flags, data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(target))


def unmount(target: Path) -> None:
    """Detach the mount on ``target``; nothing if nothing is mounted there.

    ``umount2`` itself decides (EINVAL: not a mount point): a bind of a folder
    of the same filesystem has its parent's device, so a device comparison
    cannot tell.
    """
    if _libc.umount2(os.fsencode(target), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise InfrastructureError(f"sandbox: cannot unmount {target}: {os.strerror(err)}")


def bind_readonly(source: Path, target: Path) -> None:
    """Bind ``source`` read-only (nosuid, nodev) on ``target``, an existing folder."""
    try:
        _mount(source, target, None, _MS_BIND | _MS_REC)
        _mount(source, target, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    except OSError as exc:
        with contextlib.suppress(InfrastructureError):
            unmount(target)
        raise InfrastructureError(
            f"sandbox layer 'runtime': cannot stage {source} for the slot uids ({exc}); run the worker as root"
        ) from exc


def mount_work(work: Path, *, stage: Path, size: int, inodes: int, uid: int) -> None:
    """Mount a capped tmpfs (owned by ``uid``, mode 0700) on ``stage`` and over ``work``, keeping what is in it."""
    aside = work.with_name(f".{work.name}.prepared")
    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    try:
        stage.mkdir(mode=0o711)
        _mount(
            f"{WORK_SOURCE}-{os.getpid()}",
            stage,
            "tmpfs",
            flags,
            f"size={size},nr_inodes={inodes},mode=0700,uid={uid},gid={uid}",
        )
        shutil.copytree(work, stage, symlinks=True, dirs_exist_ok=True)
        for folder, dirs, files in os.walk(stage):
            for name in [*dirs, *files]:
                os.chown(os.path.join(folder, name), uid, uid, follow_symlinks=False)
        os.rename(work, aside)
        work.mkdir(mode=0o700)
        _mount(stage, work, None, _MS_BIND)
        shutil.rmtree(aside)
    except OSError as exc:
        for target in (work, stage):
            with contextlib.suppress(InfrastructureError):
                unmount(target)
        if aside.exists():
            with contextlib.suppress(OSError):
                work.rmdir()
            os.rename(aside, work)
        with contextlib.suppress(OSError):
            stage.rmdir()
        raise InfrastructureError(
            f"sandbox layer 'work tmpfs': cannot mount a tmpfs for {work} ({exc}); the sandboxed worker "
            "must run as root (CAP_SYS_ADMIN) to cap /work's size and file count"
        ) from exc


def unmount_work(work: Path, *, stage: Path) -> None:
    """Unmount the job's tmpfs (its contents go with it) from ``work`` and ``stage``; remove both folders."""
    unmount(work)
    unmount(stage)
    shutil.rmtree(work, ignore_errors=True)
    with contextlib.suppress(OSError):
        stage.rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def _stale_pid(text: str, prefix: str) -> bool:
    """Return whether ``text`` is ``<prefix><pid>`` or ``<prefix><pid>-...`` of a pid that is not alive."""
    if not text.startswith(prefix):
        return False
    pid = text[len(prefix) :].split("-", 1)[0]
    return pid.isdigit() and not _alive(int(pid))


def sweep_stale_mounts(state_root: Path) -> list[Path]:
    """Unmount what a dead worker left mounted (job tmpfs, stages); remove its empty folders; return the mount points.

    A worker's mounts are found by name: its job tmpfs by the device name
    ``quantfleet-work-<pid>`` (on the stage and over the work folder), its
    stages under its state folder ``<state_root>/quantfleet-sandbox-<pid>-*``.
    Those of live workers are left alone.
    """
    stale: list[Path] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        target = Path(_unescape(fields[4]))
        after = fields[fields.index("-") + 1 :] if "-" in fields else []
        source = after[1] if len(after) > 1 else ""
        relative = target.relative_to(state_root) if target.is_relative_to(state_root) else None
        if _stale_pid(source, f"{WORK_SOURCE}-") or (
            relative is not None and _stale_pid(relative.parts[0], "quantfleet-sandbox-")
        ):
            stale.append(target)
    for target in sorted(set(stale), key=lambda p: len(p.parts), reverse=True):
        unmount(target)
    for target in stale:
        with contextlib.suppress(OSError):
            target.rmdir()  # an empty stage or work folder (the tmpfs took the job's files with it)
    for state in state_root.glob("quantfleet-sandbox-*"):
        if _stale_pid(state.name, "quantfleet-sandbox-"):
            for folder in sorted(state.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    folder.rmdir()
            with contextlib.suppress(OSError):
                state.rmdir()
    return sorted(set(stale))
