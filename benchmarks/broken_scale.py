"""Does the emulated check catch a broken NPU binary at full size? Build (or reuse from the cache) the default
bk-sdm-tiny Snapdragon bundle at 512x512, compile its W8A16 UNet again with one convolution weight's Q/DQ scale
multiplied by 4 (the portable UNet stays right), run that binary in HTP emulation on the held-out t=999 call
against the CPU, and print JSON: the SQNR of the right binary and of the broken one against the 35 dB gate, and
the times. The unit test does the same on the tiny preset (tests/test_npu_emulation.py).

    .venv/bin/python benchmarks/broken_scale.py [--cache DIR] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import onnx
from rich.console import Console

from edgefusion_export.bundle.manifest import load_bundle
from edgefusion_export.compiler import compile_bundle, default_cache_dir
from edgefusion_export.graphs import save_model
from edgefusion_export.options import BuildOptions
from edgefusion_export.quantize.calibration import RecordingPipeline, record
from edgefusion_export.quantize.qdq import multiply_weight_scale
from edgefusion_export.sources.resolve import resolve_source
from edgefusion_export.targets import snapdragon
from edgefusion_export.targets.base import MIN_NPU_SQNR_DB
from edgefusion_export.targets.chipsets import chipset


PROMPT = "a watercolor painting of a lighthouse at dusk"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=default_cache_dir())
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgefusion-broken-scale")
    args = parser.parse_args()
    chip = chipset("snapdragon-8-gen-3")
    bundle_dir = args.work / "bundle"
    compile_bundle(resolve_source(None, "bk-sdm-tiny"), BuildOptions(target="snapdragon", verify_npu="quantized"),
                   bundle_dir, args.cache, sys.argv, Console(stderr=True))
    bundle = load_bundle(bundle_dir)
    right = bundle.manifest["components"]["unet"]["compiled"][chip.name]["emulated"]["calls"][0]

    # the UNet's t=999 call for a prompt the build did not calibrate on, recorded with the bundle's CPU models
    feed = record(RecordingPipeline.from_bundle(bundle), [PROMPT], seed=7).samples["unet"][0]
    broken_dir = args.work / "broken"
    broken_dir.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(bundle.component_path("unet")))
    layer = multiply_weight_scale(model, 4.0)
    portable = save_model(model, broken_dir / "unet.onnx")
    start = time.perf_counter()
    compiled = snapdragon.compile_for_chipset(portable, chip, broken_dir, allow_cpu_fallback=True, mode="3")
    compile_s = time.perf_counter() - start
    check = snapdragon.verify_in_emulation(broken_dir / compiled.file, bundle.component_path("unet"),
                                           bundle.component_path("unet"), feed, "t=999", chip.htp_target)
    print(json.dumps({"size": "512x512", "chipset": chip.name, "broken_layer": layer, "gate_db": MIN_NPU_SQNR_DB,
                      "right_binary_vs_cpu_db": right["sqnr_vs_cpu_db"], "broken_binary_vs_cpu_db": check.sqnr_vs_cpu_db,
                      "fails_the_gate": check.sqnr_vs_cpu_db < MIN_NPU_SQNR_DB, "compile_s": round(compile_s, 1),
                      "emulation_s": check.seconds}, indent=2))


if __name__ == "__main__":
    main()
