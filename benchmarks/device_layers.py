"""Where a phone spends the time the estimate gets wrong, layer by layer, beside the estimate's layers: print JSON.

Needs an AI Hub token (QAI_HUB_API_TOKEN, or `qai-hub configure`) and the network, or, with `--phone DIR`, a
Snapdragon phone on adb instead: the graphs are compiled here, and it prints the commands that run each on the phone
with QNN's per-op profiling (an Android build of onnxruntime's `onnxruntime_perf_test` with the QNN execution
provider and the QNN SDK's HTP libraries, of the version the binaries name, in /data/local/tmp/edgefusion) and
fetch the profile into DIR; run again, it reads those profiles (QNN's cycles at the chipset's HTP clock).

The published times `estimate_validation.py` checks hold one total per model, chipset and precision. The rows the
estimate misses by more than 2x (SegFormer-B0 in float, EfficientNet-B4, ConvNeXt-Tiny, YOLOv7-tiny) and SD-1.5's
text encoder cannot be explained from totals (README, "How far to trust the estimate"; `estimate_forms.md`). This
builds each architecture's graph as `emulated_precisions.py` does (float after onnxruntime's QNN pre-processing,
and its W8A16 QDQ form), compiles it on AI Hub for the chipset's device (a QNN context binary), profiles it there,
and joins the device's layers to the estimate's by name (QNN keeps the ONNX node names and adds suffixes of its
own; names are compared in lower case, other characters as `_`, in case AI Hub's converter spells them so). Per
model and precision it prints the device's and the estimate's totals, both per op type of the estimate (`device
only <type>`: layers QNN inserted, such as layout conversions; `estimate_only_layers`: layers the device ran inside
others), the share of device time matched, and the layers where the two differ most.
Submitted jobs are kept in a ledger under `--work`: a re-run resumes them.

    .venv/bin/python benchmarks/device_layers.py [--model GRAPH ...] [--precision float|w8a16 ...] [--chipset NAME]
        [--work DIR] [--phone DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from emulated_precisions import device_ms, precision_graphs  # noqa: E402
from estimate_models import ARCHITECTURES  # noqa: E402

from edgefusion_export.errors import UserError  # noqa: E402
from edgefusion_export.profile.aihub_backend import (PROFILE_OPTIONS, inference_ms, layer_rows,  # noqa: E402
                                                     profile_on_device)
from edgefusion_export.profile.emulator_backend import profiled_rows  # noqa: E402
from edgefusion_export.profile.estimate import estimate_model  # noqa: E402
from edgefusion_export.profile.model import Row  # noqa: E402
from edgefusion_export.targets import aihub  # noqa: E402
from edgefusion_export.targets.chipsets import Chipset, chipset  # noqa: E402
from edgefusion_export.targets.snapdragon import compile_for_chipset  # noqa: E402

GRAPHS = ("segformer_base.Segformer-Base", "efficientnet_b4.EfficientNet-B4", "convnext_tiny.ConvNext-Tiny",
          "yolov7.Yolo-v7", "sd-1.5.text_encoder", "sd-1.5.vae", "efficientnet_b0.EfficientNet-B0")
WORST_LAYERS = 10
PHONE_FOLDER = "/data/local/tmp/edgefusion"
PHONE_PROFILE = "profile.csv"
PHONE_PROFILING = {"profiling_level": "detailed", "htp_performance_mode": "burst"}  # QNN EP options of the phone run


def layer_key(name: str) -> str:
    """A layer name as QNN may spell it: lower case, runs of other characters as one `_`."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def estimated_layer(device_name: str, estimated: dict[str, Row]) -> Row | None:
    """The estimate's layer a device layer stems from: the one of the same name, or the longest one with a module
    scope whose name the device layer's starts with, before QNN's suffix (`_token_368`, `_2`). A name without a
    scope (`Transpose`) is matched whole only: QNN names the layout conversions it inserts `Transpose_token_<n>`."""
    key = layer_key(device_name)
    if key in estimated:
        return estimated[key]
    parts = key.split("_")
    for end in range(len(parts) - 1, 0, -1):
        row = estimated.get("_".join(parts[:end]))
        if row is not None and "/" in row.name:
            return row
    return None


def compare_layers(measured: list[Row], estimated: list[Row]) -> dict[str, Any]:
    """Device and estimated milliseconds per op type of the estimate, device layers matched to estimated ones by
    name; each estimated layer counts once, whether the device ran it as one op or several."""
    by_key = {layer_key(row.name): row for row in estimated}
    table: dict[str, dict[str, float]] = defaultdict(lambda: {"device_ms": 0.0, "estimate_ms": 0.0, "device_layers": 0,
                                                              "estimate_only_layers": 0})
    device_of: dict[str, float] = defaultdict(float)
    for row in measured:
        match = estimated_layer(row.name, by_key)
        kind = match.op_type if match else f"device only {row.op_type}"
        table[kind]["device_ms"] += row.time_ms
        table[kind]["device_layers"] += 1
        if match:
            device_of[match.name] += row.time_ms
    for row in estimated:
        table[row.op_type]["estimate_ms"] += row.time_ms
        if row.name not in device_of:
            table[row.op_type]["estimate_only_layers"] += 1
    device_total = sum(row.time_ms for row in measured)
    worst = sorted((row for row in estimated if row.name in device_of),
                   key=lambda row: -abs(device_of[row.name] - row.time_ms))[:WORST_LAYERS]
    return {
        "matched_device_share": round(sum(device_of.values()) / device_total, 3) if device_total else None,
        "by_op_type": {kind: {key: round(value, 4) for key, value in entry.items()}
                       for kind, entry in sorted(table.items(), key=lambda item: -item[1]["device_ms"])},
        "worst_layers": [{"name": row.name, "op_type": row.op_type, "device_ms": round(device_of[row.name], 4),
                          "estimate_ms": round(row.time_ms, 4)} for row in worst],
    }


