"""Projected 2-step 512x512 image time per Snapdragon with the model's own VAE decoder and with the TAESD tiny
decoder (bk-sdm-tiny, edgefusion recipe: text encoder and decoders FP16, UNet W8A16), each with the estimate's
held-out error band for that chipset and precision; print JSON.

The `estimate` backend projects device time (validated in benchmarks/estimate_validation.py); the HTP emulator's
cycles are not device time (benchmarks/emulator.py measures how far off they are). Peak memory about 8 GB.

    .venv/bin/python benchmarks/decoders.py [--chipset NAME ...] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from edgefusion_export.components import COMPONENTS
from edgefusion_export.export import onnx_export
from edgefusion_export.graphs import layer_costs, load_shaped
from edgefusion_export.memory import PeakMemory
from edgefusion_export.profile.estimate import LatencyModel, estimate_component
from edgefusion_export.quantize.recipes import QUANTIZED, RECIPES
from edgefusion_export.sources.resolve import resolve_source
from edgefusion_export.targets.chipsets import chipset

STEPS = 2
TARGET_MS = 150.0


def exported(source, component: str, folder: Path, precision: str) -> Path:
    """The simplified 512x512 graph of a component, as a build at `precision` exports it."""
    path = folder / "simplified" / f"{component}.onnx"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        traced = onnx_export.export_component(source, component, (512, 512), folder, precision in QUANTIZED)
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx_export.simplify(traced, path.parent)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chipset", action="append", dest="chipsets",
                        help="repeatable (default: 8 Gen 2, 8 Gen 3, 8 Elite, 8 Elite Gen 5)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgefusion-decoders")
    args = parser.parse_args()
    chips = [chipset(name) for name in args.chipsets or ["snapdragon-8-gen-2", "snapdragon-8-gen-3",
                                                          "snapdragon-8-elite", "snapdragon-8-elite-gen-5"]]
    recipe = RECIPES["edgefusion"]
    result: dict = {"model": "bk-sdm-tiny", "recipe": "edgefusion", "steps": STEPS, "size": "512x512", "chipsets": {}}
    with PeakMemory() as peak:
        own, tiny = resolve_source(None, "bk-sdm-tiny"), resolve_source(None, "bk-sdm-tiny", vae_decoder="taesd")
        graphs, gmac = {}, {}
        for name, source, components in (("own", own, COMPONENTS), ("taesd", tiny, ["vae_decoder"])):
            for component in components:
                label = component if component != "vae_decoder" else f"vae_decoder ({name})"
                graphs[label] = (component, exported(source, component, args.work / label.replace(" ", "-"), recipe[component]))
                gmac[label] = round(sum(cost.macs for cost in layer_costs(load_shaped(graphs[label][1]), recipe[component], 0)) / 1e9, 2)
            source.release()
        for chip in chips:
            per_call = {label: round(sum(row.time_ms for row in estimate_component(path, component, recipe[component], chip)), 2)
                        for label, (component, path) in graphs.items()}
            shared = per_call["text_encoder"] + STEPS * per_call["unet"]
            image_ms = {name: round(shared + per_call[f"vae_decoder ({name})"], 1) for name in ("own", "taesd")}
            result["chipsets"][chip.name] = {
                "per_call_ms": per_call, "image_ms": image_ms, "taesd_meets_target": image_ms["taesd"] <= TARGET_MS,
                "error_band": {precision: LatencyModel.of(chip, precision).describe_band() for precision in ("fp16", "w8a16")}}
    result["gmac_per_call"] = gmac
    result["target_ms"] = TARGET_MS
    result["peak_rss_gb"] = round(peak.mb / 1024, 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
