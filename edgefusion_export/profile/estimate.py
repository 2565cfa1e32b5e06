"""`estimate`: an analytical per-layer latency model of a chipset's Hexagon NPU, with a measured error band.

A layer's time is the slower of its compute and its DDR traffic, plus a dispatch cost per op it runs as (none if it
runs inside another, one per time step of a recurrent layer); a graph adds the conversion of its inputs and outputs.
Compute: MACs at an achieved fraction of the precision's peak (QNN's HMX cost model: 16-bit activations at half the
int8 rate, fp16 at a quarter), with their own fractions for MatMuls of two activations (attention) and grouped
(depthwise) convolutions; bytes written by vector layers and by softmax at their own rates. Traffic: weights at
their stored precision plus the share of over-VTCM activations that really goes to DDR. Activations fused into the
layer before them and a MAC layer's or a norm's constant epilogue (a MatMul's bias, a GroupNorm's scale and shift)
cost nothing; links of an elementwise chain are not dispatched on their own (see `graphs.layer_costs`).

The constants belong to a chipset profile and a precision. benchmarks/estimate_validation.py fits them on AI
Hub's published times of part of its architectures and measures the error on the others (split by model);
that held-out error band is stored beside the constants and printed with every projection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle.manifest import Bundle
from ..errors import UserError
from ..graphs import (NPU_BYTES, LayerCost, ShapedGraph, cpu_layers, graph_inputs, layer_costs, load_shaped,
                      uncosted_layers)
from ..targets.chipsets import Chipset
from .blocks import block_of
from .model import Profile, Row, totals_by

PRECISION_CLASSES = {"float": "float", "fp16": "float", "fp32": "float", "w8a8": "w8a8", "w8a16": "w8a16",
                     "w8a16-mixed": "w8a16"}
PEAK_SHARE_OF_INT8 = {"w8a8": 1.0, "w8a16": 0.5, "float": 0.25}


@dataclass(frozen=True)
class EstimateConstants:
    """How a chipset's NPU achieves its peaks at one precision (fitted per chipset and precision)."""

    dense_efficiency: float  # achieved fraction of the precision's peak MAC rate on Conv, MatMul and Gemm
    dynamic_efficiency: float  # the same on MatMuls of two activations (attention), which need layout changes
    grouped_efficiency: float  # the same on grouped (depthwise) Conv
    vector_gbps: float  # GB per second that vector layers (adds, multiplies, norms, transposes) write
    softmax_gbps: float  # the same for softmax
    memory_efficiency: float  # achieved fraction of the DDR bandwidth
    activation_spill: float  # share of over-VTCM activation bytes that really goes to DDR (the rest is tiled)
    op_overhead_us: float  # dispatch cost of every layer that runs as an op of its own
    io_ns_per_value: float  # converting the graph's float32 inputs and outputs at its boundary

    @classmethod
    def names(cls) -> list[str]:
        return [field.name for field in fields(cls)]


@dataclass(frozen=True)
class ErrorBand:
    """Absolute relative error of the estimate on models held out of the fit."""

    median: float
    p90: float
    rows: int

    def describe(self) -> str:
        return f"held-out median error {self.median:.0%}, 90% within {self.p90:.0%} ({self.rows} device times)"


@dataclass(frozen=True)
class LatencyModel:
    """One chipset at one precision: its peaks and fitted constants."""

    chipset: Chipset
    precision: str
    constants: EstimateConstants
    band: ErrorBand | None

    @classmethod
    def of(cls, chipset: Chipset, precision: str) -> LatencyModel:
        precision_class = PRECISION_CLASSES[precision]
        entry = chipset.estimate.get(precision_class)
        if entry is None:
            raise UserError(f"the chipset profile {chipset.name} has no estimate constants for {precision_class}; "
                            "fit them with benchmarks/estimate_validation.py --write-profiles")
        band = ErrorBand(**entry["held_out_error"]) if entry.get("held_out_error") else None
        return cls(chipset, precision, EstimateConstants(**{name: entry[name] for name in EstimateConstants.names()}), band)

    @property
    def peak_macs_per_s(self) -> float:
        return self.chipset.npu_int8_tops * 1e12 / 2 * PEAK_SHARE_OF_INT8[PRECISION_CLASSES[self.precision]]

    def describe_band(self) -> str:
        return self.band.describe() if self.band else "not validated: no published device times for this chipset"


