"""Peak resident memory of this process and its children over a block of work: sampled in a background thread, and
the kernel's high-water marks."""

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


def high_water_marks() -> tuple[int, int]:
    """The kernel's peak resident set size, in bytes, of this process and of its largest child that has ended (0 where
    unavailable)."""
    try:
        import resource
    except ImportError:  # not a Unix
        return 0, 0
    kilobytes = 1024  # ru_maxrss's unit on Linux
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * kilobytes,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * kilobytes)


class PeakMemory:
    """`with PeakMemory() as peak: ...` then `peak.mb` is the highest RSS seen inside the block. Sampling misses
    what native code allocates and frees while it holds the GIL (onnxsim handed SD-1.5's loaded UNet: 11.1 GB sampled,
    18.6 GB by the kernel), so the kernel's high-water marks count too: this process's, and the largest child's
    that ended in the block, wherever either rose during it."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._high_water_marks = (0, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak_bytes = max(self.peak_bytes, resident_bytes())
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> "PeakMemory":
        self.peak_bytes = resident_bytes()
        self._high_water_marks = high_water_marks()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        risen = [now for now, before in zip(high_water_marks(), self._high_water_marks) if now > before]
        self.peak_bytes = max(self.peak_bytes, resident_bytes(), *risen)

    @property
    def mb(self) -> float:
        return round(self.peak_bytes / 2**20, 1)
