"""The VAE decoder's precision, decided with figures: build one model for the Snapdragon 8 Gen 3 with its decoder in
FP16 (`edgefusion`) and in W8A16 (`edgefusion-w8a16-decoder`) over one cache, and print JSON per recipe: the
decoder's held-out SQNR against the float decoder, end-to-end PSNR and prompt sensitivity against the float build,
the decoder's compiled size and the one-chipset compiled-only bundle's, the projected 8 Gen 3 time (the validated
estimate, with its held-out band), the decoder's QNN compile (time, peak memory, finalization mode) and its check in
HTP emulation at the build's size (SQNR against the CPU and the float decoder, time against the prediction).

    .venv/bin/python benchmarks/decoder_precision.py [--preset bk-sdm-tiny] [--half-width-vae] [--size 512]
                                                     [--verify-npu quantized|all|off] [--qnn-optimization auto|1|2|3]
                                                     [--recipe NAME ...] [--cache DIR] [--work DIR]

`--half-width-vae` builds an architecture no preset has: the preset's UNet and text encoder with a VAE of half the
channels (64/128/256/256), seeded. `--verify-npu quantized` (the default) checks the W8A16 decoder in emulation but
not the FP16 one (43 min at 512x512 on 2 cores); `all` checks both.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from rich.console import Console

from edgefusion_export.bundle.manifest import load_bundle
from edgefusion_export.bundle.selection import select
from edgefusion_export.compiler import CACHE_FORMAT, default_cache_dir, run_chain, tool_versions
from edgefusion_export.errors import UserError
from edgefusion_export.memory import PeakMemory
from edgefusion_export.options import BuildOptions
from edgefusion_export.profile.estimate import LatencyModel, estimate_bundle
from edgefusion_export.quantize import calibration, qdq
from edgefusion_export.sources.resolve import resolve_source
from edgefusion_export.sources.presets import PRESETS, SD_VAE
from edgefusion_export.stages import StageCache
from edgefusion_export.targets import snapdragon
from edgefusion_export.targets.base import QNN_OPTIMIZATION_CHOICES
from edgefusion_export.targets.chipsets import chipset

RECIPES = ("edgefusion", "edgefusion-w8a16-decoder")
CHIP = "snapdragon-8-gen-3"
HALF_WIDTH_VAE = {**SD_VAE, "block_out_channels": [64, 128, 256, 256]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="bk-sdm-tiny")
    parser.add_argument("--half-width-vae", action="store_true", help="an architecture no preset has (see above)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--verify-npu", choices=("all", "quantized", "off"), default="quantized")
    parser.add_argument("--qnn-optimization", choices=QNN_OPTIMIZATION_CHOICES, default="auto",
                        help="QNN graph finalization mode for every component (auto: the build's choice per component)")
    parser.add_argument("--recipe", choices=RECIPES, action="append", help="build only this recipe (repeatable)")
    parser.add_argument("--cache", type=Path, default=default_cache_dir())
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgefusion-decoder-precision")
    args = parser.parse_args()
    model = half_width_vae_model(args.preset, args.work / "model") if args.half_width_vae else None
    result = {"model": f"{args.preset} with a half-width VAE" if model else args.preset, "size": f"{args.size}x{args.size}",
              "chipset": CHIP, "recipes": {}}
    for recipe in args.recipe or RECIPES:
        try:
            result["recipes"][recipe] = measure(recipe, model, args)
        except UserError as error:  # a gate that stops the build is a result (the NPU check, say)
            result["recipes"][recipe] = {"build_failed": str(error)}
        print(json.dumps(result["recipes"][recipe]), file=sys.stderr)
    print(json.dumps(result, indent=2))


def half_width_vae_model(preset: str, folder: Path) -> Path:
    """A diffusers folder: the preset's seeded text encoder and UNet, a seeded VAE with half its channels."""
    if not (folder / "vae").is_dir():
        from diffusers import AutoencoderKL, LCMScheduler

        source = resolve_source(None, preset)
        parts = source.load()
        torch.manual_seed(1)
        AutoencoderKL.from_config(HALF_WIDTH_VAE).save_pretrained(folder / "vae")
        parts.unet.save_pretrained(folder / "unet")
        parts.text_encoder.save_pretrained(folder / "text_encoder")
        source.tokenizer.save(folder / "tokenizer")
        LCMScheduler.from_config(PRESETS[preset].scheduler).save_pretrained(folder / "scheduler")
    return folder


def measure(recipe: str, model: Path | None, args: argparse.Namespace) -> dict:
    """Build with `recipe` (stages shared through the cache) and read the decoder's figures off the build."""
    source = resolve_source(model, None if model else args.preset)
    options = BuildOptions(target="snapdragon", precision=recipe, sizes=((args.size, args.size),),
                           chipsets=(CHIP,), verify_npu=args.verify_npu, qnn_optimization=args.qnn_optimization)
    output = args.work / recipe
    console = Console(stderr=True)
    with PeakMemory() as peak, StageCache(args.cache, console, False, {"format": CACHE_FORMAT, "tools": tool_versions()}) as cache:
        report, (build,) = run_chain(source, options, cache, args.cache, output, sys.argv, console)
    held_out = calibration.Recording.load(build.recordings, "evaluation").samples["vae_decoder"]
    decoder = qdq.evaluate(build.model(build.floats, "vae_decoder"), build.model(build.finals, "vae_decoder"), held_out)
    bundle = load_bundle(output)
    compiled = bundle.manifest["components"]["vae_decoder"]["compiled"][CHIP]
    decoder_files = [compiled["offline"]["file"], *compiled["offline"]["context_binaries"]]
    _, compiled_only = select(bundle.manifest, [path.relative_to(output).as_posix() for path in output.rglob("*")
                                                if path.is_file()], "compiled")
    profile = estimate_bundle(bundle, chipset(CHIP))
    npu = report["npu"]["vae_decoder"][CHIP]
    qnn = next(stage for stage in report["stages"] if stage["name"] == f"qnn vae_decoder {CHIP}")
    precision = bundle.manifest["components"]["vae_decoder"]["precision"]
    return {
        "decoder_precision": precision,
        "decoder_held_out_sqnr_db": round(decoder.sqnr_db, 2), "held_out_latents": len(held_out),
        "end_to_end": {key: report["end_to_end"][f"{args.size}x{args.size}"][key] for key in ("psnr_db", "prompt_sensitivity_ratio")},
        "decoder_compiled_mb": round(sum((output / name).stat().st_size for name in decoder_files) / 1e6, 1),
        "compiled_only_bundle_gb": round(sum((output / name).stat().st_size for name in compiled_only) / 1e9, 3),
        "projected_ms": {"vae_decoder": round(profile.components["vae_decoder"].total_ms, 1),
                         "image": round(profile.per_image_ms, 1),
                         "decoder_band": LatencyModel.of(chipset(CHIP), precision).describe_band()},
        "qnn_compile": {"seconds": npu["offline"]["seconds"], "cached": qnn["cached"], "peak_rss_mb": qnn["peak_rss_mb"],
                        "finalization_mode": snapdragon.finalization_mode(build.model(build.finals, "vae_decoder"),
                                                                          args.qnn_optimization)},
        "emulated": {**compiled["emulated"], **npu.get("emulated", {})},
        "build_seconds": report["total_seconds"], "build_peak_rss_gb": round(peak.mb / 1024, 2),
    }


if __name__ == "__main__":
    main()
