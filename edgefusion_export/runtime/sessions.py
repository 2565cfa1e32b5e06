"""onnxruntime sessions for the host runner: the CPU, and the Hexagon NPU in onnxruntime-qnn's HTP emulation.

The x86_64 onnxruntime-qnn wheel's HTP backend executes compiled context binaries in emulation (onnxruntime's own
Linux CI runs its HTP tests that way), so an NPU binary can be run and compared with the CPU before it ships.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from ..errors import UserError, first_line

QNN_EP = "QNNExecutionProvider"


@dataclass(frozen=True)
class HtpTarget:
    """What the HTP backend needs to know about a chipset."""

    name: str
    htp_arch: int
    soc_model: int

    def provider_options(self) -> dict[str, str]:
        return {"backend_type": "htp", "htp_arch": str(self.htp_arch), "soc_model": str(self.soc_model)}


@lru_cache(maxsize=1)
def qnn_devices() -> list:
    """Register the QNN plugin library once and return its devices."""
    import onnxruntime

    try:
        import onnxruntime_qnn
    except ImportError:
        raise UserError("onnxruntime-qnn is not installed; run 'make install' (or pip install onnxruntime-qnn)")
    onnxruntime.register_execution_provider_library(QNN_EP, onnxruntime_qnn.get_library_path())
    devices = [device for device in onnxruntime.get_ep_devices() if device.ep_name == QNN_EP]
    if not devices:
        raise UserError("the QNN execution provider did not register any device; reinstall onnxruntime-qnn")
    return devices


def cpu_session(path: Path, threads: int | None = None, exact: bool = False, priority_order: bool = False) -> Any:
    """A CPU session; `exact` disables graph optimizations, whose fused kernels round QDQ graphs differently;
    `priority_order` runs nodes in onnxruntime's priority order, which frees tensors earlier in graphs where many
    side branches read them (calibration's ReduceMin/ReduceMax on every tensor: 4.4 instead of 11.2 GB)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.enable_cpu_mem_arena = False  # 512x512 UNet: 2.3 GB instead of 3.2 GB, VAE decoder 1.4 instead of 2.3; ~4% slower
    if threads:
        options.intra_op_num_threads = threads
    if exact:
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    if priority_order:
        options.execution_order = onnxruntime.ExecutionOrder.PRIORITY_BASED
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def qnn_session_options(provider_options: Mapping[str, str], config: Mapping[str, str] | None = None) -> Any:
    """Session options that give a graph to the QNN provider, with its provider options and onnxruntime's session
    config entries; onnxruntime logs errors only."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
    options.add_provider_for_devices(qnn_devices(), dict(provider_options))
    return options


def htp_session(path: Path, target: HtpTarget, cpu_fallback: bool = True, extra: dict[str, str] | None = None) -> Any:
    """A session on the QNN HTP backend (emulated on x86_64). A compiled EPContext model keeps its boundary
    Q/DQ nodes on the CPU, so it needs `cpu_fallback`; a plain QDQ graph can forbid it."""
    import onnxruntime

    options = qnn_session_options({**target.provider_options(), **(extra or {})},
                                  {} if cpu_fallback else {"session.disable_cpu_ep_fallback": "1"})
    try:
        with native_stdout_to_stderr():
            return onnxruntime.InferenceSession(str(path), options)
    except Exception as error:  # onnxruntime's own Fail/RuntimeException types carry QNN's log text
        raise UserError(f"the QNN HTP backend could not load {path.name} for {target.name} "
                        f"({first_line(error)}); rebuild the bundle with this onnxruntime-qnn")


@contextmanager
def native_stdout_to_stderr() -> Iterator[None]:
    """What native code prints goes to stderr (QNN's HTP backend announces itself on stdout when it loads), so that
    stdout keeps only a command's own output: the JSON of a benchmark, say."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
