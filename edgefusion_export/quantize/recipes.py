"""Precision recipes and the quantization of one component, with automatic float fallback for `-mixed`."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..components import COMPONENTS
from ..errors import UserError
from ..stages import StageResult
from ..processes import in_fresh_process
from . import qdq
from .fallback import Search, keep_sensitive_layers_float

# Each recipe gives every component one precision. `edgefusion` is EdgeFusion's deployment (UNet W8A16, text
# encoder and VAE decoder FP16), read from the component table; its variant quantizes the decoder as well, as
# AI Hub ships SD's decoder (the figures behind the default: README, "The VAE decoder's precision").
EDGEFUSION = {name: component.edgefusion_precision for name, component in COMPONENTS.items()}
RECIPES: dict[str, dict[str, str]] = {
    **{recipe: dict.fromkeys(COMPONENTS, recipe) for recipe in ("fp32", "fp16", "w8a16")},
    "edgefusion": EDGEFUSION,
    "edgefusion-w8a16-decoder": {**EDGEFUSION, "vae_decoder": "w8a16"},
    "w8a16-mixed": dict.fromkeys(COMPONENTS, "w8a16-mixed"),
}
QUANTIZED = ("w8a16", "w8a16-mixed")
AUTO_FALLBACK_RECIPES = ("edgefusion", "edgefusion-w8a16-decoder")  # keep the most sensitive layers in float when plain W8A16 misses the gate


@dataclass(frozen=True)
class QuantizeResult(StageResult):
    """A W8A16 component: its held-out fidelity, the fallback's attempts and the layers it kept in float."""

    precision: str
    fidelity: dict[str, Any]
    attempts: list[dict[str, Any]]
    kept_float: list[dict[str, Any]]
    float_fraction: float
    attention_masks_bounded: int
    io_quantization: dict[str, dict[str, Any]]
    parity: dict[str, float] | None = None  # against torch on the export's example inputs

    def summary(self) -> str:
        per_step = ", ".join(f"t={t} {v:.1f}" for t, v in self.fidelity["per_timestep_sqnr_db"].items())
        text = f"held-out SQNR {self.fidelity['sqnr_db']:.1f} dB" + (f" ({per_step})" if per_step else "")
        if not self.kept_float:
            return text
        layers = ", ".join(item["node"].rpartition("/")[0] or item["node"] for item in self.kept_float)
        return f"{text}  {len(self.kept_float)} layers kept float ({layers}), plain W8A16 reached {self.attempts[0]['sqnr_db']:.1f} dB"


@dataclass(frozen=True)
class QuantizeSettings:
    min_sqnr_db: float = 30.0
    max_float_fraction: float = 0.25  # of the component's weight parameters kept in float by the fallback
    activation_ranges: str = "minmax"  # how calibration sets 16-bit activation ranges: qdq.ACTIVATION_RANGES

    def read_by(self, precision: str) -> QuantizeSettings:
        """The settings that quantizing at `precision` reads: plain W8A16 only the activation ranges (the SQNR gate
        is judged after it), w8a16-mixed's fallback all of them."""
        return self if precision == "w8a16-mixed" else QuantizeSettings(activation_ranges=self.activation_ranges)


def quantize_component(float_path: Path, calibration: list[dict[str, np.ndarray]], evaluation: list[dict[str, np.ndarray]],
                       folder: Path, precision: str, settings: QuantizeSettings) -> QuantizeResult:
    """Write `folder/<component>.onnx` in W8A16 QDQ; for w8a16-mixed below `settings.min_sqnr_db`, with the most
    sensitive layers kept in float (`fallback`)."""
    output = folder / float_path.name
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        work = Path(scratch)
        prepared, masks = in_fresh_process(qdq.prepare, float_path, work, temp_parent=work)
        sizes = qdq.weighted_nodes(onnx.load(str(prepared), load_external_data=False))

        def attempt(kept: list[tuple[str, float]]) -> tuple[qdq.Fidelity, Path]:
            path = work / f"attempt{len(kept)}" / float_path.name
            path.parent.mkdir()
            qdq.quantize_w8a16(prepared, calibration, path, [name for name, _ in kept], settings.activation_ranges)
            return qdq.evaluate(float_path, path, evaluation), path

        fidelity, path = attempt([])
        search = Search(fidelity, path, attempts=[{"kept_float": 0, "sqnr_db": round(fidelity.sqnr_db, 2)}])
        if precision == "w8a16-mixed" and fidelity.sqnr_db < settings.min_sqnr_db:
            ranking = [item for item in qdq.layer_sensitivity(prepared, path, calibration[:2]) if item[1] > 0]
            search = keep_sensitive_layers_float(attempt, search, ranking, sizes, settings.min_sqnr_db,
                                                 settings.max_float_fraction)
        for produced in search.path.parent.iterdir():
            shutil.move(produced, folder / produced.name)
    kept_float = [{"node": name, "error_contribution": float(f"{score:.3g}"), "params": sizes[name]} for name, score in search.kept]
    return QuantizeResult(precision, search.fidelity.as_dict(), search.attempts, kept_float,
                          round(sum(item["params"] for item in kept_float) / max(sum(sizes.values()), 1), 4),
                          masks, qdq.io_quantization(output))


def check_fidelity(component: str, result: QuantizeResult, settings: QuantizeSettings) -> None:
    """The component gate: held-out SQNR against the float model."""
    sqnr = result.fidelity["sqnr_db"]
    if sqnr < settings.min_sqnr_db:
        hint = ("raise --max-float-fraction" if result.precision == "w8a16-mixed" else "use --precision w8a16-mixed")
        raise UserError(f"{component} at {result.precision} reaches {sqnr:.1f} dB SQNR on held-out prompts, below "
                        f"--min-sqnr {settings.min_sqnr_db:g}; calibrate on more prompts (--calibration-size), {hint}, "
                        "or lower --min-sqnr")
