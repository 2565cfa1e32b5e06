"""Compile targets: what each one produces beyond the portable ONNX bundle."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    default_precision: str
    notes: list[str] = field(default_factory=list)


TARGETS = {
    "cpu": Target("cpu", "portable ONNX for onnxruntime on any CPU", "fp32"),
    "snapdragon": Target(
        "snapdragon", "Qualcomm Snapdragon phones (Hexagon NPU)", "edgefusion",
        ["Hexagon NPU compilation (QNN context binaries) is not implemented yet: this bundle holds the portable "
         "ONNX models, which run on the phone's CPU through onnxruntime"]),
}
