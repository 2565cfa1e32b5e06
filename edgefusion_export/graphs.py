"""ONNX files as the passes read and write them, the static shapes of their tensors, and what each layer costs
(MACs and memory traffic). No torch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator

from .errors import UserError

MAC_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm"}
# Gates per step of each recurrent layer. onnxruntime's QNN provider unrolls an LSTM and a GRU, one Lstm or Gru op per
# time step and direction; it has no RNN builder.
RECURRENT_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
CPU_OPS = {"RNN"}  # ONNX ops that onnxruntime's QNN provider has no builder for: it leaves them to the CPU
# Ops it leaves to the CPU on data of a type the HTP does not take for them (their first input's), and the casts it
# does not build (from, to): each op loaded on each type in the installed provider (tests/test_profile.py). Raw 8-bit
# integers (an image, not quantized values) are not listed: on them most ops go to the CPU.
CPU_DATA_TYPES = {"Equal": {"bool"}, "GatherND": {"bool"}, "ScatterElements": {"bool"}, "Pad": {"bool", "int32"},
                  "Neg": {"int32"}}
CPU_CASTS = {("bool", "int64"), ("float32", "int64"), ("float16", "int64"), ("float16", "bool")}
# Activations the estimate folds into the MAC layer before them: its fitted accounting, not QNN's. Compiled for the
# HTP, QNN folds batch norm, and ReLU and clipping only when quantized; the rest run as ops of their own
# (benchmarks/fused_activations.py; counting them so fitted no better, see estimate_forms.py).
FUSED_ACTIVATIONS = {"Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
                     "BatchNormalization", "Gelu"}
VECTOR_KINDS = {"vector", "softmax"}
NORM_OPS = {"InstanceNormalization", "LayerNormalization", "GroupNormalization", "BatchNormalization"}
LOOKUP_OPS = {"Gather", "GatherElements", "GatherND"}
COPYING_OPS = {"Pad", "Slice", "Expand", "Tile"}  # free when their output is their input (`layer_costs`)
PASS_THROUGH_OPS = {"QuantizeLinear", "DequantizeLinear", "Cast", "Identity", "Reshape", "Transpose", "Squeeze",
                    "Unsqueeze", "Flatten"}
FREE_OPS = {"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Constant", "Shape", "QuantizeLinear",
            "DequantizeLinear", "Cast", "CastLike", "EPContext"}
# Bytes per (weight, activation) value on the NPU at each precision; float graphs run there in fp16.
NPU_BYTES = {"w8a16": (1, 2), "w8a16-mixed": (1, 2), "w8a8": (1, 1), "fp16": (2, 2), "fp32": (2, 2), "float": (2, 2)}
ACTIVATION_PRECISIONS = {"uint16": "w8a16", "int16": "w8a16", "uint8": "w8a8", "int8": "w8a8"}
CHANNEL_TILE = 32  # the HTP lays out and multiplies channels in blocks of 32
ONNX_DOMAINS = ("", "ai.onnx")


def graph_precision(model: onnx.ModelProto) -> str:
    """What a graph runs at on the NPU: a QDQ graph's activation type decides (w8a16, w8a8), else float. Rows gathered
    from an 8-bit table (quantize.lookup_tables) are stored values, not activations."""
    weights = {tensor.name: tensor for tensor in model.graph.initializer}
    stored = weights.keys() | {output for node in model.graph.node if node.op_type in LOOKUP_OPS for output in node.output}
    for node in model.graph.node:  # an activation's QuantizeLinear: its zero point's type is the activations'
        if node.op_type == "DynamicQuantizeLinear":  # quantizes activations to uint8 as they come
            return "w8a8"
        if node.op_type == "QuantizeLinear" and node.input[0] not in stored and len(node.input) > 2:
            zero_point = weights.get(node.input[2])
            if zero_point is not None:
                name = onnx.helper.tensor_dtype_to_np_dtype(zero_point.data_type).name
                return ACTIVATION_PRECISIONS.get(name, "float")
    return "float"


def load_full(path: Path) -> onnx.ModelProto:
    """A model with its external weights loaded."""
    return onnx.load(str(path), load_external_data=True)


def save_model(model: onnx.ModelProto, path: Path) -> Path:
    """Save with all weights in one external data file beside the graph, without tool metadata_props. A data file
    already there is replaced (onnx appends to it)."""
    del model.metadata_props[:]
    (path.parent / f"{path.name}.data").unlink(missing_ok=True)
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=f"{path.name}.data", size_threshold=1024)
    return path


@dataclass(frozen=True)
class ShapedGraph:
    """A graph at fixed input shapes, as a compiler sees it: each `If` whose condition is shape arithmetic replaced
    by the branch it takes, the inferred type of every value, and the shape arithmetic, which folds to constants."""

    model: onnx.ModelProto
    types: dict[str, onnx.TypeProto.Tensor]
    folded: set[str]
    dynamic_inputs_as_1: list[str] = field(default_factory=list)  # inputs with a dimension neither fixed nor given
    read_as_qdq: dict[str, int] = field(default_factory=dict)  # quantized operators (`as_qdq`), by count

    def shapes(self, float_only: bool = False) -> dict[str, list[int]]:
        """Fully known shapes of the graph's values (inputs, outputs and inferred intermediates), by name."""
        shapes = {}
        for name, tensor_type in self.types.items():
            dims = [dim.dim_value for dim in tensor_type.shape.dim]
            if dims and all(dims) and (not float_only or tensor_type.elem_type == onnx.TensorProto.FLOAT):
                shapes[name] = dims
        return shapes


