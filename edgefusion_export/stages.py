"""Passes and the stage cache: each pass writes one artifact folder, keyed by what it reads.

A `Pass` is declared data: its name, its inputs (the artifacts of earlier passes, the option values and other
values it uses), the producer that writes the artifact from exactly those inputs, and the type of the result it
reports. Its cache key is derived, never written by hand: the pass's name and the identity of each input, as Olive
derives a run's id from the pass, its configuration and its input model's id (`identity`). An artifact of the cache
is identified by its place in the cache, so keys hold no absolute path and a moved cache still serves.
`StageCache.run` returns the artifact folder and the typed result, producing them only when no finished folder
exists for that key; folders appear atomically, so an interrupted pass leaves nothing behind. `StageCache.start`
produces a pass in the background (one at a time) while the chain goes on; `run` of the same pass then waits for
it, and an `exclusive` pass (one that needs the memory to itself) runs once they are done. When the chain stops on
an error, leaving the cache's `with` block stops the background work at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Generic, Mapping, TypeVar

import numpy as np
from rich.console import Console

from .files import folder_bytes, remove_abandoned, remove_folder, sha256_file, staged_directory
from .memory import PeakMemory, resident_bytes
from .processes import kill_worker

RESULT_FILE = "stage.json"


class StageResult:
    """What a pass reports (JSON-native dataclass fields), stored beside its artifact, with a one-line summary."""

    def summary(self) -> str:
        return ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        names = {item.name for item in fields(cls)}  # type: ignore[arg-type]
        return cls(**{key: value for key, value in data.items() if key in names})


Result = TypeVar("Result", bound=StageResult)


@dataclass(frozen=True)
class Pass(Generic[Result]):
    name: str  # e.g. "export unet"; also the artifact folder's name
    inputs: Mapping[str, Any]  # everything the producer reads, handed to it by name; the key is derived from them
    produce: Callable[..., Result]  # produce(folder, **inputs) writes the artifact into the folder it is given
    result: type[Result]
    exclusive: bool = False  # needs the machine's memory to itself: background passes finish first
    expected_s: float | None = None  # for a long pass, the time it should take, printed before it starts (not a key input)


def identity(value: Any, cache_root: Path) -> Any:
    """What a pass input contributes to its key: a path inside the cache by its place there (an artifact, whose
    folder is named by its own key), any other file by its content, arrays by their bytes, objects by their
    `cache_identity()` (a model source's fingerprint, a tokenizer's digest) or their dataclass fields."""
    if isinstance(value, Path):
        absolute = Path(os.path.abspath(value))  # links not followed: a pass folder may link to another disk
        if absolute.is_relative_to(cache_root):
            return f"cache:{absolute.relative_to(cache_root).as_posix()}"
        if value.is_file():
            return f"sha256:{sha256_file(value)}"
        raise TypeError(f"pass input {value} is neither a cache artifact nor a file")
    if isinstance(value, np.ndarray):
        return f"array:{value.dtype.str}{list(value.shape)}:{hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()}"
    if hasattr(value, "cache_identity"):
        return identity(value.cache_identity(), cache_root)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return identity(asdict(value), cache_root)
    if isinstance(value, Mapping):
        return {str(key): identity(item, cache_root) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [identity(item, cache_root) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"pass input of type {type(value).__name__} has no cache identity")


@dataclass
class StageRecord:
    name: str
    seconds: float
    cached: bool
    peak_rss_mb: float
    info: dict[str, Any] = field(default_factory=dict)


class StageCache:
    """Finished artifacts, one folder per (pass, key); prints a line per pass with its time, memory and summary."""

    def __init__(self, root: Path, console: Console, force: bool = False, version: Mapping[str, Any] | None = None) -> None:
        self.root = root.resolve()
        self.version = dict(version or {})  # what every key holds: the cache format and the tools' versions
        self.console = console
        self.force = force
        self.records: list[StageRecord] = []
        self._background: dict[Path, Future] = {}
        self._queue: list[tuple[Pass, Path, dict[str, Any], Future]] = []
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> StageCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_background()

    def stop_background(self) -> None:
        """Drop the queued background passes and kill the running one (a failed build exits now, not after an
        unwanted multi-minute QNN compile; what it was writing is removed with its staging folder)."""
        with self._lock:
            for *_, future in self._queue:
                future.cancel()
            self._queue.clear()
            self._background.clear()
        while self._worker is not None and self._worker.is_alive():
            kill_worker(self._worker)
            self._worker.join(0.1)

    def key(self, step: Pass) -> dict[str, Any]:
        """What the artifact of `step` depends on: the pass, the versions every pass depends on, and its inputs."""
        return {"pass": step.name, **self.version, "inputs": identity(step.inputs, self.root)}

    def folder(self, step: Pass) -> Path:
        return self._locate(step)[0]

    def _locate(self, step: Pass) -> tuple[Path, dict[str, Any]]:
        """The artifact folder of `step` and the key that names it (input identities hash files: computed once)."""
        key = self.key(step)
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        return self.root / step.name.replace(" ", "-") / digest, key

    def run(self, step: Pass[Result]) -> tuple[Path, Result]:
        """The artifact folder and result of `step`, produced unless already cached (or waited for when started)."""
        folder, key = self._locate(step)
        with self._lock:
            started = self._background.pop(folder, None)
        if started is not None:
            return folder, started.result()
        start = time.perf_counter()
        if (folder / RESULT_FILE).is_file() and not self.force:
            result = step.result.from_dict(json.loads((folder / RESULT_FILE).read_text()))
            with suppress(OSError):  # a read-only cache serves as well
                os.utime(folder / RESULT_FILE)  # last use, for `edgefusion-export cache --prune`
            self._record(step.name, start, True, result, resident_bytes() / 2**20)
            return folder, result
        if step.exclusive:
            self.wait_for_background()
        if step.expected_s is not None:
            self.console.print(f"  [bold]{step.name:<24}[/bold] started, about {duration(step.expected_s)}")
        with self.console.status(f"{step.name} ..."):
            return folder, self._produce(step, folder, key)

    def wait_for_background(self) -> None:
        """Until every started pass has finished (their results stay to be picked up by `run`)."""
        worker = self._worker
        if worker is not None:
            worker.join()

    def start(self, step: Pass) -> None:
        """Produce `step` in the background unless it is cached or already started. Only one background pass runs
        at a time (on the core the chain leaves idle: QNN's graph preparation is single-threaded)."""
        folder, key = self._locate(step)
        if ((folder / RESULT_FILE).is_file() and not self.force) or folder in self._background:
            return
        future: Future = Future()
        with self._lock:
            self._background[folder] = future
            self._queue.append((step, folder, key, future))
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="background-passes", daemon=True)
                self._worker.start()
        self.console.print(f"  [bold]{step.name:<24}[/bold] started in the background")

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    return
                step, folder, key, future = self._queue.pop(0)
            try:
                future.set_result(self._produce(step, folder, key))
            except BaseException as error:  # handed to the chain, which raises it where it waits
                future.set_exception(error)

    def _produce(self, step: Pass[Result], folder: Path, key: dict[str, Any]) -> Result:
        start = time.perf_counter()
        with PeakMemory() as peak:
            with staged_directory(folder) as staging:
                result = step.produce(staging, **step.inputs)
                (staging / RESULT_FILE).write_text(json.dumps({**result.as_dict(), "key": key}, indent=2))
        self._record(step.name, start, False, result, peak.mb)
        return result

    def _record(self, name: str, start: float, cached: bool, result: StageResult, peak_mb: float) -> None:
        seconds = time.perf_counter() - start
        self.records.append(StageRecord(name, round(seconds, 2), cached, round(peak_mb, 1), result.as_dict()))
        status = "cached" if cached else f"{seconds:6.1f} s"
        self.console.print(f"  [bold]{name:<24}[/bold] {status:>9} {peak_mb / 1024:5.1f} GB  {result.summary()}",
                           overflow="fold")


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


@dataclass(frozen=True)
class CachedStage:
    name: str  # the pass's folder name, e.g. "export-unet"
    folder: Path
    size: int  # bytes
    last_used: float  # seconds since the epoch


def cached_stages(root: Path) -> list[CachedStage]:
    """The finished artifacts in the cache at `root`."""
    if not root.is_dir():
        return []
    return [CachedStage(step.name, entry, folder_bytes(entry), (entry / RESULT_FILE).stat().st_mtime)
            for step in sorted(root.iterdir()) if step.is_dir()
            for entry in sorted(step.iterdir()) if (entry / RESULT_FILE).is_file()]


def sweep(root: Path) -> int:
    """Remove what killed builds left in the cache at `root`; the bytes freed."""
    return sum(remove_abandoned(step) for step in root.iterdir() if step.is_dir()) if root.is_dir() else 0


def prune(root: Path, unused_seconds: float) -> list[CachedStage]:
    """Remove the artifacts not used for `unused_seconds` (each disappears whole); those removed."""
    stale = [stage for stage in cached_stages(root) if time.time() - stage.last_used >= unused_seconds]
    for stage in stale:
        remove_folder(stage.folder)
    return stale
