"""One bundle for several image sizes against one size: what a phone downloads, the build's time and memory, and the
projected time per size; print JSON.

Builds a preset for one Snapdragon chipset twice, each in its own empty cache: at the first size alone, then at every
size (one context binary per component holding every size's graph, the portable graphs over one weights file).

    .venv/bin/python benchmarks/sizes.py [--preset bk-sdm-tiny] [--size 256x256 --size 256x384 --size 384x256]
                                         [--chipset NAME] [--verify-npu off|auto] [--work DIR]

The compiled-only one-chipset bundle is what `package --chipset NAME --ship compiled` installs in an app.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from edgefusion_export.bundle.manifest import Bundle, load_bundle
from edgefusion_export.bundle.selection import select
from edgefusion_export.compiler import compile_bundle
from edgefusion_export.components import ImageSize, parse_size
from edgefusion_export.memory import PeakMemory
from edgefusion_export.options import BuildOptions
from edgefusion_export.profile.estimate import estimate_bundle
from edgefusion_export.sources.resolve import resolve_source
from edgefusion_export.targets.chipsets import chipset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="bk-sdm-tiny")
    parser.add_argument("--size", action="append", dest="sizes", help="WIDTHxHEIGHT, repeatable; the first is the one-size build's")
    parser.add_argument("--chipset", default="snapdragon-8-gen-3")
    parser.add_argument("--verify-npu", choices=("off", "auto"), default="off",
                        help="off (default: the emulated checks would add minutes per size) or auto")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgefusion-sizes")
    args = parser.parse_args()
    sizes = tuple(parse_size(size) for size in args.sizes or ["256x256", "256x384", "384x256"])
    chip = chipset(args.chipset)
    one, one_figures = build(args, sizes[:1], "one")
    every, every_figures = build(args, sizes, "all")
    print(json.dumps({
        "preset": args.preset, "chipset": chip.name, "sizes": every.sizes, "verify_npu": args.verify_npu,
        "one_size": one_figures, "all_sizes": every_figures,
        "compiled_one_chipset_ratio": round(shipped_bytes(every, "compiled") / shipped_bytes(one, "compiled"), 3),
        "portable_ratio": round(shipped_bytes(every, "portable") / shipped_bytes(one, "portable"), 3),
        "build_time_ratio": round(every_figures["build_s"] / one_figures["build_s"], 2),
        "projected_ms": {size: projection(every, chip, size) for size in every.sizes},
    }, indent=2))


def build(args: argparse.Namespace, sizes: tuple[ImageSize, ...], name: str) -> tuple[Bundle, dict]:
    """One build in its own empty cache: its time, peak memory, bundle sizes, and each graph's NPU partitions."""
    options = BuildOptions(target="snapdragon", sizes=sizes, chipsets=(args.chipset,), verify_npu=args.verify_npu)
    with PeakMemory() as peak:
        start = time.perf_counter()
        compile_bundle(resolve_source(None, args.preset), options, args.work / name / "bundle", args.work / name / "cache",
                       sys.argv, Console(stderr=True))
        seconds = time.perf_counter() - start
    bundle = load_bundle(args.work / name / "bundle")
    offline = {graph: entry["compiled"][args.chipset]["offline"] for graph, entry in bundle.manifest["components"].items()}
    return bundle, {"build_s": round(seconds, 1), "peak_rss_mb": peak.mb,
                    "compiled_one_chipset_gb": round(shipped_bytes(bundle, "compiled") / 1e9, 3),
                    "portable_gb": round(shipped_bytes(bundle, "portable") / 1e9, 3),
                    "graphs": {graph: {"partitions": entry["partitions"], "cpu_nodes": len(entry["cpu_nodes"]),
                                       "context_binaries": entry["context_binaries"]} for graph, entry in offline.items()}}


def shipped_bytes(bundle: Bundle, ship: str) -> int:
    """The bytes of what `package --ship SHIP` installs."""
    _, names = select(bundle.manifest, bundle.manifest["files"], ship)
    return sum(bundle.manifest["files"][name]["size"] for name in names)


def projection(bundle: Bundle, chip, size: str) -> dict[str, float]:
    profile = estimate_bundle(bundle, chip, size)
    return {"image": profile.per_image_ms, **{name: round(summary.total_ms, 1) for name, summary in profile.components.items()}}


if __name__ == "__main__":
    main()
