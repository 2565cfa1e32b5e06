"""Heavy steps in a fresh process: what they allocate goes back to the system when they end (a long-lived Python
process keeps the high-water mark of every ONNX Runtime session and model copy it ever held)."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import tempfile
import threading
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

T = TypeVar("T")
PR_SET_PDEATHSIG = 1
_workers: dict[int, int] = {}  # thread ident -> pid of the fresh process it waits on
_spawning = threading.Lock()  # one worker starts at a time, with its own environment


def in_fresh_process(function: Callable[..., T], *args: Any, temp_parent: Path,
                     environment: Mapping[str, str] | None = None) -> T:
    """`function(*args)` in a newly spawned interpreter (function and arguments must pickle), started with
    `environment` added to this process's (for what a C library reads when the process starts). The worker's
    temporary files (onnxruntime's quantizer writes gigabytes there) go in a folder inside `temp_parent`, a staging
    folder of the caller's: a killed worker cannot clean up, and what it leaves goes with the staging folder."""
    with tempfile.TemporaryDirectory(dir=temp_parent, prefix="worker-tmp-") as temp_dir:
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=start_worker, initargs=(temp_dir, os.getpid())) as process:
            with _spawning, _environment(environment or {}):
                _workers[threading.get_ident()] = process.submit(os.getpid).result()  # the worker starts here
            try:
                return process.submit(function, *args).result()
            finally:
                _workers.pop(threading.get_ident(), None)


@contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def kill_worker(thread: threading.Thread) -> None:
    """Kill the fresh process that `thread` waits on, if any (its `in_fresh_process` raises BrokenProcessPool)."""
    pid = _workers.get(thread.ident or 0)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def start_worker(temp_dir: str, compiler_pid: int) -> None:
    """Temporary files in `temp_dir`; stdout is stderr (QNN prints to stdout, which is the command's output); on
    Linux the worker is killed when the compiler is, so a killed build leaves no multi-GB compile running."""
    os.environ["TMPDIR"] = tempfile.tempdir = temp_dir
    os.dup2(2, 1)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux
        pass
    if os.getppid() != compiler_pid:  # the compiler died before the line above: no signal will come
        os._exit(1)
