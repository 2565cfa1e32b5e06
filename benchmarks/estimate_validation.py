"""Validate the `estimate` latency model against AI Hub's published device times; fit its constants; print JSON.

Builds every architecture of `estimate_models.py` at the shape AI Hub profiled, with its constant-initialised
parameters drawn as a trained checkpoint's would be (`trained_like`), exports it with our exporter
(trace, NPU rewrites, onnxsim) in the form AI Hub ran it (a Q/DQ graph costs what its float graph costs at that
precision: Q/DQ nodes are free and weights count at their stored bytes), estimates every row this model describes
and compares. The constants are fitted on the training models of `estimate_split.json` only, jointly for all
chipsets and precisions with the ties the hardware gives (one integer MAC efficiency for w8a8 and w8a16, whose
peaks differ by 2x; one speed factor per chipset), and reported on both sides of the split; `--write-profiles`
stores them per chipset and precision with the held-out error band in the chipset profiles (what `estimate` and
`profile` print with every projection). For scale it also reports the data's own noise: the same device time in the
oldest and newest release that publish it (`release_to_release`).

    .venv/bin/pip install .[bench]
    .venv/bin/python benchmarks/estimate_validation.py [--work DIR] [--write-profiles]

Rows kept: runtimes that run the whole graph through QNN on the NPU (qnn_context_binary, precompiled_qnn_onnx,
qnn_dlc, onnx, qnn) with no layer elsewhere (`other_ops` 0) at float, w8a8 or w8a16. Left out: tflite (another
compiler, the TFLite QNN delegate), rows with layers on the CPU (the model describes the NPU alone; those rows
run 10-100x slower), quantized rows more than 1.5x slower than the same model's float time on the same chipset
(part of the graph left the integer fast path: ViT w8a16 at 2.2x, Unet-Segmentation w8a8 at 5x; quantization
does not slow a graph that stays on it), the mixed-int16 precisions (which layers are 16-bit is not in the
table), and architectures that no installed library builds (listed in the output with the reason).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
import tempfile
from collections import Counter, defaultdict
from contextlib import redirect_stdout
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from estimate_models import ARCHITECTURES, Architecture  # noqa: E402

from edgefusion_export.export.onnx_export import simplify, trace  # noqa: E402
from edgefusion_export.graphs import load_shaped  # noqa: E402
from edgefusion_export.profile.estimate import (  # noqa: E402
    EstimateConstants, LatencyModel, LayerArrays, graph_layers, layer_times_ms)
from edgefusion_export.targets.chipsets import chipset, load_chipsets  # noqa: E402

CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "device-latency" / "aihub-published.csv"
SPLIT = Path(__file__).with_name("estimate_split.json")
NPU_RUNTIMES = {"qnn_context_binary", "precompiled_qnn_onnx", "qnn_dlc", "onnx", "qnn"}
PRECISIONS = ("float", "w8a8", "w8a16")
LEFT_OUT_ARCHITECTURES = {
    "whisper_base/HfWhisperDecoder": "the table gives no input shape (decoder with a KV cache)",
    "whisper_tiny/HfWhisperDecoder": "the table gives no input shape (decoder with a KV cache)",
    "controlnet_canny/controlnet": "the ControlNet branch with its 13 residual outputs is not built here",
}


def chipset_of(row: dict[str, str], names: dict[str, str]) -> str | None:
    marketing = row["chipset"].split(" (")[0]  # "Snapdragon 8 Elite (Galaxy S25)" is the 8 Elite
    return names.get(marketing)


def selected_rows(path: Path) -> tuple[list[dict], dict[str, int]]:
    names = {chip.marketing_name: chip.name for chip in load_chipsets().values()}
    kept, dropped = [], defaultdict(int)
    with path.open(newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            if row["runtime"] not in NPU_RUNTIMES:
                dropped[f"runtime {row['runtime']}"] += 1
            elif row["precision"] not in PRECISIONS:
                dropped[f"precision {row['precision']}"] += 1
            elif row["other_ops"] not in ("", "0"):
                dropped["layers off the NPU"] += 1
            elif chipset_of(row, names) is None:
                dropped[f"no profile for {row['chipset']}"] += 1
            else:
                kept.append({**row, "profile": chipset_of(row, names), "inference_ms": float(row["inference_ms"])})
    return kept, dict(dropped)


def trained_like(module: torch.nn.Module) -> None:
    """Draw the parameters a library initialises to a constant (biases at 0, norm scales at 1) around it.

    A trained checkpoint has no such constants, and the graph depends on them: simplification drops an Add of zeros
    and a Mul by ones (a GroupNorm's affine, a Linear's bias), which a trained checkpoint's graph keeps.
    """
    with torch.no_grad():
        for parameter in module.parameters():
            for constant in (0.0, 1.0):
                if parameter.numel() > 0 and bool(torch.all(parameter == constant)):
                    parameter.normal_(constant, 0.02)


def graph_path(architecture: Architecture, work: Path) -> Path:
    """The simplified graph of an architecture with trained-like parameters, built once."""
    path = work / architecture.graph_name / "trained-like" / "simplified" / "model.onnx"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    # onnxsim, and Ultralytics on its first import, print to stdout, which carries the JSON
    with torch.no_grad(), redirect_stdout(sys.stderr):
        torch.manual_seed(0)
        module, inputs = architecture.build()
        trained_like(module)
        exported = trace(module.eval(), inputs, path.parent.parent / "model.onnx",
                         [f"input_{i}" for i in range(len(inputs))], ["output"])
        simplify(exported, path.parent)
    return path


def without_broken_quantized(rows: list[dict]) -> tuple[list[dict], int]:
    """Drop quantized rows more than 1.5x slower than the model's float median on the same chipset."""
    floats = defaultdict(list)
    for row in rows:
        if row["precision"] == "float":
            floats[row["model"], row["component"], row["profile"]].append(row["inference_ms"])

    def broken(row: dict) -> bool:
        reference = floats.get((row["model"], row["component"], row["profile"]))
        return row["precision"] != "float" and bool(reference) and row["inference_ms"] > 1.5 * statistics.median(reference)

    kept = [row for row in rows if not broken(row)]
    return kept, len(rows) - len(kept)


