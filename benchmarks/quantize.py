"""Quantize a preset with each recipe and print JSON: time and peak memory of calibration and quantization,
size of each component, held-out SQNR per component (and per UNet timestep), image PSNR/SSIM against the
float build, and prompt sensitivity. The float-vs-quantized images are saved side by side per recipe.

    .venv/bin/python benchmarks/quantize.py [--preset bk-sdm-tiny] [--size 512] [--out benchmarks/out]

Calibration uses the PartiPrompts subset in ../shared/data when present (even rows calibrate, odd rows are
held out), else the prompt list shipped with the package. Gates are reported, not enforced, except that
w8a16-mixed aims its fallback at --min-sqnr.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from rich.console import Console

from edgefusion_export.compiler import compile_bundle
from edgefusion_export.options import BuildOptions
from edgefusion_export.errors import UserError
from edgefusion_export.memory import PeakMemory
from edgefusion_export.quantize.fidelity import FidelityGates
from edgefusion_export.quantize.recipes import QuantizeSettings
from edgefusion_export.sources.resolve import resolve_source

PARTI = Path(__file__).resolve().parents[2] / "shared" / "data" / "prompts" / "parti-prompts-subset.tsv"
RECIPES = ("w8a16", "edgefusion", "w8a16-mixed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="bk-sdm-tiny")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--calibration-size", type=int, default=16)
    parser.add_argument("--fidelity-images", type=int, default=2)
    parser.add_argument("--min-sqnr", type=float, default=30.0)
    parser.add_argument("--max-float-fraction", type=float, default=0.25)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    parser.add_argument("--recipes", default=",".join(RECIPES))
    args = parser.parse_args()
    console = Console(stderr=True)
    source = resolve_source(None, args.preset)
    prompts = PARTI if PARTI.is_file() else None
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"preset": args.preset, "size": args.size, "calibration_prompts": str(prompts or "built-in list"),
               "calibration_size": args.calibration_size, "recipes": {}}
    for recipe in args.recipes.split(","):
        options = BuildOptions(target="cpu", precision=recipe, sizes=((args.size, args.size),), calibration_prompts=prompts,
                               calibration_size=args.calibration_size,
                               quantize=QuantizeSettings(args.min_sqnr if recipe == "w8a16-mixed" else 0.0,
                                                         args.max_float_fraction),
                               fidelity=FidelityGates(0.0, 0.0), fidelity_images=args.fidelity_images)
        bundle = args.out / f"{args.preset}-{recipe}"
        try:
            with PeakMemory() as peak:
                report = compile_bundle(source, options, bundle, args.out / "cache", sys.argv, console)
        except UserError as error:  # a missed gate is a result too
            results["recipes"][recipe] = {"failed": str(error)}
            continue
        if (bundle / "fidelity.png").is_file():
            shutil.copyfile(bundle / "fidelity.png", args.out / f"{args.preset}-{recipe}-float-vs-quantized.png")
        results["recipes"][recipe] = {
            "peak_rss_mb": peak.mb,
            "stages": {s["name"]: {"seconds": s["seconds"], "cached": s["cached"], "peak_rss_mb": s["peak_rss_mb"]}
                       for s in report["stages"]},
            "sizes_mb": report["sizes_mb"],
            "components": {name: {"precision": info.get("precision", report["options"]["precision"]),
                                  "held_out": info.get("fidelity"), "parity_vs_torch_db": info["parity"]["sqnr_db"],
                                  "kept_float": len(info.get("kept_float", [])), "attempts": info.get("attempts")}
                           for name, info in report["components"].items()},
            "end_to_end": report["end_to_end"][f"{args.size}x{args.size}"],
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
