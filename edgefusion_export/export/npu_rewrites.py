"""Graph rewrites into forms the Hexagon NPU runs as one partition and computes correctly. Each is checked for
parity by its caller.

- GroupNormalization (opset 18/21) -> channels-last statistics: QNN has no group norm, and its own splitting of
  the op cut the UNet into 57 NPU partitions (measured here). The decomposition groups channels in NHWC terms
  (Transpose to channels-last, Reshape to (N, spatial, G, C/G), mean and variance over axes 1 and 3) because the
  NCHW form (Reshape to (N, G, -1), InstanceNormalization, Reshape back) computes garbage on QNN's HTP backend with
  16-bit activations once a SiLU and a Conv follow it, which is every resnet block (-0.4 dB against the CPU in
  HTP emulation; `tests/test_npu_emulation.py` keeps the evidence).
- A Gather whose constant indices take every entry of its axis in order (torch.export writes `as_strided` so, as in
  ConvNeXt's pooling) -> the Reshape it is: onnxruntime's layout transformation for the QNN provider aborts the
  process on a Reshape to 1-D, such a Gather back to 4-D and a Transpose after a Conv (a vector index assertion with
  onnxruntime 1.32 and onnxruntime-qnn 2.7.0; `tests/test_snapdragon.py` keeps the four-node graph).
- SiLU on narrow tall images -> a form QNN does not fuse (`split_narrow_silus`).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..graphs import static_shapes


def decompose_group_norm(model: onnx.ModelProto) -> int:
    """Replace every GroupNormalization node by its channels-last decomposition; returns how many were rewritten."""
    if not any(node.op_type == "GroupNormalization" for node in model.graph.node):
        return 0  # shape inference below serialises the model, which fails past protobuf's 2 GB
    shapes = static_shapes(model)
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    nodes, rewritten = [], 0
    for node in model.graph.node:
        shape = shapes.get(node.input[0], [])
        if node.op_type != "GroupNormalization" or len(shape) < 3 or not all(shape):
            nodes.append(node)
            continue
        attributes = {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}
        groups, epsilon = int(attributes["num_groups"]), float(attributes.get("epsilon", 1e-5))
        scale = numpy_helper.to_array(initializers[node.input[1]]).astype(np.float32)
        bias = numpy_helper.to_array(initializers[node.input[2]]).astype(np.float32)
        nodes += _channels_last_group_norm(model, node, shape, groups, epsilon, scale, bias)
        rewritten += 1
    if rewritten:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        used = {name for node in model.graph.node for name in node.input}
        kept = [tensor for tensor in model.graph.initializer if tensor.name in used]
        del model.graph.initializer[:]
        model.graph.initializer.extend(kept)
    return rewritten


def _channels_last_group_norm(model: onnx.ModelProto, node: onnx.NodeProto, shape: list[int], groups: int,
                              epsilon: float, scale: np.ndarray, bias: np.ndarray) -> list[onnx.NodeProto]:
    """Nodes computing `node` (input [N, C, *spatial]) with group statistics taken in channels-last layout."""
    batch, channels, spatial = shape[0], shape[1], shape[2:]
    if scale.size == groups and groups != channels:  # opset 18 semantics: one scale per group
        scale, bias = np.repeat(scale, channels // groups), np.repeat(bias, channels // groups)
    rank = len(shape)
    to_last = [0, *range(2, rank), 1]
    to_first = [0, rank - 1, *range(1, rank - 1)]
    prefix = f"{node.name or node.output[0]}/decomposed"
    constants = {
        "grouped_shape": np.array([batch, int(np.prod(spatial)), groups, channels // groups], dtype=np.int64),
        "channels_last_shape": np.array([batch, *spatial, channels], dtype=np.int64),
        "axes": np.array([1, 3], dtype=np.int64),
        "epsilon": np.array(epsilon, dtype=np.float32),
        "scale": scale,
        "bias": bias,
    }
    model.graph.initializer.extend(numpy_helper.from_array(value, f"{prefix}/{name}") for name, value in constants.items())

    def step(op: str, inputs: list[str], output: str, **attributes) -> onnx.NodeProto:
        names = [name if name == node.input[0] or "/" in name and name.startswith(prefix) else f"{prefix}/{name}"
                 for name in inputs]
        return helper.make_node(op, names, [output if output in node.output else f"{prefix}/{output}"],
                                name=f"{prefix}/{op}_{output}", **attributes)

    return [
        step("Transpose", [node.input[0]], "channels_last", perm=to_last),
        step("Reshape", ["channels_last", "grouped_shape"], "grouped"),
        step("ReduceMean", ["grouped", "axes"], "mean", keepdims=1),
        step("Sub", ["grouped", "mean"], "centered"),
        step("Mul", ["centered", "centered"], "squared"),
        step("ReduceMean", ["squared", "axes"], "variance", keepdims=1),
        step("Add", ["variance", "epsilon"], "variance_eps"),
        step("Sqrt", ["variance_eps"], "deviation"),
        step("Div", ["centered", "deviation"], "normalized"),
        step("Reshape", ["normalized", "channels_last_shape"], "ungrouped"),
        step("Mul", ["ungrouped", "scale"], "scaled"),
        step("Add", ["scaled", "bias"], "shifted"),
        step("Transpose", ["shifted"], node.output[0], perm=to_first),
    ]


HTP_TILE_WIDTH = 8  # QNN's HTP backend lays activations out in tiles 8 wide


def split_narrow_silus(model: onnx.ModelProto) -> int:
    """Write SiLU, x * Sigmoid(x), as (x * 0.5) * (Sigmoid(x) * 2) on image tensors at most one tile wide and more
    than one tall (W <= 8 < H). QNN fuses x * Sigmoid(x) into its SiLU kernel, which computes garbage there with
    16-bit activations on every HTP generation (tiny W8A16 UNet at 128x64: -0.9 dB against the CPU in emulation;
    a Conv -> SiLU at 16x8: -1.7 dB, at 16x9 and 8x16: 80 dB). The scaled form is equal in float, is not fused, and
    computes correctly (77.5 dB); elsewhere the fused kernel is kept."""
    shapes = static_shapes(model)
    sigmoids = {node.output[0]: node.input[0] for node in model.graph.node if node.op_type == "Sigmoid"}
    nodes, rewritten = [], 0
    for node in model.graph.node:
        gated = [name for name in node.input if sigmoids.get(name) in node.input]
        shape = shapes.get(node.input[0], [])
        if node.op_type != "Mul" or len(gated) != 1 or len(shape) != 4 or not shape[3] <= HTP_TILE_WIDTH < shape[2]:
            nodes.append(node)
            continue
        gate, value = gated[0], sigmoids[gated[0]]
        prefix = f"{node.name or node.output[0]}/split_silu"
        model.graph.initializer.extend([numpy_helper.from_array(np.array(0.5, np.float32), f"{prefix}/half"),
                                        numpy_helper.from_array(np.array(2.0, np.float32), f"{prefix}/two")])
        nodes += [helper.make_node("Mul", [value, f"{prefix}/half"], [f"{prefix}/half_value"], name=f"{prefix}/Mul_value"),
                  helper.make_node("Mul", [gate, f"{prefix}/two"], [f"{prefix}/twice_gate"], name=f"{prefix}/Mul_gate"),
                  helper.make_node("Mul", [f"{prefix}/half_value", f"{prefix}/twice_gate"], list(node.output), name=node.name)]
        rewritten += 1
    if rewritten:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    return rewritten


def reshape_identity_gathers(model: onnx.ModelProto) -> int:
    """Replace every Gather of computed values that takes each entry of its axis once, in order, by the Reshape to
    its output shape (a Gather of constants is onnxsim's to fold)."""
    constants = {tensor.name: tensor for tensor in model.graph.initializer}

    def taken_in_order(node: onnx.NodeProto) -> int:
        """How many entries the node gathers if it is such a Gather, else 0."""
        if node.op_type != "Gather" or node.input[0] in constants or node.input[1] not in constants:
            return 0
        indices = numpy_helper.to_array(constants[node.input[1]]).reshape(-1)
        return indices.size if indices.size > 1 and np.array_equal(indices, np.arange(indices.size)) else 0

    candidates = [(node, taken) for node in model.graph.node if (taken := taken_in_order(node))]
    if not candidates:
        return 0
    shapes = static_shapes(model)
    rewritten = 0
    for node, taken in candidates:
        shape, output_shape = shapes.get(node.input[0]), shapes.get(node.output[0])
        if not shape or not output_shape or not all(output_shape):
            continue
        axis = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0) % len(shape)
        if shape[axis] != taken:
            continue
        target = f"{node.name or node.output[0]}/shape"
        model.graph.initializer.append(numpy_helper.from_array(np.array(output_shape, np.int64), target))
        node.CopyFrom(helper.make_node("Reshape", [node.input[0], target], list(node.output), name=node.name))
        rewritten += 1
    return rewritten


REWRITES = {"group_norm": decompose_group_norm, "narrow_silu": split_narrow_silus,
            "identity_gather": reshape_identity_gathers}


def make_npu_friendly(model: onnx.ModelProto) -> dict[str, int]:
    """Apply every rewrite; returns the count per rewrite."""
    return {name: rewrite(model) for name, rewrite in REWRITES.items()}
