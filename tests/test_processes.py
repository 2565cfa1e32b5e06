"""Fresh processes for heavy steps: results come back, and a killed compiler leaves no worker behind."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from edgefusion_export.processes import in_fresh_process

ORPHAN_PROBE = """
import os, threading, time
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
