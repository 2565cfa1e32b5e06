"""What the channels-last GroupNorm costs on the NPU: bk-sdm-tiny's UNet (W8A16) and VAE decoder (FP16) at
512x512 exported with torch's own group_norm form and with the compiler's channels-last form, estimated for the
Snapdragon 8 Gen 3 (ms per call, nodes); print JSON. Peak memory about 8 GB.

    .venv/bin/python benchmarks/group_norm_forms.py [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import onnx

from edgefusion_export.export import onnx_export
from edgefusion_export.memory import PeakMemory
from edgefusion_export.profile.estimate import estimate_component
from edgefusion_export.sources.resolve import resolve_source
from edgefusion_export.targets.chipsets import chipset

PRECISION = {"unet": "w8a16", "vae_decoder": "fp16"}  # the edgefusion recipe


def export(source, component: str, folder: Path, channels_last: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    simplified = folder / "simplified" / f"{component}.onnx"
    if not simplified.is_file():
        exported = onnx_export.export_component(source, component, (512, 512), folder, channels_last)
        simplified.parent.mkdir(exist_ok=True)
        onnx_export.simplify(exported, simplified.parent)
    return simplified


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgefusion-group-norm")
    args = parser.parse_args()
    chip = chipset("snapdragon-8-gen-3")
    source = resolve_source(None, "bk-sdm-tiny")
    result: dict = {"chipset": chip.name, "size": "512x512"}
    with PeakMemory() as peak:
        for component, precision in PRECISION.items():
            entry = {}
            for form, channels_last in (("torch", False), ("channels_last", True)):
                start = time.perf_counter()
                path = export(source, component, args.work / f"{component}-{form}", channels_last)
                rows = estimate_component(path, component, precision, chip)
                entry[form] = {"estimate_ms": round(sum(row.time_ms for row in rows), 2),
                               "nodes": len(onnx.load(str(path), load_external_data=False).graph.node),
                               "seconds": round(time.perf_counter() - start, 1)}
            entry["added_ms"] = round(entry["channels_last"]["estimate_ms"] - entry["torch"]["estimate_ms"], 2)
            result[f"{component}_{precision}"] = entry
    result["peak_rss_gb"] = round(peak.mb / 1024, 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