def relative_errors(estimates: list[float], measured: list[float]) -> dict[str, float]:
    errors = sorted(abs(e / m - 1) for e, m in zip(estimates, measured))
    return {"rows": len(errors), "median": round(statistics.median(errors), 3),
            "p90": round(float(np.percentile(errors, 90)), 3), "max": round(errors[-1], 3)} if errors else {"rows": 0}


# The fitted parameters: the shared ones and one speed factor per chipset (the default chipset is the reference).
# Start values, lower and upper bounds.
PARAMETERS = {
    "dense_float": (0.6, 0.01, 3.0), "dense_integer": (0.6, 0.01, 3.0), "dynamic_ratio": (0.3, 1e-3, 3.0),
    "grouped_ratio": (0.3, 1e-3, 3.0), "vector_float": (50.0, 1.0, 1e4), "vector_w8a8": (75.0, 1.0, 1e4),
    "vector_w8a16": (75.0, 1.0, 1e4), "softmax_float": (10.0, 0.1, 1e4), "softmax_integer": (10.0, 0.1, 1e4),
    "memory_efficiency": (0.8, 0.05, 2.0), "activation_spill": (0.2, 1e-3, 1.0), "op_overhead_us": (5.0, 0.01, 100.0),
    "io_ns_per_value": (0.5, 1e-3, 100.0),
}
CHIP_SPEED = (1.0, 0.3, 4.0)
PRIOR_WEIGHT = 0.02  # pulls parameters the rows cannot tell apart towards their start values
ROBUST_LOSS = ("soft_l1", 0.2)  # scipy's loss on log(estimate / measured) and the residual where it turns robust


def constants_for(values: dict[str, float], chip: str, precision: str) -> EstimateConstants:
    """One chipset's constants at one precision, from the shared parameters and its speed factor."""
    speed = values.get(f"speed/{chip}", 1.0)
    integer = "float" if precision == "float" else "integer"
    dense = values[f"dense_{integer}"] * speed
    return EstimateConstants(
        dense_efficiency=dense, dynamic_efficiency=dense * values["dynamic_ratio"],
        grouped_efficiency=dense * values["grouped_ratio"], vector_gbps=values[f"vector_{precision}"] * speed,
        softmax_gbps=values[f"softmax_{integer}"] * speed, memory_efficiency=values["memory_efficiency"],
        activation_spill=values["activation_spill"], op_overhead_us=values["op_overhead_us"] / speed,
        io_ns_per_value=values["io_ns_per_value"])


