"""`estimate`: an analytical per-layer latency model of a chipset's Hexagon NPU.

Each layer is compute-bound or memory-bound: time = max(MACs / achieved MAC rate, DDR bytes / achieved
bandwidth) + a fixed per-op dispatch cost. MACs come from the ONNX graph's static shapes (Conv, MatMul, Gemm);
bytes are the weights at their stored precision plus the activations that do not fit in the HTP's on-chip
memory (VTCM). The three efficiency constants are calibrated against AI Hub's published SD-v1.5 W8A16 times
on the Galaxy S24 (benchmarks/estimate.py reproduces the fit and reports the error).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..bundle.manifest import Bundle
from ..graphs import LayerCost, layer_costs
from ..targets.chipsets import Chipset
from .blocks import block_of
from .model import Profile, Row

@dataclass(frozen=True)
class Calibration:
    """Achieved fractions of the chipset's peaks and the per-op dispatch cost (fitted, see module doc)."""

    compute_efficiency: float = 0.85
    memory_efficiency: float = 0.70
    activation_spill: float = 0.20  # share of over-VTCM activation bytes that really goes to DDR (the rest is tiled)
    op_overhead_us: float = 2.0


CALIBRATION = Calibration()


def layer_time_ms(cost: LayerCost, chipset: Chipset, precision: str, calibration: Calibration = CALIBRATION) -> float:
    if precision.startswith("w8a16"):
        peak_macs = chipset.npu_int8_tops * 1e12 / 2 / 2  # 16-bit activations run at half the int8 MAC rate
    elif precision == "w8a8":
        peak_macs = chipset.npu_int8_tops * 1e12 / 2
    else:
        peak_macs = (chipset.npu_fp16_tflops or chipset.npu_int8_tops / 4) * 1e12 / 2
    compute_s = cost.macs / (peak_macs * calibration.compute_efficiency)
    ddr_bytes = cost.weight_bytes + calibration.activation_spill * cost.activation_bytes
    memory_s = ddr_bytes / (chipset.memory_bandwidth_gbps * 1e9 * calibration.memory_efficiency)
    return (max(compute_s, memory_s) + calibration.op_overhead_us * 1e-6) * 1000


def estimate_component(model_path: Path, component: str, precision: str, chipset: Chipset,
                       calibration: Calibration = CALIBRATION) -> list[Row]:
    vtcm = int(chipset.vtcm_mb * 2**20)
    return [Row(component, cost.name, cost.op_type, block_of(component, cost.name), "NPU",
                round(layer_time_ms(cost, chipset, precision, calibration), 5), cost.macs,
                cost.weight_bytes + cost.activation_bytes)
            for cost in layer_costs(model_path, precision, vtcm)]


def estimate_model(model_path: Path, precision: str, chipset: Chipset) -> float:
    """Projected milliseconds of one call of any ONNX graph at `precision` (float, w8a8, w8a16) on `chipset`."""
    return round(sum(row.time_ms for row in estimate_component(model_path, "other", precision, chipset)), 4)


def estimate_bundle(bundle: Bundle, chipset: Chipset) -> Profile:
    rows = []
    for component, entry in bundle.manifest["components"].items():
        rows += estimate_component(bundle.component_path(component), component, entry["precision"], chipset)
    device = f"{chipset.marketing_name} ({chipset.aihub_device}), analytical estimate"
    notes = [f"calibration: compute {CALIBRATION.compute_efficiency:.0%} and memory {CALIBRATION.memory_efficiency:.0%} "
             f"of peak, {CALIBRATION.activation_spill:.0%} of over-VTCM activations spilled to DDR, "
             f"{CALIBRATION.op_overhead_us:g} us per op; fitted to AI Hub's SD-v1.5 W8A16 Galaxy S24 times"]
    return Profile("estimate", device, str(bundle.folder), bundle.manifest["sampling"]["num_steps"], rows, notes=notes).finish()
