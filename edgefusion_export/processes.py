"""Heavy steps in a fresh process: what they allocate goes back to the system when they end (a long-lived Python
process keeps the high-water mark of every ONNX Runtime session and model copy it ever held)."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

from .errors import UserError

T = TypeVar("T")
PR_SET_PDEATHSIG = 1
_workers: dict[int, int] = {}  # thread ident -> pid of the fresh process it waits on
_spawning = threading.Lock()  # one worker starts at a time, with its own environment


def in_fresh_process(function: Callable[..., T], *args: Any, temp_parent: Path,
                     environment: Mapping[str, str] | None = None) -> T:
    """`function(*args)` in a newly spawned interpreter (function and arguments must pickle), started with
    `environment` added to this process's (for what a C library reads when the process starts). The worker's
    temporary files (onnxruntime's quantizer writes gigabytes there) go in a folder inside `temp_parent`, a staging
    folder of the caller's: a killed worker cannot clean up, and what it leaves goes with the staging folder. A
    worker that dies (the out-of-memory killer, a native library's abort) is a UserError that says how."""
    with tempfile.TemporaryDirectory(dir=temp_parent, prefix="worker-tmp-") as temp_dir:
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=start_worker, initargs=(temp_dir, os.getpid())) as process:
            with _spawning, _environment(environment or {}):
                pid = _workers[threading.get_ident()] = process.submit(os.getpid).result()  # the worker starts here
            worker = next(child for child in multiprocessing.active_children() if child.pid == pid)
            try:
                return process.submit(function, *args).result()
            except BrokenProcessPool:
                raise UserError(f"the worker process running {getattr(function, '__name__', 'a step')} "
                                f"{_death(_exit_code(worker))}") from None
            finally:
                _workers.pop(threading.get_ident(), None)


def _exit_code(worker: multiprocessing.process.BaseProcess) -> int | None:
    """The worker's exit status. The pool's own thread reaps the worker too, and the thread that waits second
    finds no child and reads None until the first has stored the status (4 of 200 aborts, measured)."""
    worker.join()
    deadline = time.monotonic() + 5
    while worker.exitcode is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return worker.exitcode


def _death(exit_code: int | None) -> str:
    """How a worker ended, and what to do about it."""
    if exit_code == -signal.SIGKILL:
        return ("was killed (SIGKILL), most likely by the system's out-of-memory killer: free memory or use a larger "
                "machine (the README lists each build's memory peak)")
    if exit_code is not None and exit_code < 0:
        return (f"crashed ({signal.Signals(-exit_code).name}) inside a native library (onnxruntime, QNN): rerun it, "
                "and report it with the model if it happens again")
    return f"ended without a result (exit status {exit_code})"


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
