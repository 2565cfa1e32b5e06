"""Do the estimate's rules name the layers QNN leaves to the CPU? Each validated graph placed by the installed
onnxruntime-qnn (what `estimate --ask-qnn` reports) against the rules (`estimate`'s `on_cpu`); print JSON.

The graphs are those of `estimate_validation.py`, built once in its `--work` folder (float, simplified). Each is
compiled for the chipset's HTP in a worker process, which takes seconds for most graphs, 5 minutes for SAM2's
encoder and about 2 minutes (7 GB) for an SD UNet; `--skip .unet` leaves SD's UNets out. A graph that the provider
cannot load, or that makes it abort, is listed under `failed` with the reason.

    .venv/bin/pip install .[bench]
    .venv/bin/python benchmarks/placement_rules.py [--work DIR] [--chipset NAME] [--skip SUBSTRING ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from estimate_models import ARCHITECTURES  # noqa: E402
from estimate_validation import graph_path  # noqa: E402

from edgefusion_export.errors import UserError  # noqa: E402
from edgefusion_export.graphs import cpu_layers, load_shaped  # noqa: E402
from edgefusion_export.targets.chipsets import chipset  # noqa: E402
from edgefusion_export.targets.snapdragon import placed_on_cpu  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgefusion-estimate-validation")
    parser.add_argument("--chipset", default="snapdragon-8-gen-3")
    parser.add_argument("--skip", action="append", default=[], help="leave out graphs whose name holds this")
    args = parser.parse_args()
    chip = chipset(args.chipset)
    architectures = {architecture.graph_name: architecture for architecture in ARCHITECTURES}
    graphs, failed = [], []
    for name, architecture in sorted(architectures.items()):
        if any(skipped in name for skipped in args.skip):
            continue
        path = graph_path(architecture, args.work)
        start = time.perf_counter()
        try:
            provider = placed_on_cpu(path, {}, chip)
        except UserError as error:
            failed.append({"graph": name, "error": str(error)})
            continue
        graphs.append({"graph": name, "seconds": round(time.perf_counter() - start, 1),
                       "provider": provider, "rules": cpu_layers(load_shaped(path))})
        print(f"{name}: {graphs[-1]}", file=sys.stderr, flush=True)
    differ = [graph for graph in graphs if graph["provider"] != graph["rules"]]
    print(json.dumps({"chipset": chip.name, "skipped": args.skip, "loaded": len(graphs),
                      "agree": len(graphs) - len(differ), "differ": differ, "failed": failed,
                      "graphs": graphs}, indent=2))


if __name__ == "__main__":
    main()
