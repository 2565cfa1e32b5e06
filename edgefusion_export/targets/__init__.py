"""Compile targets: what each one produces beyond the portable ONNX bundle."""

from __future__ import annotations

from dataclasses import dataclass

# Gate of compile --verify-npu: an NPU model within 35 dB of the CPU adds less error than the W8A16 quantization
# itself (held-out 30-43 dB); correct models measure 51-60 dB in emulation here, a broken one about 0 dB.
MIN_NPU_SQNR_DB = 35.0


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
