"""Held-out SQNR of the W8A16 UNet with min-max and percentile activation ranges, on the tiny preset, an
architecture the project has not seen (64x64) and bk-sdm-tiny (512x512); print JSON. bk-sdm-tiny needs about
18 GB for the min-max quantization, and its percentile calibration ran out of a 24 GB machine (onnxruntime's
histogram calibration keeps every activation; killed at 23.1 GB): `--skip-full` leaves it out.

    .venv/bin/python benchmarks/activation_ranges.py [--skip-full] [--work DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from edgefusion_export.compiler import compile_bundle
from edgefusion_export.options import BuildOptions
from edgefusion_export.quantize.qdq import ACTIVATION_RANGES
from edgefusion_export.quantize.recipes import QuantizeSettings
from edgefusion_export.sources.loader import preset_source
from edgefusion_export.sources.presets import PRESETS

# Neither preset's shape: two resolution levels of 48/96 channels, 2 layers per block, 12 groups, 4 heads.
UNSEEN_UNET = {**PRESETS["tiny"].unet, "block_out_channels": [48, 96], "layers_per_block": 2, "norm_num_groups": 12,
               "attention_head_dim": 4, "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
               "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]}


def held_out_sqnr(source, size: int, ranges: str, work: Path) -> dict:
    options = BuildOptions(target="cpu", precision="edgefusion", sizes=((size, size),), fidelity_images=0,
                           quantize=QuantizeSettings(min_sqnr_db=0.0, activation_ranges=ranges))
    start = time.perf_counter()
    report = compile_bundle(source, options, work / f"bundle-{ranges}", work / "cache", sys.argv, Console(stderr=True))
    fidelity = report["components"]["unet"]["fidelity"]
    return {"sqnr_db": fidelity["sqnr_db"], "per_timestep_sqnr_db": fidelity["per_timestep_sqnr_db"],
            "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-full", action="store_true")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgefusion-ranges")
    args = parser.parse_args()
    unseen = dataclasses.replace(PRESETS["tiny"], name="unseen", unet=UNSEEN_UNET)
    models = [("tiny", PRESETS["tiny"], 64), ("unseen-64x64", unseen, 64)]
    models += [] if args.skip_full else [("bk-sdm-tiny-512", PRESETS["bk-sdm-tiny"], 512)]
    result = {}
    for label, preset, size in models:
        result[label] = {ranges: held_out_sqnr(preset_source(preset), size, ranges, args.work / label)
                         for ranges in ACTIVATION_RANGES}
        print(json.dumps({label: result[label]}), file=sys.stderr, flush=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
