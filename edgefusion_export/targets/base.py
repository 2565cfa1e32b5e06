"""What a compile target is given and what it gives back; the compiler knows targets only through this."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..stages import StageCache

# Default gate of NPU verification: an NPU model within 35 dB of the CPU adds less error than the W8A16
# quantization itself (held-out 30-43 dB); correct models measure 38-70 dB in emulation here, a broken one ~0 dB.
MIN_NPU_SQNR_DB = 35.0
QNN_OPTIMIZATION_CHOICES = ("auto", "1", "2", "3")  # QNN's htp_graph_finalization_optimization_mode, or per component
VERIFY_NPU_CHOICES = ("auto", "all", "quantized", "off")


class TargetOptions(Protocol):
    """The build options targets read (the compiler's BuildOptions)."""

    chipsets: tuple[str, ...]
    allow_cpu_fallback: bool
    aihub: bool
    verify_npu: str
    min_npu_sqnr: float
    ship: str
    qnn_optimization: str


@dataclass(frozen=True)
class FinalModels:
    """What a target compiles: each component's final portable ONNX, and what its checks compare with."""

    models: dict[str, Path]
    float_models: dict[str, Path]
    precisions: dict[str, str]
    held_out: dict[str, list[dict[str, Any]]]  # one held-out image's calls per component
    cache_dir: Path
    sizes: dict[str, str | None]  # the image size ("512x512") each component's shapes are for, None if size-free
    folders: dict[str, str]  # the subfolder its compiled files go to: "" for the bundle's default size, else its size


@dataclass
class TargetBuild:
    files: dict[str, Path] = field(default_factory=dict)  # bundle path -> artifact to copy there
    compiled: dict[str, dict[str, Any]] = field(default_factory=dict)  # component -> its manifest "compiled" entry
    manifest: dict[str, Any] = field(default_factory=dict)  # the manifest's "target" section
    report: dict[str, Any] = field(default_factory=dict)  # the build report's "npu" section


class Target(Protocol):
    name: str
    description: str
    default_precision: str

    def check(self, options: TargetOptions) -> None:
        """Refuse options this target does not take, with a one-line UserError."""

    def start(self, component: str, model: Path, options: TargetOptions, cache: StageCache) -> None:
        """Start work on one final component in the background (`cache.start`) while the chain goes on."""

    def compile(self, final: FinalModels, options: TargetOptions, cache: StageCache) -> TargetBuild:
        """Run the target's own passes on the final models."""

    def share(self, graphs: dict[str, dict[str, Path]], options: TargetOptions, cache: StageCache) -> TargetBuild:
        """Compile each component's graphs of several image sizes together, their weights stored once: `graphs` is
        component -> graph name -> its final model (distinct file names, one folder per component). What it
        returns replaces the "offline" entries and the files of those graphs."""
