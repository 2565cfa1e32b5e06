"""Lookup tables stored in 8 bits in a float graph: the text encoder's token embeddings are a third of its
weights, yet each call reads only the rows of its 77 tokens.

A table becomes uint8 codes with one float16 scale per row (symmetric, zero point 128). The rows are gathered in
QDQ form (DequantizeLinear -> Gather -> QuantizeLinear -> DequantizeLinear with scale 1), which onnxruntime's QNN
execution provider compiles as an 8-bit Gather on the NPU, then multiplied by their gathered scales. Dequantizing
the whole table first would not compile (QNN cannot allocate the dequantized table).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

LOOKUP_TABLE_CHOICES = ("int8", "fp16")  # --lookup-tables: int8 rewrites, fp16 keeps them as the graph has them
FLOAT16_SCALES_OPSET = 19  # the first opset whose DequantizeLinear takes float16 scales
FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
MIN_TABLE_VALUES = 2**20  # CLIP's token table has 37.9 M values; position embeddings (59 k) stay as they are
CODE_OFFSET = 128  # uint8 code = round(value / row scale) + 128


def large_tables(model: onnx.ModelProto) -> set[str]:
    """The float tables of at least MIN_TABLE_VALUES values that the graph only looks rows up in (Gather, axis 0)."""
    tables = {tensor.name for tensor in model.graph.initializer if len(tensor.dims) == 2
              and tensor.data_type in FLOAT_TYPES and np.prod(tensor.dims) >= MIN_TABLE_VALUES}
    for node in model.graph.node:
        if not _is_row_lookup(node):
            tables -= set(node.input)
    return tables


def has_large_tables(model_path: Path) -> bool:
    return bool(large_tables(onnx.load(str(model_path), load_external_data=False)))


def store_lookup_tables_8bit(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` (float16) with every large table (`large_tables`) in 8 bits, moved to FLOAT16_SCALES_OPSET when it
    has one."""
    tables = large_tables(model)
    if not tables:
        return model
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < FLOAT16_SCALES_OPSET:  # before the rewrite: the converter would type the new nodes by the old opset
        model = onnx.version_converter.convert_version(model, FLOAT16_SCALES_OPSET)  # keeps the tensors' names
    for tensor in [tensor for tensor in model.graph.initializer if tensor.name in tables]:
        _replace_table(model, tensor)
    nodes = [rewritten for node in model.graph.node
             for rewritten in (_gather_rows(node) if node.input and node.input[0] in tables else [node])]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def _is_row_lookup(node: onnx.NodeProto) -> bool:
    return node.op_type == "Gather" and next((a.i for a in node.attribute if a.name == "axis"), 0) == 0


def quantize_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 codes and float16 per-row scales of a 2-D table (symmetric, 127 steps each side)."""
    scales = (np.abs(values).max(axis=1) / 127).astype(np.float16)
    safe = np.where(scales > 0, scales, 1).astype(np.float32)[:, None]
    codes = np.clip(np.round(values.astype(np.float32) / safe), -127, 127) + CODE_OFFSET
    return codes.astype(np.uint8), scales


def _replace_table(model: onnx.ModelProto, tensor: onnx.TensorProto) -> None:
    codes, scales = quantize_rows(numpy_helper.to_array(tensor))
    model.graph.initializer.remove(tensor)
    model.graph.initializer.extend([
        numpy_helper.from_array(codes, f"{tensor.name}.codes"),
        numpy_helper.from_array(scales, f"{tensor.name}.row_scales"),
        numpy_helper.from_array(np.array(1, np.float16), f"{tensor.name}.unit_scale"),
        numpy_helper.from_array(np.array(CODE_OFFSET, np.uint8), f"{tensor.name}.zero_point"),
        numpy_helper.from_array(np.array([-1], np.int64), f"{tensor.name}.last_axis"),
    ])


def _gather_rows(node: onnx.NodeProto) -> list[onnx.NodeProto]:
    """The rows `node` gathers, as code rows times their scales, into `node`'s output."""
    (table, indices), (output,) = node.input, node.output
    unit, zero = f"{table}.unit_scale", f"{table}.zero_point"
    name = node.name or output
    return [
        helper.make_node("DequantizeLinear", [f"{table}.codes", unit, zero], [f"{output}.table"], name=f"{name}.table"),
        helper.make_node("Gather", [f"{output}.table", indices], [f"{output}.code_rows"], name=name, axis=0),
        helper.make_node("QuantizeLinear", [f"{output}.code_rows", unit, zero], [f"{output}.codes"], name=f"{name}.codes"),
        helper.make_node("DequantizeLinear", [f"{output}.codes", unit, zero], [f"{output}.steps"], name=f"{name}.steps"),
        helper.make_node("Gather", [f"{table}.row_scales", indices], [f"{output}.scales"], name=f"{name}.scales", axis=0),
        helper.make_node("Unsqueeze", [f"{output}.scales", f"{table}.last_axis"], [f"{output}.row_scales"],
                         name=f"{name}.row_scales"),
        helper.make_node("Mul", [f"{output}.steps", f"{output}.row_scales"], [output], name=f"{name}.rows"),
    ]
