"""Compile a preset in a fresh cache, then generate with the bundle and with diffusers; print JSON.

Per stage: wall time and peak resident memory. Reference measured in the same run: diffusers'
`LatentConsistencyModelPipeline` on the same weights, prompt and noise (time ratio and image PSNR).

    .venv/bin/python benchmarks/compile.py [--preset bk-sdm-tiny] [--size 512] [--precision fp32]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from edgefusion_export.bundle.manifest import load_bundle
from edgefusion_export.compiler import compile_bundle
from edgefusion_export.options import BuildOptions
from edgefusion_export.memory import PeakMemory
from edgefusion_export.metrics import psnr_db
from edgefusion_export.runtime.pipeline import Text2ImagePipeline
from edgefusion_export.sources.reference import diffusers_image, torch_noise
from edgefusion_export.sources.loader import resolve_source

PROMPT = "a photo of a red fox in the snow"
SEED = 42


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="bk-sdm-tiny")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--keep", type=Path, help="Keep the bundle and images in this folder.")
    args = parser.parse_args()
    console = Console(stderr=True)
    work = args.keep or Path(tempfile.mkdtemp(prefix="edgefusion-bench-"))
    source = resolve_source(None, args.preset)
    options = BuildOptions(target="cpu", precision=args.precision, height=args.size, width=args.size)
    with PeakMemory() as compile_peak:
        report = compile_bundle(source, options, work / "bundle", work / "cache", sys.argv, console)

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

    print(json.dumps({
        "preset": args.preset, "size": args.size, "precision": args.precision,
        "compile": {"total_s": report["total_seconds"], "peak_rss_mb": compile_peak.mb,
                    "stages": [{key: stage[key] for key in ("name", "seconds", "peak_rss_mb")} for stage in report["stages"]],
                    "parity_sqnr_db": {name: value["parity"]["sqnr_db"] for name, value in report["components"].items()},
                    "bundle_mb": round(sum(report["sizes_mb"].values()), 1)},
        "generate": {"runner_s": round(runner_seconds, 2), "runner_timings_ms": ours.timings_ms,
                     "runner_peak_rss_mb": runner_peak.mb, "diffusers_s": round(reference_seconds, 2),
                     "diffusers_peak_rss_mb": reference_peak.mb,
                     "runner_over_diffusers_time": round(runner_seconds / reference_seconds, 3),
                     "psnr_vs_diffusers_db": round(psnr_db(reference, ours.image), 2)},
    }, indent=2))


if __name__ == "__main__":
    main()
