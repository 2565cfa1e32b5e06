"""Compile targets: what each one produces beyond the portable ONNX bundle."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    default_precision: str


TARGETS = {
    "cpu": Target("cpu", "portable ONNX for onnxruntime on any CPU", "fp32"),
    "snapdragon": Target("snapdragon", "Qualcomm Snapdragon phones: Hexagon NPU context binaries per chipset, "
                         "plus the portable ONNX", "edgefusion"),
}
