"""W8A16 QDQ quantization with onnxruntime.quantization's QNN configuration, plus the graph fixes it needs.

Activations are 16-bit (QUInt16), weights 8-bit (QUInt8, per channel), in QDQ form that onnxruntime's QNN
execution provider compiles for the Hexagon NPU and that onnxruntime runs on any CPU.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import onnx
from onnx import numpy_helper

from ..graphs import load_full, save_model, static_shapes
from ..metrics import cosine_similarity, sqnr_db
from ..processes import in_fresh_process
from ..runtime.sessions import cpu_session

MASK_FLOOR = -100.0  # softmax weight e^-100 is 0 in fp16 and fp32, and the range stays quantizable
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")
ACTIVATION_RANGES = ("minmax", "percentile")
QDQ_16BIT_OPSET = 21  # QuantizeLinear/DequantizeLinear with 16-bit integers


def bound_attention_masks(model: onnx.ModelProto) -> int:
    """Raise additive attention-mask constants (CLIP's causal mask uses -3.4e38) to MASK_FLOOR.

    A 16-bit activation whose range spans -3.4e38 keeps no resolution for the real attention scores; this is
    the known reason plain W8A16 breaks the text encoder. Returns the number of tensors changed.
    """
    consumers = {name for node in model.graph.node if node.op_type == "Add" for name in node.input}
    changed = 0
    for tensor in model.graph.initializer:
        if tensor.name in consumers and tensor.data_type == onnx.TensorProto.FLOAT:
            values = numpy_helper.to_array(tensor)
            if values.size > 1 and values.min() < -1e4:
                tensor.CopyFrom(numpy_helper.from_array(np.maximum(values, MASK_FLOOR).astype(np.float32), tensor.name))
                changed += 1
    return changed


class _Reader:
    """A CalibrationDataReader over recorded feeds."""

    def __init__(self, samples: list[dict[str, np.ndarray]]) -> None:
        self._samples = iter(samples)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._samples, None)


def prepare(float_path: Path, folder: Path) -> tuple[Path, int]:
    """Bound attention masks, apply onnxruntime's QNN pre-processing (LayerNorm/Gelu fusions) and move the graph to
    the opset 16-bit QDQ needs (quantize_static would convert the whole model in memory, weights included)."""
    from onnxruntime.quantization.execution_providers.qnn import qnn_preprocess_model

    model = load_full(float_path)
    masks = bound_attention_masks(model)
    bounded = save_model(model, folder / "bounded.onnx")
    prepared = folder / "prepared.onnx"
    if not qnn_preprocess_model(bounded, prepared, save_as_external_data=True, all_tensors_to_one_file=True,
                                external_data_location="prepared.onnx.data"):
        shutil.copyfile(bounded, prepared)
        shutil.copyfile(folder / "bounded.onnx.data", folder / "prepared.onnx.data")
    graph = onnx.load(str(prepared), load_external_data=False)  # the weights stay in prepared.onnx.data
    if graph.opset_import and max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) < QDQ_16BIT_OPSET:
        onnx.save(onnx.version_converter.convert_version(graph, QDQ_16BIT_OPSET), str(prepared))
    return prepared, masks


def quantize_w8a16(prepared: Path, samples: list[dict[str, np.ndarray]], output: Path,
                   keep_float: list[str] | None = None, activation_ranges: str = "minmax") -> Path:
    """Calibrate on `samples` and write the QDQ model; nodes in `keep_float` stay in float. `activation_ranges`:
    "minmax" (each activation's observed range) or "percentile" (99.999th percentile of its magnitudes).

    Calibration (`calibrate`) and quantization each run in a fresh process, so neither holds the other's copies of
    the model and sessions (together in onnxruntime's quantize_static: 17.9 GB for the 512x512 UNet); the ranges
    pass between them as onnxruntime's calibration cache.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent) as scratch:
        work = Path(scratch)
        ranges = in_fresh_process(calibrate, prepared, samples, activation_ranges, work, temp_parent=work)
        written = in_fresh_process(write_qdq, prepared, ranges, keep_float or [], activation_ranges, work / output.name,
                                   temp_parent=work)
        save_model(onnx.load(str(written), load_external_data=True), output)
    return output


def qnn_config(prepared: Path, keep_float: list[str], activation_ranges: str) -> Any:
    """onnxruntime's W8A16 configuration for QNN (16-bit activations, 8-bit per-channel weights)."""
    from onnxruntime.quantization import CalibrationMethod, QuantType
    from onnxruntime.quantization.execution_providers.qnn import get_qnn_qdq_config

    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}[activation_ranges]
    return get_qnn_qdq_config(str(prepared), None, calibrate_method=method, activation_type=QuantType.QUInt16,
                              weight_type=QuantType.QUInt8, per_channel=True, nodes_to_exclude=keep_float)


def calibrate(prepared: Path, samples: list[dict[str, np.ndarray]], activation_ranges: str, folder: Path) -> Path:
    """Activation ranges of `prepared` over `samples`, written as onnxruntime's calibration cache.

    onnxruntime's calibrator runs a graph with a ReduceMin/ReduceMax on every tensor through a session with the
    default arena and execution order, which keeps the 512x512 UNet's attention tensors alive together: 15.0 GB on
    two samples. Without the arena and in priority order the same ranges take 4.4 GB, and less time.
    """
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    config = qnn_config(prepared, [], activation_ranges)
    augmented = folder / "augmented.onnx"
    calibrator = create_calibrator(prepared, config.op_types_to_quantize, str(augmented), config.calibrate_method,
                                   use_external_data_format=True, providers=["CPUExecutionProvider"])
    del calibrator.infer_session
    # optimizations off, as onnxruntime's own calibration session
    calibrator.infer_session = cpu_session(augmented, exact=True, priority_order=True)
    calibrator.collect_data(_Reader(samples))
    ranges = folder / "ranges.json"
    save_tensors_data(calibrator.compute_data(), ranges)
    return ranges


def write_qdq(prepared: Path, ranges: Path, keep_float: list[str], activation_ranges: str, output: Path) -> Path:
    """The QDQ model of `prepared` with the calibrated `ranges`."""
    from onnxruntime.quantization import quantize_static

    config = qnn_config(prepared, keep_float, activation_ranges)
    with _quiet_root_logger():
        quantize_static(str(prepared), str(output), None, calibrate_method=config.calibrate_method,
                        quant_format=config.quant_format, activation_type=config.activation_type,
                        weight_type=config.weight_type, op_types_to_quantize=config.op_types_to_quantize,
                        nodes_to_exclude=config.nodes_to_exclude, per_channel=config.per_channel,
                        reduce_range=config.reduce_range, use_external_data_format=True,
                        extra_options=config.extra_options, calibration_cache_path=str(ranges))
    return output


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization logs advice (opset upgrade, pre-processing) on the root logger; keep errors only."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


@dataclass(frozen=True)
class Fidelity:
    sqnr_db: float
    cosine: float
    per_timestep_sqnr_db: dict[str, float]

    def as_dict(self) -> dict:
        return {"sqnr_db": round(self.sqnr_db, 2), "cosine": round(self.cosine, 6),
                "per_timestep_sqnr_db": {k: round(v, 2) for k, v in self.per_timestep_sqnr_db.items()}}


def evaluate(float_path: Path, quantized_path: Path, samples: list[dict[str, np.ndarray]]) -> Fidelity:
    """SQNR and cosine of the quantized component against the float one on held-out samples.

    UNet samples are also grouped by timestep; the overall SQNR is the worst group's. One session is open at a time
    (a 512x512 UNet session holds its weights and gigabytes of attention activations).
    """
    expected, actual = (run_all(path, samples) for path in (float_path, quantized_path))
    groups: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for feed, reference, quantized in zip(samples, expected, actual):
        key = str(int(feed["timestep"][0])) if "timestep" in feed else "all"
        groups.setdefault(key, ([], []))[0].append(reference)
        groups[key][1].append(quantized)
    per_group = {key: sqnr_db(np.stack(e), np.stack(a)) for key, (e, a) in groups.items()}
    cosine = cosine_similarity(np.concatenate([x.ravel() for x in expected]), np.concatenate([x.ravel() for x in actual]))
    return Fidelity(min(per_group.values()), cosine, per_group if "all" not in per_group else {})


def run_all(model_path: Path, samples: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    """The first output of a model on the CPU for each sample."""
    session = cpu_session(model_path)
    return [session.run(None, feed)[0] for feed in samples]


def weighted_nodes(model: onnx.ModelProto) -> dict[str, int]:
    """Nodes whose second input is a weight initializer, with that weight's parameter count."""
    sizes = {tensor.name: int(np.prod(tensor.dims)) for tensor in model.graph.initializer}
    return {node.name: sizes[node.input[1]] for node in model.graph.node
            if node.op_type in WEIGHTED_OPS and len(node.input) > 1 and node.input[1] in sizes}


def layer_sensitivity(float_path: Path, quantized_path: Path, samples: list[dict[str, np.ndarray]],
                      max_elements: int = 1 << 22) -> list[tuple[str, float]]:
    """Each weighted layer's own contribution to the quantization error, largest first.

    Both graphs expose the inputs and outputs of the weighted layers (tensors over `max_elements` values are
    skipped to bound memory); a layer's contribution is how much the quantized model's noise-to-signal ratio
    grows from its noisiest input to its output, accumulated over `samples` one at a time.
    """
    float_model = onnx.load(str(float_path), load_external_data=False)
    shapes = {name: int(np.prod(dims)) for name, dims in static_shapes(float_model, float_only=True).items()}
    layers = weighted_nodes(float_model)
    nodes = [node for node in float_model.graph.node
             if node.name in layers and 0 < shapes.get(node.output[0], 0) <= max_elements]
    watched = sorted({name for node in nodes for name in [*node.input, node.output[0]]
                      if 0 < shapes.get(name, 0) <= max_elements})
    sessions = {}
    for label, path in (("float", float_path), ("quantized", quantized_path)):
        model = onnx.load(str(path), load_external_data=False)
        existing = {output.name for output in model.graph.output}
        model.graph.output.extend(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
                                  for name in watched if name not in existing)
        exposed = path.with_name(f"exposed-{path.name}")  # beside the model, so its external data resolves
        onnx.save(model, str(exposed))
        try:
            sessions[label] = cpu_session(exposed)
        finally:
            exposed.unlink()
    signal = dict.fromkeys(watched, 0.0)
    noise = dict.fromkeys(watched, 0.0)
    for feed in samples:
        runs = {label: dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
                for label, session in sessions.items()}
        for name in watched:
            expected = runs["float"][name].astype(np.float64)
            signal[name] += float(np.sum(expected**2))
            noise[name] += float(np.sum((expected - runs["quantized"][name]) ** 2))
    ratio = {name: noise[name] / max(signal[name], 1e-30) for name in watched}
    contributions = [(node.name, ratio[node.output[0]] - max((ratio[name] for name in node.input if name in ratio), default=0.0))
                     for node in nodes if node.output[0] in ratio]
    return sorted(contributions, key=lambda item: item[1], reverse=True)


def io_quantization(model_path: Path) -> dict[str, dict]:
    """Scale, zero point and type of the Q/DQ nodes at the graph's inputs and outputs."""
    model = onnx.load(str(model_path), load_external_data=False)
    initializers = {tensor.name: tensor for tensor in model.graph.initializer if not tensor.external_data}
    inputs = {value.name for value in model.graph.input}
    outputs = {value.name for value in model.graph.output}
    result = {}
    for node in model.graph.node:
        boundary = (node.op_type == "QuantizeLinear" and node.input[0] in inputs) or \
                   (node.op_type == "DequantizeLinear" and node.output[0] in outputs)
        if boundary and node.input[1] in initializers and node.input[2] in initializers:
            name = node.input[0] if node.op_type == "QuantizeLinear" else node.output[0]
            zero_point = numpy_helper.to_array(initializers[node.input[2]])
            result[name] = {"scale": float(numpy_helper.to_array(initializers[node.input[1]]).reshape(-1)[0]),
                            "zero_point": int(zero_point.reshape(-1)[0]), "type": str(zero_point.dtype)}
    return result


def multiply_weight_scale(model: onnx.ModelProto, factor: float) -> str:
    """Break a QDQ graph on purpose (how the NPU checks are shown to catch a wrong binary): multiply the
    dequantization scale of one convolution weight in the middle of the graph by `factor`; its node's name."""
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    candidates = [node for node in model.graph.node if node.op_type == "DequantizeLinear"
                  and node.input[0] in initializers and len(initializers[node.input[0]].dims) == 4]
    node = candidates[len(candidates) // 2]
    scale = initializers[node.input[1]]
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * np.float32(factor), scale.name))
    return node.name
