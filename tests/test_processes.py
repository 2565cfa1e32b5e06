"""Fresh processes for heavy steps: results come back, and a killed compiler leaves no worker behind."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import pytest

from edgefusion_export.errors import UserError
from edgefusion_export.memory import PeakMemory, resident_bytes
from edgefusion_export.processes import in_fresh_process

ORPHAN_PROBE = """
import os, threading, time
import pytest

from edgefusion_export.errors import UserError
from edgefusion_export.processes import in_fresh_process
if __name__ == "__main__":
    threading.Thread(target=in_fresh_process, args=(time.sleep, 60), kwargs={"temp_parent": "."}, daemon=True).start()
    time.sleep(60)
"""


def test_a_fresh_process_returns_the_result_from_another_interpreter(tmp_path):
    assert in_fresh_process(os.getpid, temp_parent=tmp_path) != os.getpid()


def test_the_workers_temporary_files_stay_in_the_callers_folder_and_go_with_it(tmp_path):
    made = Path(in_fresh_process(partial(tempfile.mkdtemp, prefix="ort.quant."), temp_parent=tmp_path))  # as onnxruntime's quantizer
    assert made.parent.parent == tmp_path and made.name.startswith("ort.quant.")
    assert list(tmp_path.iterdir()) == []


def test_what_a_worker_prints_natively_goes_to_stderr(tmp_path):
    """QNN's compile prints to file descriptor 1, which is the command's output (a benchmark's JSON)."""
    script = "import os, sys\nfrom edgefusion_export.processes import in_fresh_process\n" \
             "if __name__ == '__main__':\n    in_fresh_process(os.write, 1, b'native\\n', temp_parent=sys.argv[1])\n"
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "native\n")


def test_killing_the_compiler_kills_its_worker(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(ORPHAN_PROBE)
    parent = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    children: list[int] = []
    for _ in range(100):  # the spawned worker appears within seconds
        time.sleep(0.1)
        children = [int(pid) for pid in subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True,
                                                        text=True).stdout.split()]
        if len(children) >= 2:  # multiprocessing's resource tracker and the worker
            break
    assert children, "no worker was spawned"
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    for _ in range(100):  # killed at once, or on its own once it sees the compiler gone (when it died first)
        time.sleep(0.1)
        survivors = [pid for pid in children if os.path.exists(f"/proc/{pid}") and "spawn_main" in open(f"/proc/{pid}/cmdline").read()]
        if not survivors:
            break
    assert survivors == []


def test_a_worker_that_dies_is_an_error_that_says_how(tmp_path):
    """The out-of-memory killer's SIGKILL and a native library's abort end a worker; the build stops with one line
    that names the step and the likely cause, not a BrokenProcessPool traceback."""
    with pytest.raises(UserError, match=r"^the worker process running raise_signal was killed \(SIGKILL\), most "
                                        r"likely by the system's out-of-memory killer"):
        in_fresh_process(signal.raise_signal, signal.SIGKILL, temp_parent=tmp_path)
    with pytest.raises(UserError, match=r"^the worker process running abort crashed \(SIGABRT\) inside a native library"):
        in_fresh_process(os.abort, temp_parent=tmp_path)
    assert list(tmp_path.iterdir()) == []  # the worker's temporary folder goes with it


def test_every_abort_is_named_though_the_pool_reaps_the_worker_too(tmp_path):
    """Whichever of the pool's thread and ours waits for the dead worker second reads no exit status for a moment:
    before the wait for it, 4 of 200 aborts were reported as an exit without a result (0 of 600 after)."""
    reports = set()
    for _ in range(200):
        with pytest.raises(UserError) as error:
            in_fresh_process(os.abort, temp_parent=tmp_path)
        reports.add(str(error.value).split(" inside ")[0])
    assert reports == {"the worker process running abort crashed (SIGABRT)"}


def peak_of_an_allocation_made_holding_the_gil(size: int) -> tuple[int, int]:
    """The resident size before a block, and PeakMemory's peak of the block, in which `size` bytes are written in one
    C call and freed while this thread keeps the GIL (no switch for 100 s), so the sampling thread cannot run."""
    sys.setswitchinterval(100)
    before = resident_bytes()
    with PeakMemory() as peak:
        data = b"x" * size
        del data
    return before, peak.peak_bytes


def test_peak_memory_counts_what_native_code_allocates_while_it_holds_the_gil(tmp_path):
    """As onnxsim does: the kernel's high-water mark, risen inside the block, is its peak. In a fresh process, whose
    high-water mark is its own."""
    size = 1 << 30
    before, peak = in_fresh_process(peak_of_an_allocation_made_holding_the_gil, size, temp_parent=tmp_path)
    assert abs(peak - (before + size)) < 64 << 20  # within 64 MB of what it wrote