def load_shaped(model_path: Path, input_shapes: Mapping[str, list[int]] | None = None) -> ShapedGraph:
    """A graph file (its weights not loaded) with its inputs at `input_shapes` where given; a dynamic dimension not
    given counts as 1."""
    model = onnx.load(str(model_path), load_external_data=False)
    dynamic = fix_input_shapes(model, input_shapes)
    return replace(shaped(model), dynamic_inputs_as_1=dynamic)


def static_shapes(model: onnx.ModelProto, float_only: bool = False) -> dict[str, list[int]]:
    """Fully known shapes of the graph's values (inputs, outputs and inferred intermediates), by name."""
    return shaped(model).shapes(float_only)


def uncosted_layers(graph: ShapedGraph) -> dict[str, int]:
    """Op types (with their domain when not ONNX's), by count, of the layers whose work `layer_costs` cannot know:
    control flow left after `shaped` (it does not walk subgraphs) and layers with an output whose shape is not
    inferred."""

    def known(name: str) -> bool:
        tensor_type = graph.types.get(name)
        return tensor_type is not None and tensor_type.HasField("shape") and all(
            dim.HasField("dim_value") for dim in tensor_type.shape.dim)

    def uncosted(node: onnx.NodeProto) -> bool:
        return not _free(node, graph.folded) and (_has_subgraphs(node) or not all(map(known, filter(None, node.output))))

    return op_types(node for node in graph.model.graph.node if uncosted(node))


def cpu_layers(graph: ShapedGraph) -> dict[str, int]:
    """Op types, by count, of the layers onnxruntime's QNN provider runs on the CPU: the quantized operators it does not
    compile (`read_as_qdq`), the ops it has no builder for, the Einsum equations it does not build as a MatMul and ops
    on data of a type the HTP does not take for them. The estimate costs them on the NPU all the same."""
    quantized = {op: count for op, count in graph.read_as_qdq.items()
                 if not QUANTIZED_OPERATORS[op.rsplit(".", 1)[-1]].on_npu}

    def data_type(names: Sequence[str]) -> str | None:  # of the first of `names`
        tensor_type = graph.types.get(names[0]) if names else None
        known = tensor_type is not None and tensor_type.elem_type != onnx.TensorProto.UNDEFINED
        return onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name if known else None

    def unbuilt(node: onnx.NodeProto) -> bool:
        if node.domain not in ONNX_DOMAINS or graph.folded.issuperset(filter(None, node.output)):
            return False
        if node.op_type == "Cast":
            return (data_type(node.input), data_type(node.output)) in CPU_CASTS
        return node.op_type in CPU_OPS or data_type(node.input) in CPU_DATA_TYPES.get(node.op_type, ()) or \
            node.op_type == "Einsum" and not _einsum_as_matmul(_equation(node))

    return dict(sorted((quantized | op_types(filter(unbuilt, graph.model.graph.node))).items()))


def _einsum_as_matmul(equation: str) -> bool:
    """Whether onnxruntime's QNN provider builds this Einsum (its rule, checked against the installed provider): two
    operands of two or more letters each, the result written out, that multiply the last two dimensions as a MatMul
    (`bhqk,bhkd->bhqd`), or with the second transposed (`bhqd,bhkd->bhqk`), broadcast over the first (`bhwc,hkc->bhwk`)
    or with all three transposed around a dimension between (`bchq,bkhc->bkhq`)."""
    terms, arrow, result = equation.replace(" ", "").partition("->")
    first, _, second = terms.partition(",")
    if not arrow or not all(len(term) >= 2 and term.isascii() and term.isalpha() for term in (first, second, result)):
        return False
    if len(first) == len(second) == len(result):
        (m, k), (k2, n), (m2, n2) = first[-2:], second[-2:], result[-2:]
        matmul = first[:-2] == second[:-2] == result[:-2] and m == m2 and (k == k2 and n == n2 or k == n and k2 == n2)
        transposed = len(first) == 4 and first[0] == second[0] == result[0] and first[3] == result[3] \
            and first[1] == second[3] and second[1] == result[1]
        return matmul or transposed
    return (len(first), len(second), len(result)) == (4, 3, 4) and first[:2] == result[:2] and second[0] == first[1] \
        and first[2] == result[2] and first[3] == second[2] and second[1] == result[3]


def op_types(nodes: Iterable[Any]) -> dict[str, int]:
    """Op types (with their domain when not ONNX's), by count, of ONNX nodes or of anything with their `domain` and
    `op_type` (onnxruntime's record of where it placed each node)."""
    found = Counter(node.op_type if node.domain in ONNX_DOMAINS else f"{node.domain}.{node.op_type}" for node in nodes)
    return dict(sorted(found.items()))


