"""Heavy steps in a fresh process: what they allocate goes back to the system when they end (a long-lived Python
process keeps the high-water mark of every ONNX Runtime session and model copy it ever held)."""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, TypeVar

T = TypeVar("T")
PR_SET_PDEATHSIG = 1


def in_fresh_process(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` in a newly spawned interpreter (function and arguments must pickle)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=die_with_parent) as process:
        return process.submit(function, *args).result()


def die_with_parent() -> None:
    """On Linux, the worker is killed when the compiler is: a killed build leaves no multi-GB compile behind."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux
        pass
