"""`emulator`: per-op cycles that onnxruntime-qnn's HTP emulation simulates for a bundle's compiled NPU models,
converted to time at the chipset's HTP clock.

QNN's detailed profiling reports, for each op of the finalized graph, the cycles its cost model assigns; they add
up to the "accelerator execute" cycles. Ops keep the ONNX node names (module scopes) where QNN kept the node;
ops QNN inserted itself (layout conversions, fused activations) are reported under their own names.
"""

from __future__ import annotations

import csv
import gc
import re
from importlib import metadata
from pathlib import Path

from ..bundle.manifest import Bundle
from ..runtime.pipeline import compiled_entry
from ..runtime.sessions import htp_session
from ..targets.chipsets import Chipset
from .ort_backend import session_feeds
from .blocks import block_of
from .model import Profile, Row

OP_ID = re.compile(r":OpId_\d+ \(cycles\)$")
OP_TYPE = re.compile(r"([A-Z][A-Za-z]*)")


def read_op_cycles(path: Path) -> list[tuple[str, int]]:
    """(op name, cycles) of every op in a QNN profiling CSV, in execution order. QNN appends each run of a session
    to the file, so an op may be listed once per run: it counts at its fewest cycles."""
    fewest: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            event = row.get("Event Identifier") or ""
            if row.get("Message") == "NODE" and row.get("Unit of Measurement") == "CYCLES" and OP_ID.search(event):
                name, cycles = OP_ID.sub("", event), int(row["Time"])
                fewest[name] = min(cycles, fewest.get(name, cycles))
    return list(fewest.items())


def op_type(name: str) -> str:
    """`unet.conv_out/Conv_734_token_368` -> Conv; QNN's own ops (no module scope) -> QNN:<first word>."""
    scope, _, node = name.rpartition("/")
    match = OP_TYPE.match(node)
    kind = match.group(1) if match else "op"
    return kind if scope else f"QNN:{kind}"


def profile_component(compiled: Path, component: str, chipset: Chipset, scratch: Path) -> list[Row]:
    """Run one compiled component once in HTP emulation with QNN's detailed profiling."""
    trace = scratch / f"{component}.csv"
    trace.unlink(missing_ok=True)  # QNN appends to an existing profiling file
    session = htp_session(compiled, chipset.htp_target,
                          extra={"profiling_level": "detailed", "profiling_file_path": str(trace)})
    session.run(None, session_feeds(session))
    del session
    gc.collect()  # QNN writes the profile when the session is released
    return profiled_rows(trace, component, chipset)


def profiled_rows(trace: Path, component: str, chipset: Chipset) -> list[Row]:
    """The ops of a QNN profiling CSV (from HTP emulation, or from a phone through onnxruntime's QNN provider) as
    rows, their cycles converted at the chipset's HTP clock."""
    cycles_per_ms = chipset.htp_clock_mhz * 1e3
    return [Row(component, name, op_type(name), block_of(component, name), "NPU", round(cycles / cycles_per_ms, 6))
            for name, cycles in read_op_cycles(trace)]


def profile_bundle(bundle: Bundle, chipset: Chipset, scratch: Path, size: str | None = None) -> Profile:
    rows = []
    for component, graph in bundle.graphs(size).items():
        compiled = bundle.path(compiled_entry(bundle.manifest, graph, chipset.name)["file"])
        rows += profile_component(compiled, component, chipset, scratch)
    device = (f"{chipset.marketing_name} HTP emulation (onnxruntime-qnn {metadata.version('onnxruntime-qnn')}), "
              f"simulated cycles at {chipset.htp_clock_mhz:g} MHz")
    notes = ["per-op cycles from QNN's HTP cost model in onnxruntime-qnn's x86_64 emulation of the bundle's own "
             f"context binaries, converted at the HTP clock of the chipset profile ({chipset.htp_clock_mhz:g} MHz)"]
    return Profile("emulator", device, str(bundle.folder), bundle.manifest["sampling"]["num_steps"], rows,
                   notes=notes, size=bundle.size(size)).finish()
