"""Projected 2-step 512x512 image time on a Snapdragon with the model's own VAE decoder and with the TAESD tiny
decoder (bk-sdm-tiny, edgefusion recipe: text encoder and decoders FP16, UNet W8A16); print JSON.

The `estimate` backend projects device time; the HTP emulator's cycles are not device time (benchmarks/emulator.py
measures how far off they are), so it is not used here. Peak memory about 8 GB.

    .venv/bin/python benchmarks/decoders.py [--chipset NAME] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from edgefusion_export.components import COMPONENTS
from edgefusion_export.export import onnx_export
from edgefusion_export.graphs import layer_costs
from edgefusion_export.memory import PeakMemory
from edgefusion_export.profile.estimate import estimate_component
from edgefusion_export.quantize.recipes import QUANTIZED, RECIPES
from edgefusion_export.sources.loader import resolve_source
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
    parser.add_argument("--chipset", default="snapdragon-8-gen-3")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgefusion-decoders")
    args = parser.parse_args()
    chip = chipset(args.chipset)
    recipe = RECIPES["edgefusion"]
    result: dict = {"chipset": chip.name, "model": "bk-sdm-tiny", "recipe": "edgefusion", "steps": STEPS, "size": "512x512"}
    with PeakMemory() as peak:
        own, tiny = resolve_source(None, "bk-sdm-tiny"), resolve_source(None, "bk-sdm-tiny", vae_decoder="taesd")
        per_call, gmac = {}, {}
        for name, source, components in (("own", own, COMPONENTS), ("taesd", tiny, ["vae_decoder"])):
            for component in components:
                label = component if component != "vae_decoder" else f"vae_decoder ({name})"
                path = exported(source, component, args.work / label.replace(" ", "-"), recipe[component])
                rows = estimate_component(path, component, recipe[component], chip)
                per_call[label] = round(sum(row.time_ms for row in rows), 2)
                gmac[label] = round(sum(cost.macs for cost in layer_costs(path, recipe[component], 0)) / 1e9, 2)
            source.release()
    shared = per_call["text_encoder"] + STEPS * per_call["unet"]
    result["per_call_ms"] = per_call
    result["gmac_per_call"] = gmac
    result["image_ms"] = {name: round(shared + per_call[f"vae_decoder ({name})"], 1) for name in ("own", "taesd")}
    result["target_ms"] = TARGET_MS
    result["taesd_meets_target"] = result["image_ms"]["taesd"] <= TARGET_MS
    result["peak_rss_gb"] = round(peak.mb / 1024, 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
