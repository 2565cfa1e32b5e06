"""`estimate --input-shape` on graphs exported with dynamic axes, against the validation's static graphs.

Each architecture of estimate_validation.py is exported as users often export models, every input dimension dynamic
and not simplified: with torch's TorchScript exporter (what Optimum uses), or with `--exporter dynamo` by torch.export
(torch's default since 2.9, which optimises the graph as it writes it). Its estimate at the validated shapes
(`--input-shape`) is compared with the estimate of the validation's static, simplified graph of the same module,
at fp16 and w8a16 on the 8 Gen 3; so is its estimate with the dynamic dimensions taken as 1 (no `--input-shape`).
What differs is the graph (what onnxsim folds, how each exporter writes attention), or layers the estimate names as
not costed (control flow). Prints JSON: per architecture, then a summary.

    .venv/bin/python benchmarks/estimate_dynamic_exports.py --work /tmp/edgefusion-estimate-validation [--exporter dynamo]
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from estimate_models import ARCHITECTURES, Architecture
from estimate_validation import graph_path, trained_like

from edgefusion_export.profile.estimate import estimate_model
from edgefusion_export.runtime.sessions import native_stdout_to_stderr
from edgefusion_export.targets.chipsets import chipset

PRECISIONS = ("fp16", "w8a16")
FOLDERS = {"torchscript": "dynamic-axes", "dynamo": "dynamo-dynamic-shapes"}


def export_dynamic(architecture: Architecture, path: Path, exporter: str) -> dict[str, list[int]]:
    """The module with trained-like parameters, every input dimension dynamic; returns the example's shapes."""
    with torch.no_grad(), native_stdout_to_stderr(), warnings.catch_warnings():  # a failing export prints its graph
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        module, inputs = architecture.build()
        trained_like(module)
        names = [f"input_{i}" for i in range(len(inputs))]
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            if exporter == "torchscript":
                axes = {name: {axis: f"{name}_{axis}" for axis in range(tensor.dim())} for name, tensor in zip(names, inputs)}
                torch.onnx.export(module.eval(), tuple(inputs), str(path.with_suffix(".partial")), input_names=names,
                                  dynamic_axes=axes, opset_version=17, dynamo=False)
            else:  # torch.export may keep a dimension static where the module's code requires it
                dims = tuple({axis: torch.export.Dim.AUTO for axis in range(tensor.dim())} for tensor in inputs)
                takes_varargs = any(parameter.kind == parameter.VAR_POSITIONAL
                                    for parameter in inspect.signature(module.forward).parameters.values())
                torch.onnx.export(module.eval(), tuple(inputs), str(path.with_suffix(".partial")), input_names=names,
                                  dynamic_shapes=(dims,) if takes_varargs else dims, opset_version=18, dynamo=True,
                                  external_data=True)
            path.with_suffix(".partial").rename(path)
    return {name: list(tensor.shape) for name, tensor in zip(names, inputs)}


def compare(architecture: Architecture, work: Path, exporter: str) -> dict:
    path = work / architecture.graph_name / FOLDERS[exporter] / "model.onnx"
    try:
        shapes = export_dynamic(architecture, path, exporter)
    except Exception as error:  # the exporter's own limits (it is not ours): reported, not fatal
        return {"export failed": str(error).splitlines()[0][:160]}
    chip, static = chipset("snapdragon-8-gen-3"), graph_path(architecture, work)
    row = {}
    for precision in PRECISIONS:
        given, reference = estimate_model(path, precision, chip, shapes), estimate_model(static, precision, chip)
        row[precision] = {"given_over_static": round(given.total_ms / reference.total_ms, 4),
                          "taken_as_1_over_static": round(estimate_model(path, precision, chip).total_ms
                                                          / reference.total_ms, 4),
                          "not_costed": given.not_costed}
    return row


def summary(rows: dict[str, dict]) -> dict:
    exported = {name: row for name, row in rows.items() if "export failed" not in row}
    result = {"architectures": len(rows), "exported": len(exported)}
    for precision in PRECISIONS:
        costed = {name: row[precision] for name, row in exported.items() if not row[precision]["not_costed"]}
        ratios = sorted(row["given_over_static"] for row in costed.values())
        taken_as_1 = sorted(row[precision]["taken_as_1_over_static"] for row in exported.values())
        result[precision] = {
            "every layer costed": len(costed), "given over static: median": statistics.median(ratios),
            "range": [ratios[0], ratios[-1]], "within 1%": sum(abs(r - 1) <= 0.01 for r in ratios),
            "within 5%": sum(abs(r - 1) <= 0.05 for r in ratios),
            "taken as 1 over static: median": statistics.median(taken_as_1), "taken as 1: range": [taken_as_1[0], taken_as_1[-1]],
            "with layers not costed": sorted(set(exported) - set(costed))}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgefusion-estimate-validation")
    parser.add_argument("--exporter", choices=sorted(FOLDERS), default="torchscript")
    args = parser.parse_args()
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    torch.backends.mha.set_fastpath_enabled(False)  # the fused attention kernel has no ONNX export
    rows = {}
    for architecture in {a.graph_name: a for a in ARCHITECTURES}.values():
        rows[architecture.graph_name] = compare(architecture, args.work, args.exporter)
        print(f"{architecture.graph_name}: {json.dumps(rows[architecture.graph_name])}", file=sys.stderr)
    print(json.dumps({"architectures": rows, "summary": summary(rows)}, indent=1))


if __name__ == "__main__":
    main()
