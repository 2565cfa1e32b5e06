"""What a build is asked to do: the options of `compile`, with their defaults (the CLI reads them from here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .bundle.selection import SHIP_CHOICES
from .components import DEFAULT_SIZE, ImageSize, size_label
from .errors import UserError
from .quantize import calibration
from .quantize.fidelity import FidelityGates
from .quantize.lookup_tables import LOOKUP_TABLE_CHOICES
from .quantize.recipes import RECIPES, QuantizeSettings
from .targets import TARGETS
from .targets.base import MIN_NPU_SQNR_DB, QNN_OPTIMIZATION_CHOICES, VERIFY_NPU_CHOICES


@dataclass(frozen=True)
class BuildOptions:
    target: str = "cpu"
    precision: str | None = None  # a recipe of quantize.recipes.RECIPES; None: the target's default
    steps: int = 2
    guidance_scale: float = 8.5
    sizes: tuple[ImageSize, ...] = (DEFAULT_SIZE,)  # (height, width) each; the first is the bundle's default
    force: bool = False
    calibration_prompts: Path | None = None
    calibration_size: int = 16
    evaluation_size: int = 4
    quantize: QuantizeSettings = QuantizeSettings()
    fidelity: FidelityGates = FidelityGates()
    fidelity_images: int = 2
    chipsets: tuple[str, ...] = ()  # snapdragon: profile names; empty means the default chipset
    allow_cpu_fallback: bool = False
    aihub: bool = False
    verify_npu: str = "auto"  # VERIFY_NPU_CHOICES
    min_npu_sqnr: float = MIN_NPU_SQNR_DB
    ship: str = "both"  # what the bundle holds: compiled NPU models, the portable ONNX, or both (bundle.selection)
    qnn_optimization: str = "auto"  # QNN graph finalization mode 1-3 for every component, or auto: per component
    lookup_tables: str = "int8"  # how FP16 graphs store large lookup tables (the token embeddings): LOOKUP_TABLE_CHOICES

    @property
    def resolved_precision(self) -> str:
        return self.precision or TARGETS[self.target].default_precision

    def validate(self) -> None:
        if self.target not in TARGETS:
            raise UserError(f"unknown target {self.target!r}; choose one of: {', '.join(TARGETS)}")
        if self.resolved_precision not in RECIPES:
            raise UserError(f"unknown precision {self.resolved_precision!r}; choose one of: {', '.join(RECIPES)}")
        if self.calibration_size < 1 or self.evaluation_size < 1:
            raise UserError("--calibration-size must be at least 1")
        if self.calibration_prompts is not None:
            calibration.read_prompts(self.calibration_prompts)
        if self.qnn_optimization not in QNN_OPTIMIZATION_CHOICES:
            raise UserError(f"--qnn-optimization {self.qnn_optimization!r} is not one of {', '.join(QNN_OPTIMIZATION_CHOICES)}")
        if self.verify_npu not in VERIFY_NPU_CHOICES:
            raise UserError(f"--verify-npu {self.verify_npu!r} is not one of {', '.join(VERIFY_NPU_CHOICES)}")
        if self.lookup_tables not in LOOKUP_TABLE_CHOICES:
            raise UserError(f"--lookup-tables {self.lookup_tables!r} is not one of {', '.join(LOOKUP_TABLE_CHOICES)}")
        if self.ship not in SHIP_CHOICES:
            raise UserError(f"--ship {self.ship!r} is not one of {', '.join(SHIP_CHOICES)}")
        TARGETS[self.target].check(self)
        if not self.sizes:
            raise UserError("no image size given; pass --size WIDTHxHEIGHT (e.g. 512x512)")
        for size in self.sizes:
            for label, value in zip(("height", "width"), size):
                if value < 64 or value % 64:
                    raise UserError(f"{label} {value} of size {size_label(size)} is not a positive multiple of 64; use e.g. 512")
        repeated = sorted({size_label(size) for size in self.sizes if self.sizes.count(size) > 1})
        if repeated:
            raise UserError(f"size {', '.join(repeated)} is given twice; list each size once")
        if not self.guidance_scale >= 1:
            raise UserError(f"--guidance-scale {self.guidance_scale:g} is below 1; LCM's guidance embedding is of "
                            "(scale - 1), so use 1 (no guidance) or more (8.5 is the default)")
        if not 1 <= self.steps <= 8:
            raise UserError(f"--steps {self.steps} is outside 1..8; LCM models are distilled for 1 to 8 steps")


def check_request(options: BuildOptions, output: Path) -> None:
    """Refuse bad options and output paths before any work starts."""
    options.validate()
    if output.exists() and not output.is_dir():
        raise UserError(f"output {output} is a file; pass a folder path for the bundle")