@dataclass(frozen=True)
class LayerArrays:
    """A graph's per-layer costs at one precision, as arrays (the fit evaluates hundreds of graphs this way)."""

    dense_macs: np.ndarray
    dynamic_macs: np.ndarray
    grouped_macs: np.ndarray
    vector_bytes: np.ndarray
    softmax_bytes: np.ndarray
    weight_bytes: np.ndarray
    activation_bytes: np.ndarray
    dispatches: np.ndarray  # ops each layer runs as
    io_values: int  # values of the graph's inputs and outputs

    @classmethod
    def of(cls, costs: list[LayerCost], precision: str, io_values: int) -> LayerArrays:
        activation_size = NPU_BYTES[precision][1]

        def column(kinds: set[str], value) -> np.ndarray:
            return np.array([value(c) if c.kind in kinds else 0 for c in costs], dtype=np.float64)

        computed = {"dense", "dynamic", "grouped", "vector", "softmax", "in_place"}
        return cls(column({"dense"}, lambda c: c.macs), column({"dynamic"}, lambda c: c.macs),
                   column({"grouped"}, lambda c: c.macs), column({"vector"}, lambda c: c.elements * activation_size),
                   column({"softmax"}, lambda c: c.elements * activation_size),
                   column(computed, lambda c: c.weight_bytes), column(computed, lambda c: c.activation_bytes),
                   column(computed, lambda c: c.dispatches), io_values)


def layer_times_ms(layers: LayerArrays, model: LatencyModel) -> np.ndarray:
    """Milliseconds per layer, and a last entry for the conversion of the graph's inputs and outputs."""
    c = model.constants
    peak = model.peak_macs_per_s
    compute_s = (layers.dense_macs / (peak * c.dense_efficiency) + layers.dynamic_macs / (peak * c.dynamic_efficiency)
                 + layers.grouped_macs / (peak * c.grouped_efficiency) + layers.vector_bytes / (c.vector_gbps * 1e9)
                 + layers.softmax_bytes / (c.softmax_gbps * 1e9))
    memory_s = ((layers.weight_bytes + c.activation_spill * layers.activation_bytes)
                / (model.chipset.memory_bandwidth_gbps * 1e9 * c.memory_efficiency))
    per_layer = np.maximum(compute_s, memory_s) + layers.dispatches * c.op_overhead_us * 1e-6
    return np.append(per_layer, layers.io_values * c.io_ns_per_value * 1e-9) * 1000


def io_values(graph: ShapedGraph) -> int:
    """Values of a graph's inputs and outputs."""
    shapes = graph.shapes()
    return sum(int(np.prod(shapes.get(value.name, [0]))) for value in [*graph.model.graph.input, *graph.model.graph.output])


def graph_layers(graph: ShapedGraph, precision: str, chipset: Chipset) -> tuple[list[LayerCost], LayerArrays]:
    costs = layer_costs(graph, precision, int(chipset.vtcm_mb * 2**20))
    return costs, LayerArrays.of(costs, precision, io_values(graph))


def graph_rows(graph: ShapedGraph, component: str, precision: str, chipset: Chipset) -> list[Row]:
    """One call's time per layer, and a last row for the conversion of the graph's inputs and outputs."""
    costs, layers = graph_layers(graph, precision, chipset)
    *times, io_ms = layer_times_ms(layers, LatencyModel.of(chipset, precision))
    rows = [Row(component, cost.name, cost.op_type, block_of(component, cost.name), "NPU", round(float(time), 5),
                cost.macs, cost.weight_bytes + cost.activation_bytes) for cost, time in zip(costs, times)]
    return rows + [Row(component, "graph inputs and outputs", "IO", "io", "NPU", round(float(io_ms), 5))]


