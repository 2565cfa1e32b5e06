"""Calibrate and check the `estimate` backend; print JSON.

1. Export SD-v1.5's three components at 512x512 (seeded weights: only the graph's shapes matter) and compare the
   estimate for W8A16 on the Galaxy S24 profile with AI Hub's published SD-v1.5 times (the calibration target),
   with the error per component. `--fit` also searches the calibration constants that minimise the worst error.
2. Estimate a bk-sdm-tiny bundle (default: build the edgefusion recipe) per component and per 2-step image, next
   to EdgeFusion's measured 738.5 ms on the Exynos 2400.

    .venv/bin/python benchmarks/estimate.py [--bundle BUNDLE] [--fit] [--work DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from edgefusion_export.bundle.manifest import load_bundle
from edgefusion_export.compiler import compile_bundle
from edgefusion_export.options import BuildOptions
from edgefusion_export.export.onnx_export import export_component, simplify
from edgefusion_export.graphs import layer_costs
from edgefusion_export.profile.estimate import CALIBRATION, Calibration, estimate_bundle, layer_time_ms
from edgefusion_export.sources.loader import resolve_source
from edgefusion_export.targets.chipsets import chipset

# Qualcomm AI Hub, SD-v1.5 W8A16 QNN context binaries on the Galaxy S24, ms per call (midpoints of 2.3-3.3, 79-80, 203-207).
PUBLISHED_S24 = {"text_encoder": 2.8, "unet": 79.5, "vae_decoder": 205.0}
EDGEFUSION_EXYNOS_2400_MS = {"text_encoder": 52.2, "unet_loop": 200.2, "vae_decoder": 486.1, "total": 738.5}


def sd15_costs(work: Path, vtcm_bytes: int) -> dict:
    source = resolve_source(None, "sd-v1.5")
    costs = {}
    for component in PUBLISHED_S24:
        folder = work / component
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "simplified" / f"{component}.onnx"  # the graph a bundle holds
        if not path.is_file():
            path.parent.mkdir(exist_ok=True)
            simplify(export_component(source, component, (512, 512), folder), path.parent)
        costs[component] = layer_costs(path, "w8a16", vtcm_bytes)
    source.release()
    return costs


def total_ms(costs, chip, calibration: Calibration) -> float:
    return sum(layer_time_ms(cost, chip, "w8a16", calibration) for cost in costs)


def fit(costs: dict, chip) -> Calibration:
    grid = itertools.product([x / 20 for x in range(6, 21)], [0.5, 0.6, 0.7, 0.8, 0.9],
                             [0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5], [0, 2, 4, 6, 8, 10, 15])
    return min((Calibration(*values) for values in grid), key=lambda cal: max(
        abs(total_ms(costs[c], chip, cal) / PUBLISHED_S24[c] - 1) for c in PUBLISHED_S24))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="A bk-sdm-tiny bundle to estimate (default: build one, edgefusion).")
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgefusion-estimate")
    args = parser.parse_args()
    s24 = chipset("snapdragon-8-gen-3")
    costs = sd15_costs(args.work, int(s24.vtcm_mb * 2**20))
    calibration = fit(costs, s24) if args.fit else CALIBRATION
    sd15 = {c: round(total_ms(costs[c], s24, calibration), 2) for c in PUBLISHED_S24}
    result = {
        "calibration": calibration.__dict__,
        "sd_v15_w8a16_galaxy_s24": {c: {"estimate_ms": sd15[c], "published_ms": PUBLISHED_S24[c],
                                        "error": f"{sd15[c] / PUBLISHED_S24[c] - 1:+.1%}"} for c in PUBLISHED_S24},
        "sd_v15_gmac": {c: round(sum(x.macs for x in costs[c]) / 1e9, 1) for c in costs},
    }
    result["sd_v15_w8a16_galaxy_s24"]["image_2_steps_ms"] = round(sd15["text_encoder"] + 2 * sd15["unet"] + sd15["vae_decoder"], 1)
    bundle = args.bundle
    if bundle is None:
        bundle = args.work / "bk-sdm-tiny-edgefusion"
        compile_bundle(resolve_source(None, "bk-sdm-tiny"), BuildOptions(target="cpu", precision="edgefusion", fidelity_images=1),
                       bundle, args.work / "cache", sys.argv, Console(stderr=True))
    profile = estimate_bundle(load_bundle(bundle), s24)
    result["bk_sdm_tiny_snapdragon_8_gen_3"] = {
        "precisions": {c: e["precision"] for c, e in load_bundle(bundle).manifest["components"].items()},
        "per_call_ms": {c: s.total_ms for c, s in profile.components.items()},
        "per_image_ms": profile.per_image_ms,
        "edgefusion_exynos_2400_ms": EDGEFUSION_EXYNOS_2400_MS,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
