"""Tying a child process's life to its parent's (Linux): the kernel signals the child when the
parent dies, even by SIGKILL, when nothing of the parent is left to stop it."""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def dying_with_parent(signum: signal.Signals) -> Callable[[], None]:
    """A `preexec_fn`: the child gets `signum` when the thread that started it dies (start
    children from the main thread). Runs in the child between fork and exec."""
    parent = os.getpid()

    def arrange() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signum)

    return arrange
