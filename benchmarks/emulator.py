"""How far to trust the HTP emulator's cycles and the `estimate` roofline; print JSON.

1. SD-v1.5's text encoder (seeded weights: only shapes matter), W8A16 as AI Hub publishes it, compiled for the
   Snapdragon 8 Gen 3 and profiled in HTP emulation: simulated time next to AI Hub's Galaxy S24 figure and to the
   estimate of the same graph.
2. bk-sdm-tiny at 64x64, every component W8A16 (so that all of it emulates in minutes), compiled for the 8 Gen 3
   with --verify-npu: each compiled component against the CPU in emulation (the GroupNorm fix on the real
   architecture), then the estimate against the emulator per block type on work the estimate was not fitted on.

    .venv/bin/python benchmarks/emulator.py [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from rich.console import Console

from edgefusion_export.bundle.manifest import load_bundle
from edgefusion_export.compiler import compile_bundle
from edgefusion_export.options import BuildOptions
from edgefusion_export.export.onnx_export import export_component, simplify
from edgefusion_export.memory import PeakMemory
from edgefusion_export.profile.emulator_backend import profile_bundle as emulate_bundle
from edgefusion_export.profile.emulator_backend import profile_component as emulate_component
from edgefusion_export.profile.estimate import estimate_bundle, estimate_component
from edgefusion_export.quantize import qdq
from edgefusion_export.quantize.calibration import read_prompts
from edgefusion_export.quantize.recipes import QuantizeSettings
from edgefusion_export.sources.resolve import resolve_source
from edgefusion_export.targets.chipsets import chipset
from edgefusion_export.targets.snapdragon import compile_for_chipset

PUBLISHED_S24_TEXT_ENCODER_MS = 2.8  # AI Hub, SD-v1.5 W8A16 on the Galaxy S24: 2.3-3.3 ms
BLOCK_TYPE = re.compile(r"(resnets|attentions|upsamplers|downsamplers|layers|mid_block|conv_in|conv_out|"
                        r"conv_norm_out|time_embedding|embeddings|final_layer_norm|post_quant_conv)")


def sd15_text_encoder(work: Path, chip) -> dict:
    folder = work / "sd15-text-encoder"
    compiled_folder = folder / "qnn"
    quantized = folder / "w8a16" / "text_encoder.onnx"
    start = time.perf_counter()
    if not quantized.is_file():
        source = resolve_source(None, "sd-v1.5")
        (folder / "simplified").mkdir(parents=True, exist_ok=True)
        float_model, _ = simplify(export_component(source, "text_encoder", (512, 512), folder), folder / "simplified")
        prompts = read_prompts(None)[:16]
        samples = [{"input_ids": np.array([source.tokenizer(p)], dtype=np.int32)} for p in prompts]
        prepared, _ = qdq.prepare(float_model, folder / "simplified")
        qdq.quantize_w8a16(prepared, samples, quantized)
    compiled_folder.mkdir(parents=True, exist_ok=True)
    compiled = compile_for_chipset(quantized, chip, compiled_folder, allow_cpu_fallback=False)
    rows = emulate_component(compiled_folder / compiled.file, "text_encoder", chip, folder)
    emulated = sum(row.time_ms for row in rows)
    estimated = sum(row.time_ms for row in estimate_component(quantized, "text_encoder", "w8a16", chip))
    return {"published_galaxy_s24_ms": PUBLISHED_S24_TEXT_ENCODER_MS, "emulator_ms": round(emulated, 2),
            "estimate_ms": round(estimated, 2),
            "emulator_vs_published": round(emulated / PUBLISHED_S24_TEXT_ENCODER_MS, 2),
            "estimate_vs_published": round(estimated / PUBLISHED_S24_TEXT_ENCODER_MS, 2),
            "seconds": round(time.perf_counter() - start, 1)}


def block_type(component: str, block: str) -> str:
    match = BLOCK_TYPE.search(block)
    return f"{component}:{match.group(1) if match else 'other'}"


def bk_sdm_tiny(work: Path, chip) -> dict:
    bundle = work / "bk-sdm-tiny-64-w8a16"
    start = time.perf_counter()
    options = BuildOptions(target="snapdragon", precision="w8a16", sizes=((64, 64),), fidelity_images=1, verify_npu="all",
                           quantize=QuantizeSettings(min_sqnr_db=20.0), chipsets=(chip.name,))
    compile_bundle(resolve_source(None, "bk-sdm-tiny"), options, bundle, work / "cache", sys.argv, Console(stderr=True))
    manifest = load_bundle(bundle).manifest
    verification = {name: entry["compiled"][chip.name]["emulated"] for name, entry in manifest["components"].items()}
    held_out = {name: entry.get("fidelity", {}).get("sqnr_db") for name, entry in manifest["components"].items()}
    with tempfile.TemporaryDirectory() as scratch:
        emulated = emulate_bundle(load_bundle(bundle), chip, Path(scratch))
    estimated = estimate_bundle(load_bundle(bundle), chip)
    by_type: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for index, profile in enumerate((estimated, emulated)):
        for row in profile.rows:
            by_type[block_type(row.component, row.block)][index] += row.time_ms
    return {
        "build_seconds": round(time.perf_counter() - start, 1),
        "held_out_sqnr_db": held_out,
        "npu_vs_cpu_in_emulation": verification,
        "per_call_ms": {name: {"estimate": estimated.components[name].total_ms, "emulator": emulated.components[name].total_ms}
                        for name in emulated.components},
        "estimate_over_emulator_by_block_type": {kind: {"estimate_ms": round(est, 3), "emulator_ms": round(emu, 3),
                                                        "ratio": round(est / emu, 3) if emu else None}
                                                 for kind, (est, emu) in sorted(by_type.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgefusion-emulator")
    args = parser.parse_args()
    chip = chipset("snapdragon-8-gen-3")
    with PeakMemory() as peak:
        result = {"chipset": chip.name, "htp_clock_mhz": chip.htp_clock_mhz,
                  "sd_v15_text_encoder_w8a16": sd15_text_encoder(args.work, chip),
                  "bk_sdm_tiny_64x64_w8a16": bk_sdm_tiny(args.work, chip)}
    result["peak_rss_gb"] = round(peak.mb / 1024, 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
