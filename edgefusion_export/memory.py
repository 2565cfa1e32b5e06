"""Peak resident memory of this process and its children over a block of work: sampled in a background thread, and
this process's high-water mark."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes(pid: int | str = "self") -> int:
    """Current resident set size of a process and all its descendants (Linux /proc; 0 where unavailable)."""
    try:
        with open(f"/proc/{pid}/statm") as handle:
            total = int(handle.read().split()[1]) * PAGE_SIZE
        children = []
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += (task / "children").read_text().split()
    except OSError:  # no /proc, or the process ended meanwhile
        return 0
    return total + sum(resident_bytes(child) for child in children)


def high_water_mark() -> int:
    """The kernel's peak resident set size of this process, in bytes (0 where unavailable). Read from /proc, not
    getrusage: a spawned process's ru_maxrss starts at its parent's peak, its VmHWM at its own."""
    try:
        with open("/proc/self/status") as handle:
            return next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0


class PeakMemory:
    """`with PeakMemory() as peak: ...` then `peak.mb` is the highest RSS seen inside the block. Sampling misses
    what native code allocates and frees while it holds the GIL (onnxsim handed SD-1.5's loaded UNet: 11.1 GB sampled,
    18.6 GB by the kernel), so this process's high-water mark counts too, where it rose during the block."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._high_water_mark = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak_bytes = max(self.peak_bytes, resident_bytes())
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> "PeakMemory":
        self.peak_bytes = resident_bytes()
        self._high_water_mark = high_water_mark()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        risen = high_water_mark()
        self.peak_bytes = max(self.peak_bytes, resident_bytes(), risen if risen > self._high_water_mark else 0)

    @property
    def mb(self) -> float:
        return round(self.peak_bytes / 2**20, 1)