def profile_graph(hub: ModuleType, client: Any, ledger: aihub.JobLedger, graph: Path, label: str, precision: str,
                  chip: Chipset, folder: Path, timeout_s: int = aihub.DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Compile `graph` on AI Hub for the chipset's device, profile the context binary there, and set its layers
    beside the estimate's."""
    folder.mkdir(parents=True, exist_ok=True)
    compiled = aihub.compile_on_aihub(hub, client, graph, label, chip, ledger, folder, timeout_s=timeout_s)
    job, payload = profile_on_device(hub, client, ledger, folder / compiled.file, label, chip.aihub_device,
                                     PROFILE_OPTIONS, timeout_s)
    estimate = estimate_model(graph, precision, chip)
    return {"device": chip.aihub_device, "compile_job": compiled.url, "profile_job": job.url,
            "device_ms": inference_ms(payload), "estimate_ms": round(estimate.total_ms, 4),
            **compare_layers(layer_rows(label, payload), estimate.rows)}


def phone_commands(label: str, folder: Path, compiled: str) -> list[str]:
    """adb commands that run a compiled graph once on the phone with QNN's per-op profiling and fetch the profile."""
    remote = f"{PHONE_FOLDER}/{label}"
    options = {"backend_path": "libQnnHtp.so", **PHONE_PROFILING, "profiling_file_path": f"{remote}/{PHONE_PROFILE}"}
    pairs = " ".join(f"{key}|{value}" for key, value in options.items())
    return [f"adb push {folder} {PHONE_FOLDER}/",
            f"adb shell 'cd {PHONE_FOLDER} && rm -f {remote}/{PHONE_PROFILE} && LD_LIBRARY_PATH=. ADSP_LIBRARY_PATH=. "
            f"./onnxruntime_perf_test -e qnn -I -m times -r 1 -i \"{pairs}\" {remote}/{compiled}'",
            f"adb pull {remote}/{PHONE_PROFILE} {folder / PHONE_PROFILE}"]


def phone_layers(graph: Path, label: str, precision: str, chip: Chipset, folder: Path) -> dict[str, Any]:
    """The layers a phone ran, from the profile fetched into `folder`, beside the estimate's; until that profile is
    there, the graph compiled here for the chipset and the commands that run it on the phone."""
    folder.mkdir(parents=True, exist_ok=True)
    estimate = estimate_model(graph, precision, chip)
    estimate_ms = round(estimate.total_ms, 4)
    if not (folder / PHONE_PROFILE).is_file():
        compiled = compile_for_chipset(graph, chip, folder, allow_cpu_fallback=False)
        return {"estimate_ms": estimate_ms,
                "phone_needs": f"QNN {compiled.qnn_sdk_version} HTP libraries for {chip.hexagon_arch}",
                "run_on_phone": phone_commands(label, folder, compiled.file)}
    measured = profiled_rows(folder / PHONE_PROFILE, label, chip)
    if not measured:
        raise UserError(f"{folder / PHONE_PROFILE} holds no per-op cycles; delete it and run the graph's "
                        "run_on_phone commands again (the run must finish with profiling_level detailed)")
    return {"device": f"{chip.marketing_name} phone, QNN's per-op cycles at {chip.htp_clock_mhz:g} MHz",
            "device_ms": round(sum(row.time_ms for row in measured), 4), "estimate_ms": estimate_ms,
            **compare_layers(measured, estimate.rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted({a.graph_name for a in ARCHITECTURES}), action="append",
                        metavar="GRAPH", help=f"an architecture's graph (repeatable; default {', '.join(GRAPHS)})")
    parser.add_argument("--precision", choices=("float", "w8a16"), action="append",
                        help="repeatable; default both")
    parser.add_argument("--chipset", default="snapdragon-8-gen-3")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgefusion-estimate-validation")
    parser.add_argument("--phone", type=Path, metavar="DIR",
                        help="profile on a phone over adb instead of AI Hub: compiled graphs and fetched profiles here")
    args = parser.parse_args()
    if args.phone is not None and args.phone.exists() and not args.phone.is_dir():
        sys.exit(f"error: --phone {args.phone} is a file; pass a folder for the compiled graphs and the profiles")
    try:
        chip = chipset(args.chipset)
        if args.phone is None:
            hub = aihub.load_hub()
            client = aihub.make_client(hub)
            ledger = aihub.JobLedger(args.work / "device-layers" / "jobs.json")
        result = {}
        for name in args.model or GRAPHS:
            architecture = next(a for a in ARCHITECTURES if a.graph_name == name)
            graphs = precision_graphs(architecture, args.work)
            for precision in args.precision or ("float", "w8a16"):
                label = f"{name}.{precision}"
                layers = (phone_layers(graphs[precision], label, precision, chip, args.phone / label) if args.phone
                          else profile_graph(hub, client, ledger, graphs[precision], label, precision, chip,
                                             args.work / "device-layers" / label))
                result[label] = {"published_median_ms": device_ms(architecture.model, chip.name,
                                                                  architecture.component).get(precision), **layers}
    except UserError as error:
        sys.exit(f"error: {error}")
    print(json.dumps(result, indent=1))
    if any("run_on_phone" in entry for entry in result.values()):
        print("next: run each graph's run_on_phone commands, then this again to read the profiles", file=sys.stderr)


if __name__ == "__main__":
    main()