def estimate_ms(sample: dict, values: dict[str, float]) -> float:
    """The estimate of one row's graph on its chipset at its precision, with the parameters `values`."""
    constants = constants_for(values, sample["profile"], sample["precision"])
    model = LatencyModel(load_chipsets()[sample["profile"]], sample["precision"], constants, None)
    return float(layer_times_ms(sample["layers"], model).sum())


def fit(samples: list[dict], chips: list[str], parameters: dict = PARAMETERS,
        time_ms: Callable[[dict, dict[str, float]], float] = estimate_ms,
        loss: tuple[str, float] = ROBUST_LOSS, models_equal: bool = False) -> dict[str, float]:
    """Least squares on log(estimate / measured) over the training rows, robust to a few outliers (`loss`: scipy's
    loss and its scale). With `models_equal` each model weighs as much as any other, whatever its count of rows."""
    from scipy.optimize import least_squares

    bounds = {**parameters, **{f"speed/{chip}": CHIP_SPEED for chip in chips}}
    names = list(bounds)
    start, lower, upper = (np.log([bounds[name][i] for name in names]) for i in range(3))
    rows = Counter(sample["model"] for sample in samples)
    weights = np.array([np.sqrt(len(samples) / (len(rows) * rows[sample["model"]])) if models_equal else 1.0
                        for sample in samples])

    def residuals(log_values: np.ndarray) -> np.ndarray:
        values = dict(zip(names, np.exp(log_values)))
        errors = [np.log(time_ms(sample, values) / sample["inference_ms"]) for sample in samples]
        return np.concatenate([weights * errors, PRIOR_WEIGHT * (log_values - start)])

    result = least_squares(residuals, start, bounds=(lower, upper), loss=loss[0], f_scale=loss[1])
    return {name: float(f"{value:.4g}") for name, value in zip(names, np.exp(result.x))}


def estimated_samples(csv_path: Path, work: Path) -> list[dict]:
    """The rows the model describes, each with its architecture, its side of the split and its graph's layers."""
    rows, dropped = selected_rows(csv_path)
    rows, dropped["quantized rows over 1.5x the float time"] = without_broken_quantized(rows)
    held_out = set(json.loads(SPLIT.read_text(encoding="utf-8"))["held_out"])
    architectures = {(a.model, a.component): a for a in ARCHITECTURES}
    chipsets = load_chipsets()
    layers: dict[tuple[str, str], LayerArrays] = {}
    samples = []
    for row in rows:
        architecture = architectures.get((row["model"], row["component"]))
        if architecture is None:
            dropped["architecture not built"] = dropped.get("architecture not built", 0) + 1
            continue
        key = (architecture.graph_name, row["precision"])
        if key not in layers:
            precision = "fp16" if row["precision"] == "float" else row["precision"]
            layers[key] = graph_layers(load_shaped(graph_path(architecture, work)), precision, chipsets[row["profile"]])[1]
        side = "held_out" if architecture.model in held_out else "fit"
        samples.append({**row, "architecture": architecture, "side": side, "layers": layers[key]})
    print(f"{len(samples)} rows estimated, left out: {dropped}", file=sys.stderr)
    return samples


def fitted_chipsets(samples: list[dict]) -> list[str]:
    """The chipsets that get a speed factor: every measured one but the default (the reference)."""
    return sorted({s["profile"] for s in samples} - {chipset(None).name})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=CSV)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgefusion-estimate-validation")
    parser.add_argument("--write-profiles", action="store_true", help="store the fitted constants and held-out band")
    args = parser.parse_args()
    samples = estimated_samples(args.csv, args.work)
    values = fit([s for s in samples if s["side"] == "fit"], fitted_chipsets(samples))
    for s in samples:
        s["estimate_ms"] = estimate_ms(s, values)
    report = report_of(samples, values, LEFT_OUT_ARCHITECTURES)
    if args.write_profiles:
        write_profiles(values, report["by_chipset_and_precision"], samples)
    print(json.dumps(report, indent=1))