def shaped(model: onnx.ModelProto) -> ShapedGraph:
    """The graph with its shapes inferred. Values computed from shapes (Shape, Gather, Concat into a Reshape, as
    torch exports `x.shape` and `chunk`) are evaluated and inference repeated with them, until no more are found;
    then each `If` whose condition is known is replaced by the branch it takes, and all of it repeated. onnx's data
    propagation covers some of those ops within one round (SD-1.5's UNet exported with dynamic axes takes 6 s with
    it, 50 s without). Quantized operators are read as the float operators they compute (`as_qdq`)."""
    read_as_qdq = op_types(filter(quantized_operator, model.graph.node))
    model = as_qdq(model)
    light, values, branches_taken = _shapes_only(model), {}, False
    while True:
        computed = _shape_arithmetic(light)
        constants = _constant_values(light) if computed else {}  # a graph without shape arithmetic takes one round
        while True:
            inferred = onnx.shape_inference.infer_shapes(_with_values(light, values), data_prop=True)
            types = {value.name: value.type.tensor_type
                     for value in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
            found = _evaluate_shape_arithmetic(light, computed, types, constants | values)
            if not found:
                break
            values |= found
        inlined = _inline_taken_branches(light, values)
        if inlined is None:
            break
        light, branches_taken = inlined, True
    if branches_taken:
        weights = {tensor.name for tensor in model.graph.initializer}
        model = _rebuilt(model, light.graph.node, model.graph.input, [
            *model.graph.initializer, *(tensor for tensor in light.graph.initializer if tensor.name not in weights)])
    return ShapedGraph(model, types | {name: onnx.helper.make_tensor_type_proto(
        onnx.helper.np_dtype_to_tensor_dtype(value.dtype), value.shape).tensor_type for name, value in values.items()},
        _shape_arithmetic(model), read_as_qdq=read_as_qdq)


@dataclass(frozen=True)
class QuantizedOperator:
    """An operator on quantized values (onnxruntime's QOperator format, or its dynamic quantization) and the float
    operator it computes."""

    float_op: str
    inputs: tuple[int, ...]  # positions of its quantized inputs, and of an int32 bias
    domains: tuple[str, ...] = ("com.microsoft",)  # onnxruntime's own ops
    on_npu: bool = False  # whether onnxruntime's QNN provider compiles it for the NPU (else it runs on the CPU)

    def quantized_inputs(self, node: onnx.NodeProto) -> tuple[int, ...]:
        return tuple(range(2, len(node.input), 3)) if self.float_op == "Concat" else self.inputs


QUANTIZED_OPERATORS = {
    "QLinearConv": QuantizedOperator("Conv", (0, 3, 8), domains=ONNX_DOMAINS, on_npu=True),
    "QLinearMatMul": QuantizedOperator("MatMul", (0, 3), domains=ONNX_DOMAINS, on_npu=True),
    "ConvInteger": QuantizedOperator("Conv", (0, 1), domains=ONNX_DOMAINS),  # dynamic quantization's
    "MatMulInteger": QuantizedOperator("MatMul", (0, 1), domains=ONNX_DOMAINS),
    "QLinearAdd": QuantizedOperator("Add", (0, 3)),
    "QLinearMul": QuantizedOperator("Mul", (0, 3)),
    "QGemm": QuantizedOperator("Gemm", (0, 3, 6)),
    "QLinearConcat": QuantizedOperator("Concat", ()),  # its inputs: (value, scale, zero point) after the output's
    **{f"QLinear{op}": QuantizedOperator(op, (0,)) for op in (
        "Sigmoid", "LeakyRelu", "Softmax", "GlobalAveragePool", "AveragePool")}}


def quantized_operator(node: onnx.NodeProto) -> QuantizedOperator | None:
    operator = QUANTIZED_OPERATORS.get(node.op_type)
    return operator if operator and node.domain in operator.domains else None


def as_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with each quantized operator written as the float operator it computes between free conversions,
    as a QDQ graph has it and as QNN compiles a QLinearConv and a QLinearMatMul (its execution provider makes a Conv2d
    and a MatMul or FullyConnected of them): its quantized inputs cast to float, then the float operator in its
    place (the node's name, attributes and output). A graph to read shapes and costs from, not to run: the scales
    and zero points, which change neither, are left out."""
    if not any(map(quantized_operator, model.graph.node)):
        return model
    nodes = []
    for node in model.graph.node:
        operator = quantized_operator(node)
        if operator is None:
            nodes.append(node)
            continue
        quantized = [i for i in operator.quantized_inputs(node) if i < len(node.input) and node.input[i]]  # bias optional
        inputs = [f"{node.name}/input_{i}/float" for i in quantized]
        nodes += [onnx.helper.make_node("Cast", [node.input[i]], [name], name=name, to=onnx.TensorProto.FLOAT)
                  for i, name in zip(quantized, inputs)]
        nodes.append(onnx.helper.make_node(operator.float_op, inputs, node.output[:1], name=node.name))
        nodes[-1].attribute.extend(node.attribute)
    return _rebuilt(model, nodes, model.graph.input, model.graph.initializer)


def _inline_taken_branches(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> onnx.ModelProto | None:
    """The graph with each `If` whose condition is in `values` replaced by the nodes of the branch it takes (and an
    Identity from each branch output to the If's), as onnxsim folds it; None if there is no such If."""
    nodes, initializers, taken_any = [], list(model.graph.initializer), False
    for node in model.graph.node:
        if node.op_type != "If" or node.input[0] not in values:
            nodes.append(node)
            continue
        taken_any = True
        taken = "then_branch" if values[node.input[0]].item() else "else_branch"
        branch = next(attribute.g for attribute in node.attribute if attribute.name == taken)
        nodes += [*branch.node, *(onnx.helper.make_node("Identity", [result.name], [name], f"{node.name}/{name}")
                                  for result, name in zip(branch.output, node.output))]
        initializers += branch.initializer
    return _rebuilt(model, nodes, model.graph.input, initializers) if taken_any else None


def _has_subgraphs(node: onnx.NodeProto) -> bool:
    """Control flow (If, Loop, Scan): a node that runs graphs of its own."""
    return any(attribute.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for attribute in node.attribute)


def _shape_arithmetic(model: onnx.ModelProto) -> set[str]:
    """Values computed from tensor shapes and constants alone (a graph exported with dynamic axes computes its
    Reshapes' shapes with Shape, Gather, Concat...): fixed numbers once the input shapes are, which compilers fold.
    Constants are Constant nodes and the initializers that `_is_arithmetic_constant`."""
    constants = {tensor.name for tensor in model.graph.initializer if _is_arithmetic_constant(tensor)} | {
        output for node in model.graph.node if node.op_type == "Constant" for output in node.output}
    return _computed_from(model, constants, sources=("Shape", "Size"))


def _computed_from(model: onnx.ModelProto, known: set[str], sources: Collection[str]) -> set[str]:
    """The outputs of the nodes that read `known` values alone, or what they compute, and of the `sources` op types,
    in graph order. Control flow is not: its branches may read any value."""
    computed: set[str] = set()
    for node in model.graph.node:
        inputs = [name for name in node.input if name]
        if node.op_type in sources or (
                inputs and all(name in computed or name in known for name in inputs) and not _has_subgraphs(node)):
            computed.update(name for name in node.output if name)
    return computed


def _is_arithmetic_constant(tensor: onnx.TensorProto) -> bool:
    """An initializer that shape arithmetic may read: int64 (indices and shapes) or a scalar of any type (torch.export
    writes `x.shape[2] / 2` with a float one), not a weight."""
    return tensor.data_type == onnx.TensorProto.INT64 or int(np.prod(tensor.dims)) <= 1


def _free(node: onnx.NodeProto, folded: set[str]) -> bool:
    """A node that costs nothing: a reshape, a cast, Q/DQ..., or shape arithmetic (`folded`)."""
    return node.op_type in FREE_OPS or folded.issuperset(filter(None, node.output))


def _constant_values(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """What shape arithmetic reads besides shapes: its constants among the initializers stored in the graph, and
    Constant nodes."""
    values = {tensor.name: onnx.numpy_helper.to_array(tensor) for tensor in model.graph.initializer
              if _is_arithmetic_constant(tensor) and tensor.data_location != onnx.TensorProto.EXTERNAL}
    for node in model.graph.node:
        if node.op_type == "Constant":
            values |= _small_results(model, node, {})
    return values


def _evaluate_shape_arithmetic(model: onnx.ModelProto, computed: set[str], types: dict[str, onnx.TypeProto.Tensor],
                               known: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The values of shape arithmetic (`computed`) not yet `known` that can be computed now: from the inferred shapes
    that its Shape nodes read and from what is known."""
    known, found = dict(known), {}
    for node in model.graph.node:
        inputs, outputs = set(filter(None, node.input)), set(filter(None, node.output))
        if not computed.issuperset(outputs) or known.keys() >= outputs:
            continue
        feeds = {name: known[name] for name in inputs if name in known}
        if node.op_type in ("Shape", "Size") and (tensor_type := types.get(node.input[0])) is not None:
            dims = [dim.dim_value for dim in tensor_type.shape.dim]
            if dims and all(dims):
                feeds[node.input[0]] = np.broadcast_to(np.zeros((), np.float32), dims)  # its shape, without the memory
        if feeds.keys() == inputs:
            found |= _small_results(model, node, feeds)
            known |= found
    return found


def _small_results(model: onnx.ModelProto, node: onnx.NodeProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The node's outputs from `feeds`, evaluated at the model's opsets, that are small (shapes and indices, not the
    tensors a ConstantOfShape fills); none if the reference evaluator lacks the op."""
    graph = onnx.helper.make_graph(
        [node], "shape_arithmetic",
        [onnx.helper.make_tensor_value_info(name, onnx.helper.np_dtype_to_tensor_dtype(value.dtype), None)
         for name, value in feeds.items()],
        [onnx.helper.make_empty_tensor_value_info(name) for name in node.output])
    try:
        results = ReferenceEvaluator(onnx.helper.make_model(graph, opset_imports=model.opset_import)).run(None, feeds)
    except Exception:  # its outputs stay unknown, and the layers that need them are reported as not costed
        return {}
    return {name: np.asarray(value) for name, value in zip(node.output, results) if np.size(value) <= 2**16}


def _with_values(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The graph with `values` as constants in place of the nodes that compute them. Their annotations go too: an
    exporter's type for a value (torch.export's, in its symbols for the dynamic dimensions) would stand for the
    constant's in inference."""
    if not values:
        return model
    return _rebuilt(model, [node for node in model.graph.node if not values.keys() >= set(node.output)],
                    model.graph.input,
                    [*model.graph.initializer, *(onnx.numpy_helper.from_array(value, name) for name, value in values.items())],
                    [value for value in model.graph.value_info if value.name not in values])


def _shapes_only(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph with its large weights as typed inputs: shape inference serialises the model, which protobuf
    refuses over 2 GB (SD-1.5's UNet in float), and copying gigabytes only to read shapes is waste."""
    large = [tensor for tensor in model.graph.initializer if tensor.ByteSize() > 2**16]
    if not large:
        return model
    stand_ins = [onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)) for tensor in large]
    return _rebuilt(model, model.graph.node, [*model.graph.input, *stand_ins],
                    [tensor for tensor in model.graph.initializer if tensor.ByteSize() <= 2**16])


def _rebuilt(model: onnx.ModelProto, nodes: Iterable[onnx.NodeProto], inputs: Iterable[onnx.ValueInfoProto],
             initializers: Iterable[onnx.TensorProto],
             value_info: Iterable[onnx.ValueInfoProto] | None = None) -> onnx.ModelProto:
    """The model with its graph's nodes, inputs and initializers replaced (and its value types, where given); its
    outputs, opsets and functions kept."""
    graph = onnx.helper.make_graph(nodes, model.graph.name, inputs, model.graph.output, initializers,
                                   value_info=model.graph.value_info if value_info is None else value_info)
    rebuilt = onnx.helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    rebuilt.functions.extend(model.functions)
    return rebuilt


@dataclass(frozen=True)
class LayerCost:
    name: str
    op_type: str
    macs: int
    weight_bytes: int
    activation_bytes: int  # activations larger than VTCM, read and written by the layer
    # "dense" (Conv, MatMul, Gemm, ConvTranspose with weights), "dynamic" (a MatMul of two activations, as in
    # attention), "grouped" (depthwise Conv: one input channel per group), "softmax", "vector" (other computation),
    # "fused" (an activation folded into the MAC layer before it, a constant epilogue of a MAC layer or a norm),
    # "in_place" (Concat, Split, Slice: written in place)
    kind: str = "vector"
    elements: int = 0  # values the layer writes
    dispatches: int = 1  # ops it runs as: none for a layer QNN runs inside another (a fused activation, a link of an
                         # elementwise chain: GELU's Div-Erf-Add-Mul-Mul, a decomposed norm), one per step of a
                         # recurrent layer
    tiled_elements: int = 0  # the values of the image tensors it writes, in the HTP's tiled layout (channels padded
                             # to 32, height to 8, width to 4); HTP emulation's time follows the values written
    untiled_elements: int = 0  # the values it writes to other tensors (token sequences, attention scores)


def parse_input_shape(text: str) -> tuple[str, list[int]]:
    """'x=1,3,512,512' -> ('x', [1, 3, 512, 512]); a one-line UserError for anything else."""
    name, _, dims = text.rpartition("=")
    try:
        shape = [int(dim) for dim in dims.split(",")]
    except ValueError:
        shape = []
    if not name or not shape or min(shape) < 1:
        raise UserError(f"input shape {text!r} is not NAME=DIM,DIM,...; use e.g. sample=1,4,64,64")
    return name, shape


def graph_inputs(model: onnx.ModelProto) -> list[str]:
    """The names of the values a graph is fed (not its initializers, which older models list as inputs too)."""
    initializers = {tensor.name for tensor in model.graph.initializer}
    return [value.name for value in model.graph.input if value.name not in initializers]


def fix_input_shapes(model: onnx.ModelProto, given: Mapping[str, list[int]] | None = None) -> list[str]:
    """Set the graph inputs' shapes: those `given`, whose fixed dimensions must agree with the graph's, then every
    dimension still not a fixed number to 1 (a batch). Returns the inputs that had a dimension set to 1."""
    fed = graph_inputs(model)
    inputs = {value.name: value for value in model.graph.input if value.name in fed}
    for name, shape in (given or {}).items():
        if name not in inputs:
            raise UserError(f"the graph has no input {name!r} (its inputs: {', '.join(inputs)})")
        tensor_type = inputs[name].type.tensor_type
        if not tensor_type.HasField("shape"):  # not even its rank is known
            tensor_type.shape.dim.extend(onnx.TensorShapeProto.Dimension() for _ in shape)
        dims = tensor_type.shape.dim
        written = "x".join(str(dim.dim_value) if dim.dim_value > 0 else dim.dim_param or "?" for dim in dims)
        if len(shape) != len(dims) or any(dim.dim_value > 0 and dim.dim_value != size for dim, size in zip(dims, shape)):
            raise UserError(f"input {name!r} is {written}; {'x'.join(map(str, shape))} does not fit its fixed dimensions")
        for dim, size in zip(dims, shape):
            dim.dim_value = size
    names = []
    for name, value in inputs.items():
        unknown = [dim for dim in value.type.tensor_type.shape.dim if not dim.HasField("dim_value") or dim.dim_value <= 0]
        for dim in unknown:
            dim.dim_value = 1
        if unknown:
            names.append(name)
    return names


def layer_costs(graph: ShapedGraph, precision: str, vtcm_bytes: int) -> list[LayerCost]:
    """MACs and DDR traffic of every non-free node of a graph (its weights need not be loaded)."""
    model = graph.model
    shapes = {tensor.name: list(tensor.dims) for tensor in model.graph.initializer} | graph.shapes()
    producer = {output: node for node in model.graph.node for output in node.output}
    weights = _stored_values(model)

    def weight_source(name: str) -> str | None:
        """The input itself if it is a stored weight: an initializer, or a value computed from them alone (a
        DequantizeLinear or a Transpose of one; an Identity, through which torch feeds equal tensors it stores once)."""
        return name if name in weights else None

    shape_keeping = ("QuantizeLinear", "DequantizeLinear", "Cast", "Identity")
    consumer = {name: node for node in model.graph.node if node.op_type in shape_keeping for name in node.input[:1]}

    def shape_of(name: str) -> list[int]:
        """Static shape, looking through Q/DQ, casts and identities (they keep their input's shape) backwards, then
        forwards."""
        for step in (lambda n: producer[n].input[0] if n in producer and producer[n].op_type in shape_keeping else None,
                     lambda n: consumer[n].output[0] if n in consumer else None):
            current = name
            while current is not None and current not in shapes:
                current = step(current)
            if current is not None:
                return shapes[current]
        return []

    def computed_by(name: str, through: Collection[str] = shape_keeping) -> onnx.NodeProto | None:
        """The node that computes a value, looking back through `through` (Q/DQ, casts and identities unless given)."""
        node = producer.get(name)
        while node is not None and node.op_type in through:
            node = producer.get(node.input[0])
        return node

    def copies(node: onnx.NodeProto) -> bool:
        """A Pad, Slice, Expand or Tile whose output is its input: the same shape, and a Slice's steps forward (a
        step of -1 reverses). Compilers drop it, as onnxsim does (timm's Swin pads its windows by nothing at 224)."""
        shape = shape_of(node.input[0]) if node.op_type in COPYING_OPS else []
        if not shape or shape != shape_of(node.output[0]):
            return False
        steps = node.input[4] if node.op_type == "Slice" and len(node.input) > 4 else ""
        values = _constant_value(model, steps, producer) if steps else np.ones(1)
        return values.size > 0 and bool(np.all(values > 0))

    not_images = attention_tensors(model)
    norms = _written_out_layer_norms(model, producer)
    norm_links = set().union(*norms.values())
    # fused so far: activations (an activation of one fuses too) and constant epilogues, by the layer they join
    activations: set[str] = set()
    epilogues: dict[str, set[str]] = {"mac": set(), "norm": set()}

    def epilogue_of(node: onnx.NodeProto) -> str | None:
        """The layer ("mac" or "norm") that an Add or Mul of a per-channel constant (one value per channel of the
        last or the second axis) joins: a MAC layer with weights or a norm that writes its other input, or whatever
        an epilogue before it joined.
        QNN's converter squashes it into the layer (a MatMul's or a Conv's bias, a FullyConnected's or a norm's
        scale; `validate_eltwise_pattern`), and AI Hub's published op counts for SD's decoders leave no room for a
        GroupNorm's scale and shift as ops of their own; onnxruntime-qnn runs them as ops at W8A16, and a
        GroupNorm's in FP16 too (benchmarks/fused_activations.py)."""
        output = shape_of(node.output[0])
        for constant, value in ((node.input[1], node.input[0]), (node.input[0], node.input[1])):
            stored, source = weight_source(constant), computed_by(value, PASS_THROUGH_OPS)
            if stored is None or source is None or not _per_channel(shapes.get(stored, []), output):
                continue
            if source.name in epilogues["mac"] or (source.op_type in MAC_OPS
                                                   and any(map(weight_source, source.input[1:]))):
                return "mac"
            if source.name in epilogues["norm"] or source.op_type in NORM_OPS or source.name in norms:
                return "norm"
        return None

    def is_fused(node: onnx.NodeProto) -> bool:
        """An activation of a MAC layer's output (or of an activation fused into one); SiLU's x * sigmoid(x) and
        hard-swish's x * hardsigmoid(x) too (opset 13 and onnxruntime's QNN pre-processing write it so); a constant
        epilogue of a MAC layer or a norm."""
        if node.op_type in ("Add", "Mul") and len(node.input) == 2 and (layer := epilogue_of(node)) is not None:
            epilogues[layer].add(node.name)
            return True
        fuses = False
        if node.op_type in FUSED_ACTIVATIONS:
            source = computed_by(node.input[0])
            fuses = source is not None and (source.op_type in MAC_OPS
                                            or source.name in activations | epilogues["mac"])
        elif node.op_type == "Mul" and len(node.input) == 2:
            first, second = (computed_by(name) for name in node.input)
            fuses = any(gate is not None and gate.name in activations and gate.op_type in ("Sigmoid", "HardSigmoid")
                        and value is not None and computed_by(gate.input[0]) is value
                        for gate, value in ((first, second), (second, first)))
        if fuses:
            activations.add(node.name)
        return fuses

    weight_bytes, activation_bytes = NPU_BYTES[precision]
    vector_elements: dict[str, int] = {}
    costs = []
    for node in model.graph.node:
        if _free(node, graph.folded) or weights.issuperset(node.output) or copies(node):
            continue
        outputs = {name: shape_of(name) for name in node.output}
        output = outputs[node.output[0]]
        macs, steps = 0, 1
        kind = {"Concat": "in_place", "Split": "in_place", "Slice": "in_place", "Softmax": "softmax"}.get(node.op_type, "vector")
        if node.name in norm_links or is_fused(node):
            kind = "fused"
        kernel = shape_of(weight_source(node.input[1]) or node.input[1]) if len(node.input) > 1 else None
        if node.op_type == "Conv" and output and kernel:
            # kernel: [Cout, Cin/groups, kh, kw]. A grouped Conv that is not depthwise runs on the MAC array with
            # each group's input channels padded to a channel block (QNN's HTP costs a 4-group Conv of 32 channels
            # as the dense one, and 8 groups of 32 channels at an eighth of the dense one)
            groups = _groups(node)
            depthwise = groups > 1 and kernel[1] == 1
            depth = kernel[1] if depthwise else min(round_up(kernel[1], CHANNEL_TILE), kernel[1] * groups)
            macs = int(np.prod(output)) * depth * int(np.prod(kernel[2:]))
            kind = "grouped" if depthwise else "dense"
        elif node.op_type == "ConvTranspose" and output and kernel:
            macs = int(np.prod(shape_of(node.input[0]))) * int(np.prod(kernel[1:]))  # kernel: [Cin, Cout/groups, kh, kw]
            kind = "dense"
        elif node.op_type in ("MatMul", "Gemm") and output and shape_of(node.input[0]):
            transposed = node.op_type == "Gemm" and any(a.name == "transA" and a.i for a in node.attribute)
            macs = int(np.prod(output)) * shape_of(node.input[0])[0 if transposed else -1]
            kind = "dense" if any(weight_source(name) for name in node.input[:2]) else "dynamic"
        elif node.op_type == "Einsum" and len(node.input) == 2 and output and all(map(shape_of, node.input)):
            macs = _einsum_macs(_equation(node), [shape_of(name) for name in node.input], output)
            kind = "dense" if any(map(weight_source, node.input)) else "dynamic"
        elif node.op_type in RECURRENT_GATES and kernel and (sequence := shape_of(node.input[0])):
            # kernel (W): [directions, gates * hidden, input]; X: [steps, batch, input], or [batch, steps, input]
            # with layout 1
            directions, gate_rows, width = kernel
            batch_first = any(a.name == "layout" and a.i for a in node.attribute)
            (batch, steps) = sequence[:2] if batch_first else sequence[1::-1]
            macs = directions * steps * batch * gate_rows * (width + gate_rows // RECURRENT_GATES[node.op_type])
            steps *= directions
            kind = "dense"
        weight_traffic = activation_traffic = 0
        for name in node.input:
            source = weight_source(name)
            if source is not None and node.op_type in LOOKUP_OPS:  # reads the rows it gathers, not the table
                weight_traffic += int(np.prod(output or [0])) * weight_bytes
            elif source is not None:
                weight_traffic += int(np.prod(shapes.get(source, [0]))) * weight_bytes
            elif shape := shape_of(name):
                size = int(np.prod(shape)) * activation_bytes
                activation_traffic += size if size > vtcm_bytes else 0
        for shape in outputs.values():
            size = int(np.prod(shape or [0])) * activation_bytes
            activation_traffic += size if size > vtcm_bytes else 0
        elements = sum(int(np.prod(shape or [0])) for shape in outputs.values())
        images = [shape for name, shape in outputs.items() if name not in not_images and len(shape) == 4]
        tiled = sum(tiled_size(shape) for shape in images)
        untiled = elements - sum(int(np.prod(shape)) for shape in images)
        norm_input = producer[node.input[0]].input[0] if node.name in norms else None  # the Sub's x, as a norm reads it
        source = computed_by(norm_input or node.input[0]) if node.input else None
        chained = kind in VECTOR_KINDS and source is not None and source.name in vector_elements \
            and vector_elements[source.name] == elements
        if kind in VECTOR_KINDS:
            vector_elements[node.name] = elements
        costs.append(LayerCost(node.name, node.op_type, macs, weight_traffic, activation_traffic, kind, elements,
                               dispatches=0 if kind == "fused" or chained else steps, tiled_elements=tiled,
                               untiled_elements=untiled))
    return costs


LAYOUT_AND_MAC_OPS = {"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Conv", "ConvTranspose", "Gemm"}


def attention_tensors(model: onnx.ModelProto) -> set[str]:
    """What MatMuls and softmax write and elementwise ops make of it (attention scores [N, heads, tokens, tokens]):
    4-D tensors that QNN does not lay out as images."""
    attention: set[str] = set()
    for node in model.graph.node:
        if node.op_type in ("MatMul", "Softmax") or (
                node.op_type not in LAYOUT_AND_MAC_OPS and any(name in attention for name in node.input)):
            attention.update(node.output)
    return attention


def tiled_size(shape: list[int]) -> int:
    """Values of an image tensor [N, C, H, W] in the HTP's tiled layout (channels padded to 32, height to 8, width
    to 4); 0 for other ranks."""
    if len(shape) != 4:
        return 0
    return shape[0] * round_up(shape[1], CHANNEL_TILE) * round_up(shape[2], 8) * round_up(shape[3], 4)


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _per_channel(constant: list[int], output: list[int]) -> bool:
    """Whether a constant broadcast onto `output` holds one value per channel of its last or second axis."""
    if not output or len(constant) > len(output):
        return False
    aligned = [1] * (len(output) - len(constant)) + list(constant)
    wide = [axis for axis, size in enumerate(aligned) if size != 1]
    return len(wide) == 1 and wide[0] in (1, len(output) - 1) and aligned[wide[0]] == output[wide[0]]


def _written_out_layer_norms(model: onnx.ModelProto,
                             producer: Mapping[str, onnx.NodeProto]) -> dict[str, set[str]]:
    """Layer norms written out in elementwise ops, as exporters write them below opset 17 (which has no
    LayerNormalization): (x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) over the last axis, by the name of its
    last op (the Div) and with the names of the six before it. onnxruntime's QNN provider fuses the seven into one
    LayerNorm op (its `LayerNormFusion`), so the estimate costs them as the LayerNormalization they stand for."""
    readers = Counter(name for node in model.graph.node for name in node.input)

    def made_by(name: str, op_type: str) -> onnx.NodeProto | None:
        node = producer.get(name)
        return node if node is not None and node.op_type == op_type and node.name else None

    def last_axis_mean(name: str) -> onnx.NodeProto | None:
        """The ReduceMean over the last axis (given as an attribute, or from opset 18 as an input) that computes it."""
        node = made_by(name, "ReduceMean")
        if node is None:
            return None
        axes = [list(a.ints) for a in node.attribute if a.name == "axes"] or [
            _constant_value(model, node.input[1], producer).tolist() if len(node.input) > 1 else []]
        return node if axes == [[-1]] else None

    norms = {}
    for div in model.graph.node:
        if div.op_type != "Div" or not div.name:
            continue
        centred = made_by(div.input[0], "Sub")
        root = made_by(div.input[1], "Sqrt")
        shifted = root and made_by(root.input[0], "Add")
        variance = shifted and (last_axis_mean(shifted.input[0]) or last_axis_mean(shifted.input[1]))
        square = variance and made_by(variance.input[0], "Pow")
        mean = centred and last_axis_mean(centred.input[1])
        links = [mean, centred, square, variance, shifted, root]
        if all(links) and square.input[0] == div.input[0] and mean.input[0] == centred.input[0] and \
                readers[div.input[0]] == 2 and all(readers[link.output[0]] == 1 for link in links if link is not centred):
            norms[div.name] = {link.name for link in links}
    return norms


def _stored_values(model: onnx.ModelProto) -> set[str]:
    """The initializers, and the values computed from them and from Constant nodes alone (torch.export slices an LSTM's
    weights out of one tensor; a Gather of a stored table at stored indices): a compiler computes them once and stores
    the result, as onnxsim folds them."""
    initializers = {tensor.name for tensor in model.graph.initializer}
    return initializers | _computed_from(model, initializers, sources=("Constant",))


def _constant_value(model: onnx.ModelProto, name: str, producer: Mapping[str, onnx.NodeProto]) -> np.ndarray:
    """A stored initializer's or a Constant node's value; empty for anything else."""
    stored = [tensor for tensor in model.graph.initializer if tensor.name == name]
    if stored and stored[0].data_location != onnx.TensorProto.EXTERNAL:
        return onnx.numpy_helper.to_array(stored[0])
    node = producer.get(name)
    if node is None or node.op_type != "Constant":
        return np.array([])
    return _small_results(model, node, {}).get(name, np.array([]))


def _equation(node: onnx.NodeProto) -> str:
    return next(attribute.s.decode() for attribute in node.attribute if attribute.name == "equation")


def _einsum_macs(equation: str, shapes: list[list[int]], output: list[int]) -> int:
    """Multiply-accumulates of a two-operand Einsum: each value it writes sums over the letters it does not keep."""
    terms, arrow, kept = equation.replace(" ", "").partition("->")
    sizes: dict[str, int] = {}
    for term, shape in zip(terms.split(","), shapes):
        leading, _, trailing = term.partition("...")  # letters after an ellipsis name the last dimensions
        for letter, size in [*zip(leading, shape), *zip(trailing[::-1], shape[::-1])]:
            sizes[letter] = max(sizes.get(letter, 1), size)  # a broadcast dimension is 1 on one side
    letters = terms.replace(",", "").replace(".", "")
    summed = set(letters) - set(kept) if arrow else {letter for letter in letters if letters.count(letter) > 1}
    return int(np.prod(output)) * int(np.prod([sizes[letter] for letter in summed]))


def _groups(node: onnx.NodeProto) -> int:
    return next((attribute.i for attribute in node.attribute if attribute.name == "group"), 1)
