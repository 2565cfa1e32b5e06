"""`ort`: measured per-node times from onnxruntime's profiler on this machine's CPU."""

from __future__ import annotations

import json
import platform
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..bundle.manifest import Bundle
from .blocks import block_of, graph_blocks
from .model import Profile, Row


def session_feeds(session) -> dict[str, np.ndarray]:
    """Seeded random inputs for a session's graph (free dimensions at 1, integer inputs all ones)."""
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in session.get_inputs():
        shape = [dim if isinstance(dim, int) else 1 for dim in spec.shape]
        if "int" in spec.type:
            feeds[spec.name] = np.ones(shape, dtype=np.int32)
        else:
            feeds[spec.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def profile_component(model: Path, component: str, runs: int, scratch: Path) -> list[Row]:
    """Average per-node kernel time over `runs` calls after one warm-up call."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC  # keeps node names
    options.enable_profiling = True
    options.profile_file_prefix = str(scratch / component)
    session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    feeds = session_feeds(session)
    session.run(None, feeds)
    for _ in range(runs):
        session.run(None, feeds)
    trace = Path(session.end_profiling())
    events = [event for event in json.loads(trace.read_text()) if event.get("cat") == "Node"
              and event["name"].endswith("_kernel_time")]
    trace.unlink()
    durations: dict[str, list[float]] = defaultdict(list)
    op_types: dict[str, str] = {}
    for event in events:
        name = event["name"].removesuffix("_kernel_time")
        durations[name].append(event["dur"] / 1000.0)
        op_types[name] = event["args"].get("op_name", "?")
    blocks = graph_blocks(model, component)
    rows = []
    for name, times in durations.items():
        measured = times[-runs:]  # each node runs once per call; the first entry is the warm-up
        rows.append(Row(component, name, op_types[name], blocks.get(name) or block_of(component, name), "CPU",
                        round(sum(measured) / len(measured), 5)))
    return rows


def profile_bundle(bundle: Bundle, runs: int, scratch: Path, size: str | None = None) -> Profile:
    rows = []
    for component, graph in bundle.graphs(size).items():
        rows += profile_component(bundle.component_path(graph), component, runs, scratch)
    device = f"onnxruntime CPU ({platform.machine()}, {platform.processor() or 'cpu'})"
    return Profile("ort", device, str(bundle.folder), bundle.manifest["sampling"]["num_steps"], rows,
                   notes=[f"mean of {runs} calls after a warm-up; onnxruntime basic graph optimizations"],
                   size=bundle.size(size)).finish()