def estimate_component(model_path: Path, component: str, precision: str, chipset: Chipset) -> list[Row]:
    return graph_rows(load_shaped(model_path), component, precision, chipset)


@dataclass(frozen=True)
class GraphEstimate:
    """One call of a graph, where its time goes, and what the estimate took for it."""

    rows: list[Row]  # per layer, and the graph's inputs and outputs ("IO") last
    input_shapes: dict[str, list[int]]  # as estimated
    dynamic_inputs_as_1: list[str]  # inputs with a dimension neither fixed nor given, taken as 1
    not_costed: dict[str, int]  # op types of the layers whose work is unknown, by count (`graphs.uncosted_layers`)
    read_as_qdq: dict[str, int]  # quantized operators estimated as the QDQ graph they stand for, by count
    on_cpu: dict[str, int]  # layers onnxruntime's QNN provider runs on the CPU, by op type (`graphs.cpu_layers`)

    @property
    def total_ms(self) -> float:
        return round(sum(row.time_ms for row in self.rows), 5)

    def by_op_type(self) -> dict[str, float]:
        """Milliseconds per op type, slowest first."""
        return {op_type: round(ms, 5) for op_type, ms in totals_by(self.rows, lambda row: row.op_type).items()}

    def slowest_layers(self, count: int) -> list[Row]:
        return sorted(self.rows, key=lambda row: -row.time_ms)[:count]

    def to_json(self, slowest: int = 0) -> dict[str, Any]:
        """The summary, and the `slowest` layers when asked for."""
        layers = [{"name": row.name, "op_type": row.op_type, "ms": row.time_ms, "macs": row.macs}
                  for row in self.slowest_layers(slowest)]
        return {"total_ms": self.total_ms, "input_shapes": self.input_shapes,
                "dynamic_inputs_as_1": self.dynamic_inputs_as_1, "not_costed": self.not_costed,
                "read_as_qdq": self.read_as_qdq, "on_cpu": self.on_cpu,
                "by_op_type": self.by_op_type(), **({"slowest_layers": layers} if slowest else {})}


def estimate_model(model_path: Path, precision: str, chipset: Chipset,
                   input_shapes: Mapping[str, list[int]] | None = None) -> GraphEstimate:
    """Projected milliseconds of one call of any ONNX graph at `precision` (float, w8a8, w8a16) on `chipset`, its
    inputs at `input_shapes` where given."""
    return estimate_graph(load_shaped(model_path, input_shapes), model_path.stem, precision, chipset)


def estimate_graph(graph: ShapedGraph, name: str, precision: str, chipset: Chipset) -> GraphEstimate:
    """`estimate_model` of a graph already loaded at its shapes (one load for several chipsets)."""
    fed = graph_inputs(graph.model)
    return GraphEstimate(graph_rows(graph, name, precision, chipset),
                         {value.name: [dim.dim_value for dim in value.type.tensor_type.shape.dim]
                          for value in graph.model.graph.input if value.name in fed},
                         graph.dynamic_inputs_as_1, uncosted_layers(graph), graph.read_as_qdq, cpu_layers(graph))


def estimate_bundle(bundle: Bundle, chipset: Chipset, size: str | None = None) -> Profile:
    """The estimate of the bundle's graphs at `size` (default: its first)."""
    rows, notes = [], []
    for component, graph in bundle.graphs(size).items():
        entry = bundle.manifest["components"][graph]
        rows += estimate_component(bundle.component_path(graph), component, entry["precision"], chipset)
        model = LatencyModel.of(chipset, entry["precision"])
        notes.append(f"{component} ({PRECISION_CLASSES[entry['precision']]}): {model.describe_band()}")
    device = f"{chipset.marketing_name} ({chipset.aihub_device}), analytical estimate"
    notes = [f"an estimate, not a measurement; per component: {'; '.join(dict.fromkeys(notes))}"]
    return Profile("estimate", device, str(bundle.folder), bundle.manifest["sampling"]["num_steps"], rows, notes=notes,
                   size=bundle.size(size)).finish()
