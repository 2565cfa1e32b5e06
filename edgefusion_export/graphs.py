"""ONNX files as the passes read and write them, the static shapes of their tensors, and what each layer costs
(MACs and memory traffic). No torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

FREE_OPS = {"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Constant", "Shape", "QuantizeLinear",
            "DequantizeLinear", "Cast", "CastLike", "EPContext"}
# Bytes per (weight, activation) value on the NPU at each precision; float graphs run there in fp16.
NPU_BYTES = {"w8a16": (1, 2), "w8a16-mixed": (1, 2), "w8a8": (1, 1), "fp16": (2, 2), "fp32": (2, 2), "float": (2, 2)}
ACTIVATION_PRECISIONS = {"uint16": "w8a16", "int16": "w8a16", "uint8": "w8a8", "int8": "w8a8"}


def graph_precision(model_path: Path) -> str:
    """What a graph runs at on the NPU: a QDQ graph's activation type decides (w8a16, w8a8), else float."""
    model = onnx.load(str(model_path), load_external_data=False)
    weights = {tensor.name: tensor for tensor in model.graph.initializer}
    for node in model.graph.node:  # an activation's QuantizeLinear: its zero point's type is the activations'
        if node.op_type == "QuantizeLinear" and node.input[0] not in weights and len(node.input) > 2:
            zero_point = weights.get(node.input[2])
            if zero_point is not None:
                name = onnx.helper.tensor_dtype_to_np_dtype(zero_point.data_type).name
                return ACTIVATION_PRECISIONS.get(name, "float")
    return "float"


def load_full(path: Path) -> onnx.ModelProto:
    """A model with its external weights loaded."""
    return onnx.load(str(path), load_external_data=True)


def save_model(model: onnx.ModelProto, path: Path) -> Path:
    """Save with all weights in one external data file beside the graph, without tool metadata_props."""
    del model.metadata_props[:]
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=f"{path.name}.data", size_threshold=1024)
    return path


def static_shapes(model: onnx.ModelProto, float_only: bool = False) -> dict[str, list[int]]:
    """Fully known shapes of the graph's values (inputs, outputs and inferred intermediates), by name.

    Shape inference serialises the model, so pass a graph whose weights stay external when it is over 2 GB.
    """
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for value in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        tensor_type = value.type.tensor_type
        dims = [dim.dim_value for dim in tensor_type.shape.dim]
        if dims and all(dims) and (not float_only or tensor_type.elem_type == onnx.TensorProto.FLOAT):
            shapes[value.name] = dims
    return shapes


@dataclass(frozen=True)
class LayerCost:
    name: str
    op_type: str
    macs: int
    weight_bytes: int
    activation_bytes: int  # activations larger than VTCM, read and written by the layer


def dynamic_inputs(model: onnx.ModelProto) -> list[str]:
    """The graph inputs with a dimension that is not a fixed number; each such dimension is set to 1 (a batch)."""
    initializers = {tensor.name for tensor in model.graph.initializer}
    names = []
    for value in model.graph.input:
        unknown = [dim for dim in value.type.tensor_type.shape.dim if not dim.HasField("dim_value") or dim.dim_value <= 0]
        if value.name not in initializers and unknown:
            for dim in unknown:
                dim.dim_value = 1
            names.append(value.name)
    return names


def layer_costs(model_path: Path, precision: str, vtcm_bytes: int) -> list[LayerCost]:
    """MACs and DDR traffic of every non-free node of a graph (weights need not be loaded); a dynamic input
    dimension counts as 1."""
    model = onnx.load(str(model_path), load_external_data=False)
    dynamic_inputs(model)
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

    weight_bytes, activation_bytes = NPU_BYTES[precision]
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
