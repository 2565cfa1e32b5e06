"""The portable target: the bundle's ONNX files, for onnxruntime on any CPU. It adds no pass."""

from __future__ import annotations

from pathlib import Path
from ..errors import UserError
from ..stages import StageCache
from .base import FinalModels, TargetBuild, TargetOptions


class CpuTarget:
    name = "cpu"
    description = "portable ONNX for onnxruntime on any CPU"
    default_precision = "fp32"

    def check(self, options: TargetOptions) -> None:
        if options.chipsets or options.aihub or options.verify_npu not in ("auto", "off") or options.ship == "compiled" or options.qnn_optimization != "auto":
            raise UserError("--chipset, --aihub, --verify-npu, --qnn-optimization and --ship compiled apply to "
                            "--target snapdragon only")

    def start(self, component: str, model: Path, options: TargetOptions, cache: StageCache) -> None:
        """Nothing to do ahead: the portable ONNX is the product."""

    def compile(self, final: FinalModels, options: TargetOptions, cache: StageCache) -> TargetBuild:
        return TargetBuild(manifest={"name": self.name})

    def share(self, graphs: dict[str, dict[str, Path]], options: TargetOptions, cache: StageCache) -> TargetBuild:
        """The portable graphs already share their weights file."""
        return TargetBuild()
