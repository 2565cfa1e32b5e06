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

import numpy as np
import onnx

from ..bundle.manifest import Bundle
from ..graphs import static_shapes
from ..targets.chipsets import Chipset
from .report import Profile, Row, block_of

FREE_OPS = {"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Constant", "Shape", "QuantizeLinear",
            "DequantizeLinear", "Cast", "CastLike", "EPContext"}
BYTES = {"w8a16": (1, 2), "w8a16-mixed": (1, 2), "fp16": (2, 2), "fp32": (2, 2)}  # (weight, activation) on the NPU


@dataclass(frozen=True)
class Calibration:
    """Achieved fractions of the chipset's peaks and the per-op dispatch cost (fitted, see module doc)."""

    compute_efficiency: float = 0.85
    memory_efficiency: float = 0.70
    activation_spill: float = 0.20  # share of over-VTCM activation bytes that really goes to DDR (the rest is tiled)
    op_overhead_us: float = 2.0


CALIBRATION = Calibration()


@dataclass(frozen=True)
class LayerCost:
    name: str
    op_type: str
    macs: int
    weight_bytes: int
    activation_bytes: int  # activations larger than VTCM, read and written by the layer


def layer_costs(model_path: Path, precision: str, vtcm_bytes: int) -> list[LayerCost]:
    """MACs and DDR traffic of every non-free node of a graph (weights need not be loaded)."""
    model = onnx.load(str(model_path), load_external_data=False)
    shapes = {tensor.name: list(tensor.dims) for tensor in model.graph.initializer} | static_shapes(model)
    weights = {tensor.name for tensor in model.graph.initializer}
    producer = {output: node for node in model.graph.node for output in node.output}

    def weight_source(name: str) -> str | None:
        """The initializer behind an input, looking through a DequantizeLinear/Transpose."""
        if name in weights:
            return name
        node = producer.get(name)
        if node is not None and node.op_type in ("DequantizeLinear", "Transpose", "Cast") and node.input[0] in weights:
            return node.input[0]
        return None

    shape_keeping = ("QuantizeLinear", "DequantizeLinear", "Cast")
    consumer = {name: node for node in model.graph.node if node.op_type in shape_keeping for name in node.input[:1]}

    def shape_of(name: str) -> list[int]:
        """Static shape, looking through Q/DQ and casts (they keep their input's shape) backwards, then forwards."""
        for step in (lambda n: producer[n].input[0] if n in producer and producer[n].op_type in shape_keeping else None,
                     lambda n: consumer[n].output[0] if n in consumer else None):
            current = name
            while current is not None and current not in shapes:
                current = step(current)
            if current is not None:
                return shapes[current]
        return []

    weight_bytes, activation_bytes = BYTES.get(precision, (2, 2))
    costs = []
    for node in model.graph.node:
        if node.op_type in FREE_OPS:
            continue
        output = shape_of(node.output[0])
        macs = 0
        kernel = shape_of(weight_source(node.input[1]) or node.input[1]) if len(node.input) > 1 else None
        if node.op_type == "Conv" and output and kernel:
            macs = int(np.prod(output)) * int(np.prod(kernel[1:]))  # kernel: [Cout, Cin/groups, kh, kw]
        elif node.op_type in ("MatMul", "Gemm") and output and shape_of(node.input[0]):
            macs = int(np.prod(output)) * shape_of(node.input[0])[-1]
        weight_traffic = activation_traffic = 0
        for name in node.input:
            source = weight_source(name)
            if source is not None:
                weight_traffic += int(np.prod(shapes.get(source, [0]))) * weight_bytes
            elif shape_of(name):
                size = int(np.prod(shape_of(name))) * activation_bytes
                activation_traffic += size if size > vtcm_bytes else 0
        for name in node.output:
            size = int(np.prod(shape_of(name) or [0])) * activation_bytes
            activation_traffic += size if size > vtcm_bytes else 0
        costs.append(LayerCost(node.name, node.op_type, macs, weight_traffic, activation_traffic))
    return costs


def layer_time_ms(cost: LayerCost, chipset: Chipset, precision: str, calibration: Calibration = CALIBRATION) -> float:
    if precision.startswith("w8a16"):
        peak_macs = chipset.npu_int8_tops * 1e12 / 2 / 2  # 16-bit activations run at half the int8 MAC rate
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


def estimate_bundle(bundle: Bundle, chipset: Chipset) -> Profile:
    rows = []
    for component, entry in bundle.manifest["components"].items():
        rows += estimate_component(bundle.component_path(component), component, entry["precision"], chipset)
    device = f"{chipset.marketing_name} ({chipset.aihub_device}), analytical estimate"
    notes = [f"calibration: compute {CALIBRATION.compute_efficiency:.0%} and memory {CALIBRATION.memory_efficiency:.0%} "
             f"of peak, {CALIBRATION.activation_spill:.0%} of over-VTCM activations spilled to DDR, "
             f"{CALIBRATION.op_overhead_us:g} us per op; fitted to AI Hub's SD-v1.5 W8A16 Galaxy S24 times"]
    return Profile("estimate", device, str(bundle.folder), bundle.manifest["sampling"]["num_steps"], rows, notes=notes).finish()