def write_profiles(values: dict[str, float], bands: dict[str, dict], samples: list[dict]) -> None:
    """Each chipset profile gets its constants per precision, what they were fitted on and the held-out band."""
    folder = Path(__file__).resolve().parents[1] / "profiles"
    for path in sorted(folder.glob("*.json")):
        profile = json.loads(path.read_text(encoding="utf-8"))
        estimate = {}
        for precision in PRECISIONS:
            fitted = [s for s in samples if s["side"] == "fit" and s["profile"] == profile["name"] and s["precision"] == precision]
            band = bands.get(f"{profile['name']}/{precision}", {}).get("held_out", {})
            estimate[precision] = {
                **asdict(constants_for(values, profile["name"], precision)),
                "fitted_on": (f"{len(fitted)} device times of {len({s['model'] for s in fitted})} models on this chipset "
                              "and those of the other chipsets, which share every constant but the speed factor"
                              if fitted else "no device times of this chipset: the shared constants at its profile's peaks"),
                **({"held_out_error": {k: band[k] for k in ("median", "p90", "rows")}} if band.get("rows") else {}),
            }
        profile["estimate"] = {precision: {k: round(v, 4) if isinstance(v, float) else v for k, v in entry.items()}
                               for precision, entry in estimate.items()}
        text = json.dumps(profile, indent=2)  # lists of names stay on one line, as the profiles are written by hand
        text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + re.sub(r"\s*\n\s*", " ", m.group(1)) + "]", text)
        path.write_text(text + "\n", encoding="utf-8")


def release_spread(samples: list[dict]) -> dict[str, dict[str, float]]:
    """The data's own noise: one device time (model, chipset, runtime, precision) in its newest release against its
    oldest, per chipset and precision and over all, as relative errors (the yardstick for the estimate's bands)."""
    releases = defaultdict(lambda: defaultdict(list))
    for s in samples:
        key = s["model"], s["component"], s["profile"], s["runtime"], s["precision"]
        releases[key][s["source_version"].split()[0]].append(s["inference_ms"])
    pairs = defaultdict(lambda: ([], []))
    for (_, _, chip, _, precision), times in releases.items():
        if len(times) > 1:
            versions = sorted(times, key=version_key)
            older, newer = statistics.median(times[versions[0]]), statistics.median(times[versions[-1]])
            for group in (f"{chip}/{precision}", "all"):
                pairs[group][0].append(newer)
                pairs[group][1].append(older)
    return {group: relative_errors(*pair) for group, pair in sorted(pairs.items())}


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.lstrip("v").split("."))


def report_of(samples: list[dict], values: dict[str, float], left_out: dict[str, str]) -> dict:
    def band(selection: list[dict]) -> dict[str, float]:
        return relative_errors([s["estimate_ms"] for s in selection], [s["inference_ms"] for s in selection])

    def grouped(key) -> dict:
        groups = defaultdict(list)
        for s in samples:
            groups[key(s)].append(s)
        return {name: {side: band([s for s in group if s["side"] == side]) for side in ("fit", "held_out")}
                for name, group in sorted(groups.items())}

    worst = sorted(samples, key=lambda s: -abs(np.log(s["estimate_ms"] / s["inference_ms"])))
    row = lambda s: {"model": s["model"], "component": s["component"], "chipset": s["profile"], "runtime": s["runtime"],  # noqa: E731
                     "precision": s["precision"], "side": s["side"], "measured_ms": s["inference_ms"],
                     "estimate_ms": round(s["estimate_ms"], 3), "error": f"{s['estimate_ms'] / s['inference_ms'] - 1:+.0%}"}
    return {
        "parameters": values,
        "by_chipset_and_precision": grouped(lambda s: f"{s['profile']}/{s['precision']}"),
        "by_family": grouped(lambda s: s["architecture"].family),
        "release_to_release": release_spread(samples),
        "stable_diffusion_w8a16": [row(s) for s in samples if s["architecture"].family == "stable-diffusion"],
        "worst_held_out_rows": [row(s) for s in worst if s["side"] == "held_out"][:15],
        "rows": [row(s) for s in samples],
        "architectures_left_out": left_out,
    }


if __name__ == "__main__":
    main()
