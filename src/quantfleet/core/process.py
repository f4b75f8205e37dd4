"""Children that do not outlive the process that started them (Linux's parent-death signal)."""

from __future__ import annotations

import ctypes
import functools
import os
import signal
from collections.abc import Callable

__all__ = ["stop_with_parent"]

_PR_SET_PDEATHSIG = 1


def _ask_for_sigterm(parent: int) -> None:
    """In the child, before exec: ask Linux for SIGTERM when ``parent`` dies; exit if it already has."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:  # pragma: no cover - not Linux
        return
    if os.getppid() != parent:  # pragma: no cover - the parent died between fork and here
        os._exit(0)


def stop_with_parent() -> Callable[[], None]:
    """Return a ``preexec_fn`` after which the child gets SIGTERM should this process die without cleaning up.

    For the long-lived children of a supervisor (``quantfleet up``'s servers,
    the scheduler's event processes): a SIGKILLed or OOM-killed parent would
    otherwise leave them running, a second copy beside the ones its restart
    starts. The signal follows the *thread* that forked, so call
    ``subprocess.Popen`` from a thread that lives as long as the process (the
    main thread, or the supervisor's loop).
    """
    return functools.partial(_ask_for_sigterm, os.getpid())
