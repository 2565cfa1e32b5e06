"""Does QNN's HTP cost model say why a float graph runs far slower than its W8A16 one on the device? Print JSON.

SegFormer-B0 at 512x512 measures 83 ms in float and 10 ms at W8A16 on the Galaxy S24 (8.1x, every runtime), while
other models' float and quantized times are within about 2x of each other; no general form of the `estimate`
predicts it. This compiles each architecture (random weights, the graph `estimate_validation.py` builds) for the
8 Gen 3 in FP16 and in W8A16 (onnxruntime's QNN pre-processing, then QDQ calibrated on two random inputs), runs
both once in onnxruntime-qnn's HTP emulation with QNN's per-op profiling, and reports the simulated time per op
type beside the published device times (8 Gen 3 medians). EfficientNet-B0 (float as fast as W8A16 on the device)
and FCN-ResNet50 (the one training model with a bilinear Resize in float) are the controls.

    .venv/bin/python benchmarks/emulated_precisions.py [--work DIR] [--model NAME ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from emulation_rates import random_feeds  # noqa: E402
from estimate_models import ARCHITECTURES, Architecture  # noqa: E402
from estimate_validation import CSV, graph_path, selected_rows  # noqa: E402

from edgefusion_export.memory import PeakMemory  # noqa: E402
from edgefusion_export.profile.emulator_backend import profile_component  # noqa: E402
from edgefusion_export.quantize import qdq  # noqa: E402
from edgefusion_export.targets.chipsets import chipset  # noqa: E402
from edgefusion_export.targets.snapdragon import compile_for_chipset  # noqa: E402

MODELS = ("segformer_base", "efficientnet_b0", "fcn_resnet50")
CHIPSET = "snapdragon-8-gen-3"


def emulated(model_path: Path, name: str, folder: Path) -> dict:
    """Compile for the 8 Gen 3 (QNN mode 2), run once in emulation, sum the simulated milliseconds per op type."""
    folder.mkdir(parents=True, exist_ok=True)
    chip = chipset(CHIPSET)
    compiled = compile_for_chipset(model_path, chip, folder, allow_cpu_fallback=False, mode="2")
    by_type: dict[str, float] = defaultdict(float)
    for row in profile_component(folder / compiled.file, name, chip, folder):
        by_type[row.op_type] += row.time_ms
    return {"total_ms": round(sum(by_type.values()), 1),
            "by_op_type_ms": {kind: round(ms, 1) for kind, ms in sorted(by_type.items(), key=lambda item: -item[1]) if ms >= 0.05}}


def device_ms(model: str, chipset_name: str = CHIPSET, component: str | None = None) -> dict[str, float]:
    """Median published time per precision on the chipset (NPU runtimes, no layer elsewhere)."""
    times = defaultdict(list)
    for row in selected_rows(CSV)[0]:
        if row["model"] == model and row["profile"] == chipset_name and component in (None, row["component"]):
            times[row["precision"]].append(row["inference_ms"])
    return {precision: round(statistics.median(values), 3) for precision, values in sorted(times.items())}


def precision_graphs(architecture: Architecture, work: Path) -> dict[str, Path]:
    """The architecture's graph after onnxruntime's QNN pre-processing (float), and its QDQ form calibrated on two
    random inputs (w8a16), built once."""
    folder = work / "emulated" / architecture.graph_name
    folder.mkdir(parents=True, exist_ok=True)
    prepared, _ = qdq.prepare(graph_path(architecture, work), folder)
    quantized = folder / "w8a16.onnx"
    if not quantized.is_file():
        qdq.quantize_w8a16(prepared, random_feeds(prepared, 2), quantized)
    return {"float": prepared, "w8a16": quantized}


def compare(model: str, work: Path) -> dict:
    architecture = next(a for a in ARCHITECTURES if a.model == model)
    start = time.perf_counter()
    graphs = precision_graphs(architecture, work)
    folder = graphs["w8a16"].parent
    fp16, w8a16 = emulated(graphs["float"], model, folder / "fp16"), emulated(graphs["w8a16"], model, folder / "w8a16")
    device = device_ms(model)
    quantized_device = device.get("w8a16") or device.get("w8a8")
    return {"emulated_fp16": fp16, "emulated_w8a16": w8a16,
            "emulated_fp16_over_w8a16": round(fp16["total_ms"] / w8a16["total_ms"], 2),
            "device_8_gen_3_ms": device,
            "device_float_over_quantized": round(device["float"] / quantized_device, 2) if quantized_device else None,
            "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgefusion-estimate-validation")
    parser.add_argument("--model", choices=MODELS, action="append", help="only this architecture (repeatable)")
    args = parser.parse_args()
    with PeakMemory() as peak:
        result = {model: compare(model, args.work) for model in args.model or MODELS}
    result["peak_rss_gb"] = round(peak.mb / 1024, 2)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
