"""Compile a preset in a fresh cache, then generate with the bundle and with diffusers; print JSON.

Per stage: wall time and peak resident memory (this process and its children, so QNN's compile processes count);
the whole compile's wall time and peak. Reference measured in the same run: diffusers'
`LatentConsistencyModelPipeline` on the same weights, prompt and noise (time ratio and image PSNR).

    .venv/bin/python benchmarks/compile.py [--preset bk-sdm-tiny] [--size 512] [--target cpu|snapdragon]
                                           [--precision RECIPE] [--keep FOLDER]

`--target snapdragon` builds for the default chipset with the target's default recipe (edgefusion) and adds the
gates the CI budget is judged by: UNet held-out SQNR, end-to-end PSNR, NPU partitions and CPU nodes per component,
and the projected image time on the chipset (the estimate backend).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from edgefusion_export.bundle.manifest import load_bundle
from edgefusion_export.compiler import compile_bundle
from edgefusion_export.options import BuildOptions
from edgefusion_export.profile.estimate import estimate_bundle
from edgefusion_export.targets.chipsets import chipset
from edgefusion_export.memory import PeakMemory
from edgefusion_export.metrics import psnr_db
from edgefusion_export.runtime.pipeline import Text2ImagePipeline
from edgefusion_export.sources.reference import diffusers_image, torch_noise
from edgefusion_export.sources.resolve import resolve_source

PROMPT = "a photo of a red fox in the snow"
SEED = 42


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="bk-sdm-tiny")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--target", choices=("cpu", "snapdragon"), default="cpu")
    parser.add_argument("--precision", help="A recipe; default: fp32 for cpu, the target's default for snapdragon.")
    parser.add_argument("--keep", type=Path, help="Keep the bundle and images in this folder.")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="edgefusion-bench-"))
    try:
        print(json.dumps(measure(args, work), indent=2))
    finally:
        if not args.keep:  # a full-size build's cache is several GB
            shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, work: Path) -> dict:
    """Compile in `work`, then generate with the bundle and with diffusers."""
    console = Console(stderr=True)
    source = resolve_source(None, args.preset)
    precision = args.precision or ("fp32" if args.target == "cpu" else None)
    options = BuildOptions(target=args.target, precision=precision, sizes=((args.size, args.size),))
    with PeakMemory() as compile_peak:
        start = time.perf_counter()
        report = compile_bundle(source, options, work / "bundle", work / "cache", sys.argv, console)
        compile_seconds = time.perf_counter() - start

    pipeline = Text2ImagePipeline.from_bundle(load_bundle(work / "bundle"))
    noise = torch_noise(SEED, pipeline.plan.latent_shape, len(pipeline.plan.steps))
    with PeakMemory() as runner_peak:
        start = time.perf_counter()
        ours = pipeline(PROMPT, noise)
        runner_seconds = time.perf_counter() - start
    with PeakMemory() as reference_peak:
        start = time.perf_counter()
        reference = diffusers_image(source, work / "bundle" / "tokenizer", PROMPT, SEED, 2, 8.5, args.size, args.size)
        reference_seconds = time.perf_counter() - start

    return {
        "preset": args.preset, "size": args.size, "target": args.target, "precision": report["options"]["precision"],
        "compile": {"total_s": round(compile_seconds, 1), "peak_rss_mb": compile_peak.mb,
                    "stages": [{key: stage[key] for key in ("name", "seconds", "peak_rss_mb")} for stage in report["stages"]],
                    "parity_sqnr_db": {name: value["parity"]["sqnr_db"] for name, value in report["components"].items()},
                    "bundle_mb": round(sum(report["sizes_mb"].values()), 1),
                    **(gates(report, work / "bundle", f"{args.size}x{args.size}") if args.target == "snapdragon" else {})},
        "generate": {"runner_s": round(runner_seconds, 2), "runner_timings_ms": ours.timings_ms,
                     "runner_peak_rss_mb": runner_peak.mb, "diffusers_s": round(reference_seconds, 2),
                     "diffusers_peak_rss_mb": reference_peak.mb,
                     "runner_over_diffusers_time": round(runner_seconds / reference_seconds, 3),
                     "psnr_vs_diffusers_db": round(psnr_db(reference, ours.image), 2)},
    }


def gates(report: dict, bundle: Path, size: str) -> dict:
    """What a Snapdragon build is judged by, besides time and memory."""
    unet = report["components"]["unet"]["fidelity"]
    npu = {f"{component}.{chip}": {"partitions": entry["offline"]["partitions"], "cpu_nodes": len(entry["offline"]["cpu_nodes"])}
           for component, chips in report["npu"].items() for chip, entry in chips.items()}
    projected = estimate_image_ms(bundle)
    return {"unet_held_out_sqnr_db": unet["sqnr_db"], "unet_sqnr_per_timestep_db": unet["per_timestep_sqnr_db"],
            "end_to_end_psnr_db": report["end_to_end"][size]["psnr_db"], "npu": npu, "projected_image_ms": projected}


def estimate_image_ms(folder: Path) -> dict[str, float]:
    """The estimate backend's projected image time per chipset of the bundle."""
    bundle = load_bundle(folder)
    return {chip["name"]: round(estimate_bundle(bundle, chipset(chip["name"])).per_image_ms, 1)
            for chip in bundle.manifest["target"]["chipsets"]}


if __name__ == "__main__":
    main()
