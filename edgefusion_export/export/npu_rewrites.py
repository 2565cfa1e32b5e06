"""Graph rewrites into forms the Hexagon NPU runs as one partition. Each is checked for parity by its caller.

- GroupNormalization (opset 18/21) -> Reshape, InstanceNormalization, Reshape, Mul, Add: QNN has no group norm,
  and its own splitting of the op cut the UNet into 57 NPU partitions (measured here).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def decompose_group_norm(model: onnx.ModelProto) -> int:
    """Replace every GroupNormalization node; returns how many were rewritten."""
    if not any(node.op_type == "GroupNormalization" for node in model.graph.node):
        return 0  # shape inference below serialises the model, which fails past protobuf's 2 GB
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {value.name: [dim.dim_value for dim in value.type.tensor_type.shape.dim]
              for value in [*inferred.graph.value_info, *inferred.graph.input]}
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    nodes, rewritten = [], 0
    for node in model.graph.node:
        shape = shapes.get(node.input[0], [])
        if node.op_type != "GroupNormalization" or len(shape) < 3 or not all(shape):
            nodes.append(node)
            continue
        attributes = {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}
        groups, epsilon = int(attributes["num_groups"]), float(attributes.get("epsilon", 1e-5))
        channels = shape[1]
        prefix = f"{node.name or node.output[0]}/decomposed"
        scale = numpy_helper.to_array(initializers[node.input[1]]).astype(np.float32)
        bias = numpy_helper.to_array(initializers[node.input[2]]).astype(np.float32)
        if scale.size == groups and groups != channels:  # opset 18 semantics: one scale per group
            scale, bias = np.repeat(scale, channels // groups), np.repeat(bias, channels // groups)
        broadcast = [channels] + [1] * (len(shape) - 2)
        constants = {
            f"{prefix}/grouped_shape": np.array([shape[0], groups, -1], dtype=np.int64),
            f"{prefix}/shape": np.array(shape, dtype=np.int64),
            f"{prefix}/ones": np.ones(groups, dtype=np.float32),
            f"{prefix}/zeros": np.zeros(groups, dtype=np.float32),
            f"{prefix}/scale": scale.reshape(broadcast),
            f"{prefix}/bias": bias.reshape(broadcast),
        }
        model.graph.initializer.extend(numpy_helper.from_array(value, name) for name, value in constants.items())
        nodes += [
            helper.make_node("Reshape", [node.input[0], f"{prefix}/grouped_shape"], [f"{prefix}/grouped"], name=f"{prefix}/Reshape_in"),
            helper.make_node("InstanceNormalization", [f"{prefix}/grouped", f"{prefix}/ones", f"{prefix}/zeros"],
                             [f"{prefix}/normalized"], name=f"{prefix}/InstanceNormalization", epsilon=epsilon),
            helper.make_node("Reshape", [f"{prefix}/normalized", f"{prefix}/shape"], [f"{prefix}/restored"], name=f"{prefix}/Reshape_out"),
            helper.make_node("Mul", [f"{prefix}/restored", f"{prefix}/scale"], [f"{prefix}/scaled"], name=f"{prefix}/Mul"),
            helper.make_node("Add", [f"{prefix}/scaled", f"{prefix}/bias"], list(node.output), name=f"{prefix}/Add"),
        ]
        rewritten += 1
    if rewritten:
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        used = {name for node in model.graph.node for name in node.input}
        kept = [tensor for tensor in model.graph.initializer if tensor.name in used]
        del model.graph.initializer[:]
        model.graph.initializer.extend(kept)
    return rewritten


REWRITES = {"group_norm": decompose_group_norm}


def make_npu_friendly(model: onnx.ModelProto) -> dict[str, int]:
    """Apply every rewrite; returns the count per rewrite."""
    return {name: rewrite(model) for name, rewrite in REWRITES.items()}
