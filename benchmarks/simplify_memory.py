"""The simplify pass's time and peak memory on exported graphs, against onnxsim handed the loaded model (the
reference, measured in the same run); print JSON.

The graphs are the exports (before simplification) of `estimate_validation.py`, built once in its `--work` folder;
each measurement runs in a fresh process. Both ways give the same graph (the script checks its bytes).

    .venv/bin/pip install .[bench]
    .venv/bin/python benchmarks/simplify_memory.py [--work DIR] [--graph NAME ...]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import sys
import tempfile
import time
from pathlib import Path

from edgefusion_export.export.onnx_export import CONTRIB_FUSIONS, _inherit_scopes, simplify
from edgefusion_export.graphs import load_full, save_model
from edgefusion_export.memory import PeakMemory
from edgefusion_export.processes import in_fresh_process

GRAPHS = ["resnet18.ResNet18", "bert_base_uncased_hf.Bert-Base-Uncased-Hf", "sd-1.5.text_encoder", "sd-1.5.vae",
          "sd-1.5.unet", "stable_diffusion_v2_1.unet"]


def onnxsim_on_the_loaded_model(exported: str, folder: str) -> int:
    """The reference: the model loaded (and rewritten) in Python and handed to onnxsim, the rest as the pass does."""
    import onnxsim

    from edgefusion_export.export.npu_rewrites import make_npu_friendly

    model = load_full(Path(exported))
    make_npu_friendly(model)
    simplified, valid = onnxsim.simplify(model, skipped_optimizers=list(CONTRIB_FUSIONS))
    kept = valid and len(simplified.graph.node) < len(model.graph.node)
    if kept:
        _inherit_scopes(simplified)
    save_model(simplified if kept else model, Path(folder) / Path(exported).name)
    return len((simplified if kept else model).graph.node)


def the_pass(exported: str, folder: str) -> int:
    return simplify(Path(exported), Path(folder))[1]["nodes_after"]


def measured(function, exported: Path, folder: Path) -> dict:
    """Seconds and peak resident memory of `function` in a process of its own."""
    folder.mkdir(parents=True)
    return in_fresh_process(timed, function, str(exported), str(folder), temp_parent=folder.parent)


def timed(function, exported: str, folder: str) -> dict:
    start = time.perf_counter()
    with PeakMemory() as peak:
        nodes = function(exported, folder)
    return {"seconds": round(time.perf_counter() - start, 1), "peak_rss_mb": peak.mb, "nodes": nodes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgefusion-estimate-validation")
    parser.add_argument("--graph", action="append", help=f"an architecture's graph name (default: {', '.join(GRAPHS)})")
    args = parser.parse_args()
    results = []
    for name in args.graph or GRAPHS:
        exported = args.work / name / "trained-like" / "model.onnx"
        with tempfile.TemporaryDirectory(prefix="edgefusion-simplify-") as work:
            reference = measured(onnxsim_on_the_loaded_model, exported, Path(work) / "reference")
            ours = measured(the_pass, exported, Path(work) / "pass")
            same = all(filecmp.cmp(Path(work) / "reference" / file, Path(work) / "pass" / file, shallow=False)
                       for file in ("model.onnx", "model.onnx.data"))
        results.append({"graph": name, "weights_mb": round(exported.with_name("model.onnx.data").stat().st_size / 2**20),
                        "reference": reference, "pass": ours, "same_bytes": same,
                        "peak_ratio": round(ours["peak_rss_mb"] / reference["peak_rss_mb"], 2),
                        "time_ratio": round(ours["seconds"] / reference["seconds"], 2)})
        print(f"{name}: {results[-1]}", file=sys.stderr, flush=True)
    print(json.dumps({"graphs": results}, indent=1))


if __name__ == "__main__":
    main()
