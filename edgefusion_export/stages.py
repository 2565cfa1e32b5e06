"""Passes and the stage cache: each pass writes one artifact folder, keyed by everything it depends on.

A `Pass` is declared data: its name, its cache key, the producer that writes the artifact, and the type of the
result it reports. `StageCache.run` returns the artifact folder and the typed result, producing them only when
no finished folder exists for that key; folders appear atomically, so an interrupted pass leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

from rich.console import Console

from .files import staged_directory
from .memory import PeakMemory, resident_bytes

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
    key: dict[str, Any]  # everything the artifact depends on
    produce: Callable[[Path], Result]  # writes the artifact into the folder it is given
    result: type[Result]


@dataclass
class StageRecord:
    name: str
    seconds: float
    cached: bool
    peak_rss_mb: float
    info: dict[str, Any] = field(default_factory=dict)


class StageCache:
    """Finished artifacts, one folder per (pass, key); prints a line per pass with its time, memory and summary."""

    def __init__(self, root: Path, console: Console, force: bool = False) -> None:
        self.root = root
        self.console = console
        self.force = force
        self.records: list[StageRecord] = []

    def run(self, step: Pass[Result]) -> tuple[Path, Result]:
        """The artifact folder and result of `step`, produced unless already cached."""
        digest = hashlib.sha256(json.dumps(step.key, sort_keys=True).encode()).hexdigest()[:20]
        folder = self.root / step.name.replace(" ", "-") / digest
        result_file = folder / RESULT_FILE
        start = time.perf_counter()
        if result_file.is_file() and not self.force:
            result = step.result.from_dict(json.loads(result_file.read_text()))
            self._record(step.name, start, True, result, resident_bytes() / 2**20)
            return folder, result
        with self.console.status(f"{step.name} ..."), PeakMemory() as peak:
            with staged_directory(folder) as staging:
                result = step.produce(staging)
                (staging / RESULT_FILE).write_text(json.dumps({**result.as_dict(), "key": step.key}, indent=2))
        self._record(step.name, start, False, result, peak.mb)
        return folder, result

    def _record(self, name: str, start: float, cached: bool, result: StageResult, peak_mb: float) -> None:
        seconds = time.perf_counter() - start
        self.records.append(StageRecord(name, round(seconds, 2), cached, round(peak_mb, 1), result.as_dict()))
        status = "cached" if cached else f"{seconds:6.1f} s"
        self.console.print(f"  [bold]{name:<24}[/bold] {status:>9} {peak_mb / 1024:5.1f} GB  {result.summary()}",
                           overflow="fold")
