"""How fast this machine emulates the HTP: every compiled component of Snapdragon bundles run in onnxruntime-qnn's
HTP emulation; print JSON lines with each one's GMACs, the values each form of rate charges for, load and
per-call seconds, and what the build's prediction (`snapdragon.emulation_seconds`) said, as a ratio.

Run it on bundles of several sizes and precisions (the tiny preset, bk-sdm-tiny at 256x256 and 512x512); `--fit`
then reads those JSON lines (files, or earlier measurements typed in the same form; a line marked `"fit": false`
is reported, not fitted) and prints the least-squares rates per precision for `snapdragon.EMULATION_RATES`, with
each point's fitted call and its call predicted by the rates fitted without it. Inputs are random (emulation time
does not depend on the values); each component is called twice, as the UNet is per image.

    .venv/bin/python benchmarks/emulation_rates.py BUNDLE [BUNDLE ...] [--chipset NAME] [--calls 2] > rates.jsonl
    .venv/bin/python benchmarks/emulation_rates.py --fit rates.jsonl [...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnx

from edgefusion_export.bundle.manifest import load_bundle
from edgefusion_export.graphs import layer_costs, load_shaped, static_shapes
from edgefusion_export.runtime.sessions import htp_session
from edgefusion_export.targets import snapdragon
from edgefusion_export.targets.chipsets import chipset

FORMS = snapdragon.EMULATION_VALUE_FORMS


def random_feeds(portable: Path, count: int = 1) -> list[dict[str, np.ndarray]]:
    """`count` feeds for a graph's inputs, drawn one after another from one seeded generator (integers are zeros)."""
    model = onnx.load(str(portable), load_external_data=False)
    shapes = static_shapes(model)
    rng = np.random.default_rng(0)
    feeds = []
    for _ in range(count):
        feed = {}
        for value in model.graph.input:
            if value.type.tensor_type.elem_type in (onnx.TensorProto.INT32, onnx.TensorProto.INT64):
                dtype = np.int32 if value.type.tensor_type.elem_type == onnx.TensorProto.INT32 else np.int64
                feed[value.name] = np.zeros(shapes[value.name], dtype)
            else:
                feed[value.name] = rng.standard_normal(shapes[value.name]).astype(np.float32)
        feeds.append(feed)
    return feeds


def measure(folder: Path, chip, calls: int) -> list[dict]:
    bundle = load_bundle(folder)
    size = bundle.sizes[0]
    results = []
    for component, entry in bundle.manifest["components"].items():
        portable, precision = bundle.component_path(component), entry["precision"]
        compiled = bundle.folder / entry["compiled"][chip.name]["offline"]["file"]
        costs = layer_costs(load_shaped(portable), precision, 0)
        feed = random_feeds(portable)[0]
        start = time.perf_counter()
        session = htp_session(compiled, chip.htp_target)
        load_s = time.perf_counter() - start
        call_s = []
        for _ in range(calls):
            start = time.perf_counter()
            session.run(None, feed)
            call_s.append(round(time.perf_counter() - start, 2))
        measured = load_s + sum(call_s)
        predicted = snapdragon.emulation_seconds(portable, precision, calls)
        results.append({"bundle": str(folder), "size": size, "component": component, "precision": precision,
                        "gmac": round(sum(c.macs for c in costs) / 1e9, 3),
                        "gvalues": {form: round(sum(snapdragon.costed_values(costs, form)) / 1e9, 4) for form in FORMS},
                        "load_s": round(load_s, 2), "call_s": call_s, "measured_s": round(measured, 1),
                        "predicted_s": round(predicted, 1), "predicted_over_measured": round(predicted / measured, 2)})
        print(json.dumps(results[-1]), flush=True)
    return results


def rates_of(rows: list[dict], form: str) -> list[float]:
    """[s per GMAC, s per G values of `form`]: least squares on the relative error (small and large graphs count
    alike) of each row's fastest call."""
    seconds = np.array([min(row["call_s"]) for row in rows])
    features = np.array([[row["gmac"], row["gvalues"][form]] for row in rows]) / seconds[:, None]
    return [max(float(rate), 0.0) for rate in np.linalg.lstsq(features, np.ones(len(rows)), rcond=None)[0]]


def call_seconds(rates: list[float], line: dict, form: str) -> float:
    return rates[0] * line["gmac"] + rates[1] * line["gvalues"][form]


def leave_one_out(rows: list[dict], form: str) -> list[float]:
    """Each row's call predicted by rates fitted on the other rows, over its measured call, minus 1."""
    return [call_seconds(rates_of(rows[:i] + rows[i + 1:], form), row, form) / min(row["call_s"]) - 1
            for i, row in enumerate(rows)]


def fit(lines: list[dict]) -> dict[str, dict]:
    """Per precision, the form (which values written cost) whose worst leave-one-out error is smaller, fitted on the
    lines not marked `"fit": false`; load: the median load time."""
    result = {}
    for precision in sorted({line["precision"] for line in lines}):
        rows = [line for line in lines if line["precision"] == precision and line.get("fit", True)]
        errors = {form: leave_one_out(rows, form) for form in FORMS}
        form = min(FORMS, key=lambda name: max(abs(error) for error in errors[name]))
        rates = rates_of(rows, form)
        loads = [line["load_s"] for line in rows if line.get("load_s") is not None]
        result[precision] = {
            "rate": {"load_s": round(float(np.median(loads)), 2), "s_per_gmac": round(rates[0], 3),
                     "s_per_gvalue": round(rates[1], 2), "values": form},
            "worst_leave_one_out": {name: f"{max(abs(error) for error in errors[name]):.0%}" for name in FORMS},
            "points": [{"point": f"{line['bundle']} {line['size']} {line['component']}",
                        "measured_call_s": min(line["call_s"]), "fitted_call_s": round(call_seconds(rates, line, form), 1),
                        **({"left_out_call_s": round(min(line["call_s"]) * (1 + errors[form][rows.index(line)]), 1)}
                           if line in rows else {"not_fitted": line.get("note", "")})}
                       for line in lines if line["precision"] == precision]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="*", type=Path)
    parser.add_argument("--chipset", default="snapdragon-8-gen-3")
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--fit", nargs="+", type=Path, help="JSON-lines files of earlier runs to fit the rates on")
    args = parser.parse_args()
    if args.fit:
        lines = [json.loads(line) for path in args.fit for line in path.read_text().splitlines() if line.startswith("{")]
        print(json.dumps(fit(lines), indent=2))
        return
    chip = chipset(args.chipset)
    for folder in args.bundles:
        measure(folder, chip, args.calls)


if __name__ == "__main__":
    main()
