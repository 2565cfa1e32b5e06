"""Other forms of the `estimate` latency model against the one it has, chosen on the training models alone; print JSON.

Each form changes one general assumption of `profile.estimate.layer_times_ms`, is fitted like the model itself
(`estimate_validation.fit`, same split, same ties) and is judged first by its leave-one-model-out error on the
training models (each training model predicted by a fit without it; the held-out models play no part in the
choice), then reported on the held-out models as `estimate_validation.py` reports the model:

- weights streamed beside compute: QNN prefetches the next layers' weights while others compute, so a graph
  costs the larger of its summed compute (with dispatch) and its summed DDR traffic, not a sum of per-layer maxima;
- depthwise on the vector unit: grouped convolutions run on HVX, not HMX, so they cost per MAC and activation byte
  at one rate for every precision instead of a fraction of the precision's HMX peak;
- both of the above;
- one 16-bit vector rate: float and W8A16 activations are both 16 bits wide, so their elementwise and softmax
  layers share one rate;
- elementwise chains written once: the links of a chain (GELU's Div-Erf-Add-Mul-Mul) stay in registers and only
  the chain's first layer writes;
- a dispatch floor per op: an op's dispatch overlaps its work, so a dispatched layer costs the slowest of its
  compute, its traffic and the dispatch cost instead of their sum (small CNNs such as EfficientNet-B0/B4 and the
  MobileNets measure about the same time per op whatever their MACs);
- dispatch at the activation width: the per-op cost is a minimum of vector work, so 8-bit activations (w8a8) pay
  half of what 16-bit ones (float, w8a16) pay (on the 8 Gen 3 the MobileNets and EfficientNets measure 4.3-5.4 us
  per QNN op at 16 bits, MobileNet-v2 3.1 us and Inception-v3 2.2 us at w8a8), alone and as a floor;
- depthwise per output value: with that floor, a grouped convolution costs its output values at one rate (HVX
  streams the kernel taps) instead of its MACs at a fraction of the HMX peak;
- bilinear resampling at its own float rate: QNN's cost model puts SegFormer's FP16 bilinear Resize at 259x its
  W8A16 cost (`emulated_precisions.py`), so in float a linear Resize writes its output at a rate of its own;
- an integer speed factor per chipset: each HTP generation's integer (w8a8, w8a16) work scales from the reference
  chipset's by a factor of its own instead of the one speed factor it shares with float;
- a memory speed per chipset: each HTP generation's DDR traffic scales from the reference chipset's by a fitted
  factor of its own instead of the ratio of the profiles' peak bandwidths (what the NPU gets of the DRAM's peak
  need not be the same share on every SoC);
- MAC units at the profile's peak: the chipset's speed factor scales its vector unit and dispatch only, and its
  MAC layers run at the profile's int8 peak (which already differs per chipset) instead of that peak times the
  speed factor; and the other way round, one speed factor in place of the profiles' peaks (every chipset's MAC
  peak is the reference's, and its speed factor carries the whole difference);
- the graph as QNN compiles it (`fused_activations.py`): GELU written out (Div-Erf-Add-Mul-Mul) is one Gelu op,
  alone and with the activations QNN does not fold, and those activations alone: only ReLU and clipping fold into
  the MAC layer before them, and only when quantized; sigmoid, SiLU's multiply, tanh, leaky ReLU and hard-swish run
  as ops of their own, and float ReLUs too, and so do the constant epilogues the model folds (a MatMul's bias, a
  GroupNorm's scale and shift), as onnxruntime's QNN provider runs them at W8A16. Each form also reports how its
  count of dispatched layers compares with the NPU op counts AI Hub publishes (`npu_ops`), a check that involves
  no time;
- a graph floor of ops: a graph takes at least its dispatched layers times the per-op cost (at the activation
  width), which runs beside its layers' work instead of adding to it, counted the model's way (alone and with one
  16-bit vector rate) and as QNN compiles the graph;
- softmax at a share of the vector rate: one ratio for every precision instead of a float and an integer rate of
  its own (only BERT's W8A16 rows inform the integer one among the training models), alone and over that floor;
- inputs and outputs at the activation width: if a quantized graph takes and gives quantized values (AI Hub's
  `--quantize_io`), a w8a8 or w8a16 graph's boundary moves 1 or 2 bytes per value where a float graph's moves 4;
- convolutions in channel blocks: the HMX multiplies channels in blocks of 32, so a dense convolution costs its
  output channels rounded up to 32 (a narrow head of a few classes at the block's width), as QNN's HTP cost model
  charges them (`fused_activations.py`, "narrow convolutions"), and the same with its input channels rounded up too
  (a first layer on RGB at the block's width), which that cost model does not charge;
- DDR traffic at most at the profile's bandwidth: the achieved share of the DRAM's peak is bounded by 1, where the
  model's fit lets it reach 2;
- layout transposes at their own rate: a Transpose moves values between the HTP's tiled image layout and a token
  sequence (a transformer's or SegFormer's NCHW <-> NLC), which is not an elementwise write, so it writes at a rate
  of its own per precision class instead of the vector rate;
- inputs and outputs converted to the tiled layout: the graph's boundary converts each image tensor into the HTP's
  tiled layout, so it costs the image's values with channels padded to 32 (a 3-channel image at 32) at the fitted
  rate per value;
- a speed per runtime: the same graph on the same phone measures differently under AI Hub's runtimes (in the
  training rows the DLC's about 10% faster than the ONNX ones), so each runtime's time is the context binary's
  times a fitted factor, and the same with a factor for the DLC alone; the estimate stays the context binary's;
- a speed per release: AI Hub's releases compile with different QNN SDKs, so a row of an older release (v0.37.0,
  v0.30.7) is the newest release's time (v0.46.1, the estimate's) times a fitted factor;
- the fit itself, not the form: each training model weighted equally (a model's rows share one model's weight,
  where each row weighs the same in the model's fit: YOLOv8 has 33 training rows, BERT 9), and the loss on
  log(estimate / measured) as plain least squares or Cauchy's instead of the soft L1 the model is fitted with;
- diagnostics, not candidates (they read the row's own published op count, which a user's graph does not have):
  is the count of ops what the model lacks? A dispatch cost per NPU op AI Hub published for the row's graph, added
  to the model's layers, and the same count as the graph's floor.

    .venv/bin/python benchmarks/estimate_forms.py [--form NAME ...] [--csv FILE] [--work DIR]
    .venv/bin/python benchmarks/estimate_forms.py --influence    # the held-out figures without each training model
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).parent))
from estimate_validation import (CSV, NPU_RUNTIMES, PARAMETERS, ROBUST_LOSS, constants_for,  # noqa: E402
                                 estimate_ms, estimated_samples, fit, fitted_chipsets, graph_path, relative_errors)

from edgefusion_export.graphs import (CHANNEL_TILE, NPU_BYTES, layer_costs, load_shaped, round_up,  # noqa: E402
                                     tiled_size)
from edgefusion_export.profile.estimate import LatencyModel  # noqa: E402
from edgefusion_export.targets.chipsets import chipset, load_chipsets  # noqa: E402

FORMS = {
    "the model's": set(),
    "weights streamed beside compute": {"streamed"},
    "depthwise on the vector unit": {"depthwise_vector"},
    "streamed weights and depthwise on the vector unit": {"streamed", "depthwise_vector"},
    "one 16-bit vector rate": {"shared_16_bit"},
    "elementwise chains written once": {"chain_once"},
    "a dispatch floor per op": {"overhead_floor"},
    "dispatch at the activation width": {"overhead_width"},
    "a dispatch floor per op at the activation width": {"overhead_floor", "overhead_width"},
    "depthwise per output value, over a dispatch floor at the activation width":
        {"overhead_floor", "overhead_width", "depthwise_per_value"},
    "bilinear resampling at its own float rate": {"float_resize"},
    "an integer speed factor per chipset": {"integer_speed"},
    "a memory speed per chipset": {"memory_speed"},
    "MAC units at the profile's peak": {"macs_at_peak"},
    "one speed factor in place of the profiles' peaks": {"speed_not_peak"},
    "GELU as one op": {"gelu_op"},
    "activations folded as QNN compiles them": {"compiled_activations"},
    "inputs and outputs at the activation width": {"io_width"},
    "GELU as one op and activations folded as QNN compiles them": {"gelu_op", "compiled_activations"},
    "a graph floor of dispatched layers at the activation width": {"graph_floor", "overhead_width"},
    "that, with one 16-bit vector rate": {"graph_floor", "overhead_width", "shared_16_bit"},
    "softmax at a share of the vector rate": {"softmax_tied"},
    "a graph floor of ops with softmax at a share of the vector rate":
        {"graph_floor", "overhead_width", "softmax_tied"},
    "a graph floor of ops as QNN compiles the graph, at the activation width":
        {"gelu_op", "compiled_activations", "graph_floor", "overhead_width"},
    "output channels in blocks of 32": {"output_blocks"},
    "input and output channels in blocks of 32": {"output_blocks", "input_blocks"},
    "DDR traffic at most at the profile's bandwidth": {"bandwidth_cap"},
    "layout transposes at their own rate": {"transpose_rate"},
    "inputs and outputs converted to the tiled layout": {"io_tiled"},
    "a speed per runtime": {"runtime_speed"},
    "the DLC runtime at a speed of its own": {"dlc_speed"},
    "a speed per release": {"release_speed"},
    "each training model weighted equally": {"models_equal"},
    "plain least squares": {"least_squares"},
    "a Cauchy loss": {"cauchy_loss"},
    "dispatch per published NPU op (diagnostic)": {"published_ops"},
    "a graph floor of published NPU ops at the activation width (diagnostic)":
        {"published_ops", "graph_floor", "overhead_width"},
}
GRAPH_CHANGES = ("gelu_op", "compiled_activations")  # forms that change which layers dispatch and what they write
CHANNEL_BLOCKS = {"output_blocks": ("output",), "input_blocks": ("output", "input")}  # the form's blocked sides
# forms that read `with_layer_values`
PER_LAYER_FORMS = {"depthwise_per_value", "float_resize", "transpose_rate", "io_tiled", *CHANNEL_BLOCKS, *GRAPH_CHANGES}
FOLDED_WHEN_QUANTIZED = {"Relu", "Clip"}  # what QNN folds into the MAC layer before it only at 8-bit weights
MAC_EFFICIENCIES = ("dense_efficiency", "dynamic_efficiency", "grouped_efficiency")
OLDER_RELEASES = ["v0.30.7", "v0.37.0"]  # the table's releases before v0.46.1, the newest
ROW_SPEEDS = {"runtime_speed": ("runtime", sorted(NPU_RUNTIMES - {"qnn_context_binary"})),
              "dlc_speed": ("runtime", ["qnn_dlc"]), "release_speed": ("release", OLDER_RELEASES)}
FIT_RULES = {"models_equal": {"models_equal": True}, "least_squares": {"loss": ("linear", 1.0)},
             "cauchy_loss": {"loss": ("cauchy", ROBUST_LOSS[1])}}  # forms that change the fit, not the time


def per_chipset(factor: str) -> dict:
    """A factor for each chipset but the reference (whose factor is 1)."""
    return {f"{factor}/{chip.name}": (1.0, 0.3, 3.0) for chip in load_chipsets().values() if not chip.default}


def parameters_of(form: set[str]) -> dict:
    parameters = dict(PARAMETERS)
    if "depthwise_vector" in form:
        del parameters["grouped_ratio"]
        parameters["depthwise_gbps"] = (20.0, 0.1, 1e4)  # activation bytes times kernel taps, per second
    if "depthwise_per_value" in form:
        del parameters["grouped_ratio"]
        parameters["depthwise_gbps"] = (20.0, 0.1, 1e4)  # output bytes per second
    if "float_resize" in form:
        parameters["resize_float_gbps"] = (30.0, 0.01, 1e4)
    if "shared_16_bit" in form:
        del parameters["vector_w8a16"]
    if "bandwidth_cap" in form:
        parameters["memory_efficiency"] = (0.8, 0.05, 1.0)
    if "transpose_rate" in form:
        parameters |= {"transpose_float": (30.0, 0.1, 1e4), "transpose_integer": (60.0, 0.1, 1e4)}
    if "softmax_tied" in form:
        del parameters["softmax_float"], parameters["softmax_integer"]
        parameters["softmax_share"] = (0.5, 1e-3, 100.0)
    if "integer_speed" in form:  # each chipset's integer speed relative to its float one
        parameters |= per_chipset("integer_speed")
    if "memory_speed" in form:  # each chipset's achieved DDR bandwidth relative to its profile's peak
        parameters |= per_chipset("memory_speed")
    for change, (field, kinds) in ROW_SPEEDS.items():
        if change in form:
            parameters |= {f"{field}/{kind}": (1.0, 0.3, 3.0) for kind in kinds}
    return parameters


def form_fit(training: list[dict], chips: list[str], form: set[str]) -> dict[str, float]:
    """`estimate_validation.fit` of the form's time, with the fit's rule changed where the form changes it."""
    rules = {option: value for change in form & FIT_RULES.keys() for option, value in FIT_RULES[change].items()}
    return fit(training, chips, parameters_of(form), lambda sample, values: form_time_ms(sample, values, form), **rules)


def form_time_ms(sample: dict, values: dict[str, float], form: set[str]) -> float:
    """`layer_times_ms` summed, with the form's changes."""
    chip, precision, layers = sample["profile"], sample["precision"], sample["layers"]
    if "integer_speed" in form and precision != "float" and f"speed/{chip}" in values:
        values = {**values, f"speed/{chip}": values[f"speed/{chip}"] * values[f"integer_speed/{chip}"]}
    if "shared_16_bit" in form:
        values = {**values, "vector_w8a16": values["vector_float"]}
    if form & {"depthwise_vector", "depthwise_per_value"}:
        values = {**values, "grouped_ratio": 1.0}  # constants_for needs one; these forms do not read it
    if "softmax_tied" in form:
        values = {**values, "softmax_float": 1.0, "softmax_integer": 1.0}  # replaced below
    constants = constants_for(values, chip, precision)
    if "softmax_tied" in form:
        constants = replace(constants, softmax_gbps=constants.vector_gbps * values["softmax_share"])
    if "shared_16_bit" in form and precision == "w8a16":
        constants = replace(constants, softmax_gbps=constants_for(values, chip, "float").softmax_gbps)
    speed = values.get(f"speed/{chip}", 1.0)
    if "macs_at_peak" in form:
        constants = replace(constants, **{name: getattr(constants, name) / speed for name in MAC_EFFICIENCIES})
    model = LatencyModel(load_chipsets()[chip], precision, constants, None)
    c, peak = constants, model.peak_macs_per_s
    if "speed_not_peak" in form:
        peak = peak * chipset(None).npu_int8_tops / model.chipset.npu_int8_tops
    activation_bytes = NPU_BYTES[precision][1]
    dispatched, vector_bytes = structure(sample, form)
    vector_bytes = vector_bytes * (dispatched if "chain_once" in form else 1)
    vector_s = vector_bytes / (c.vector_gbps * 1e9)
    if "float_resize" in form and precision == "float":
        resize_bytes = sample["linear_resize_values"] * activation_bytes
        vector_s = vector_s + resize_bytes * (1 / (values["resize_float_gbps"] * speed) - 1 / c.vector_gbps) / 1e9
    if "transpose_rate" in form:
        transpose_bytes = sample["transpose_values"] * activation_bytes
        rate = values["transpose_float" if precision == "float" else "transpose_integer"] * speed
        vector_s = vector_s + transpose_bytes * (1 / rate - 1 / c.vector_gbps) / 1e9
    blocks = [change for change in CHANNEL_BLOCKS if change in form]
    dense_macs = sample[f"{blocks[-1]}_macs"] if blocks else layers.dense_macs
    if "depthwise_vector" in form:
        grouped_s = layers.grouped_macs * activation_bytes / (values["depthwise_gbps"] * speed * 1e9)
    elif "depthwise_per_value" in form:
        grouped_s = sample["grouped_values"] * activation_bytes / (values["depthwise_gbps"] * speed * 1e9)
    else:
        grouped_s = layers.grouped_macs / (peak * c.grouped_efficiency)
    compute_s = (dense_macs / (peak * c.dense_efficiency) + layers.dynamic_macs / (peak * c.dynamic_efficiency)
                 + grouped_s + vector_s + layers.softmax_bytes / (c.softmax_gbps * 1e9))
    memory_s = ((layers.weight_bytes + c.activation_spill * layers.activation_bytes)
                / (model.chipset.memory_bandwidth_gbps * 1e9 * c.memory_efficiency
                   * values.get(f"memory_speed/{chip}", 1.0)))
    overhead_s = dispatched * c.op_overhead_us * 1e-6
    if "overhead_width" in form:  # op_overhead_us is then the 16-bit cost; 8-bit activations take half
        overhead_s = overhead_s * activation_bytes / 2
    if "graph_floor" in form:
        graph_s = max(np.maximum(compute_s, memory_s).sum(), overhead_s.sum())
    elif "overhead_floor" in form:
        graph_s = np.maximum(np.maximum(compute_s, memory_s), overhead_s).sum()
    elif "streamed" in form:
        graph_s = max((compute_s + overhead_s).sum(), memory_s.sum())
    else:
        graph_s = (np.maximum(compute_s, memory_s) + overhead_s).sum()
    io_s = (sample["tiled_io_values"] if "io_tiled" in form else layers.io_values) * c.io_ns_per_value * 1e-9
    if "io_width" in form and precision != "float":  # io_ns_per_value is then the float32 boundary's cost
        io_s = io_s * activation_bytes / 4
    release = sample["source_version"].split()[0]
    speed_of_row = values.get(f"runtime/{sample['runtime']}", 1.0) * values.get(f"release/{release}", 1.0)
    return float((graph_s + io_s) * 1000 * speed_of_row)


def structure(sample: dict, form: set[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per layer: the ops it dispatches (0 or 1; the published count on the first layer for `published_ops`) and the
    bytes it writes at the vector rate, with the form's graph changes."""
    dispatched, vector_bytes = sample["layers"].dispatches, sample["layers"].vector_bytes
    if "published_ops" in form:  # the NPU ops AI Hub counted for the row's graph, charged on its first layer
        dispatched = np.zeros_like(dispatched)
        dispatched[0] = int(sample["npu_ops"])
    for change in GRAPH_CHANGES:
        if change in form:
            dispatched = np.where(sample[f"{change}_dispatched"] >= 0, sample[f"{change}_dispatched"], dispatched)
            vector_bytes = vector_bytes + sample[f"{change}_values"] * NPU_BYTES[sample["precision"]][1]
    return dispatched, vector_bytes


def gelu_nodes(model: onnx.ModelProto) -> tuple[set[str], set[str]]:
    """GELU written out as x * 0.5 * (1 + erf(x / sqrt(2))), torch's export below opset 20: the names of each
    pattern's first four nodes and of its last one (the value it writes)."""
    weights = {tensor.name for tensor in model.graph.initializer}
    producer = {output: node for node in model.graph.node for output in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def only_consumer(node: onnx.NodeProto, op_type: str) -> onnx.NodeProto | None:
        following = consumers.get(node.output[0], [])
        return following[0] if len(following) == 1 and following[0].op_type == op_type else None

    inner, last = set(), set()
    for erf in (node for node in model.graph.node if node.op_type == "Erf"):
        scale = producer.get(erf.input[0])
        if scale is None or scale.op_type not in ("Div", "Mul") or scale.input[1] not in weights:
            continue
        shift = only_consumer(erf, "Add")
        first = shift and only_consumer(shift, "Mul")
        end = first and only_consumer(first, "Mul")
        if end is None:
            continue
        others = [name for mul in (first, end) for name in mul.input if name not in (shift.output[0], first.output[0])]
        if sorted(name in weights for name in others) == [False, True] and scale.input[0] in others:
            inner |= {scale.name, erf.name, shift.name, first.name}
            last.add(end.name)
    return inner, last


def channel_block_macs(model: onnx.ModelProto, shapes: dict[str, list[int]], sides: tuple[str, ...]) -> dict[str, int]:
    """Each dense (ungrouped) Conv's MACs with the channels of its `sides` ("output", "input") rounded up to a block."""
    widths = lambda width, side: round_up(width, CHANNEL_TILE) if side in sides else width  # noqa: E731
    blocked = {}
    for node in model.graph.node:
        kernel, output = shapes.get(node.input[1]) if len(node.input) > 1 else None, shapes.get(node.output[0])
        if node.op_type == "Conv" and kernel and output and all(a.i == 1 for a in node.attribute if a.name == "group"):
            pixels = int(np.prod(output)) // output[1]
            blocked[node.name] = (pixels * widths(output[1], "output") * widths(kernel[1], "input")
                                  * int(np.prod(kernel[2:])))
    return blocked


def tiled_io_values(model: onnx.ModelProto, shapes: dict[str, list[int]]) -> int:
    """Values of a graph's inputs and outputs, each image tensor in the HTP's tiled layout (channels padded to 32)."""
    sizes = [shapes.get(value.name, [0]) for value in [*model.graph.input, *model.graph.output]]
    return sum(tiled_size(shape) if len(shape) == 4 else int(np.prod(shape)) for shape in sizes)


def with_layer_values(samples: list[dict], work: Path) -> None:
    """Each sample gets, per layer (zero elsewhere), the output values of its grouped convolutions, of its linear
    (bilinear) Resize nodes and of its Transposes, and its dense MACs with channels in blocks; per graph, its
    boundary's values in the tiled layout; and for the graph-as-compiled forms the dispatch flags they set (-1 where
    they keep the model's) and the values they add to or take from the vector layers."""
    chipsets, values = load_chipsets(), {}
    for sample in samples:
        key = sample["architecture"].graph_name, sample["precision"]
        if key not in values:
            path = graph_path(sample["architecture"], work)
            precision = "fp16" if sample["precision"] == "float" else sample["precision"]
            graph = load_shaped(path)
            costs, model = layer_costs(graph, precision, int(chipsets[sample["profile"]].vtcm_mb * 2**20)), graph.model
            linear = {node.name for node in model.graph.node
                      if node.op_type == "Resize" and any(a.name == "mode" and a.s == b"linear" for a in node.attribute)}
            inner, last = gelu_nodes(model)
            shapes = {tensor.name: list(tensor.dims) for tensor in model.graph.initializer} | graph.shapes()
            blocked = {change: channel_block_macs(model, shapes, sides) for change, sides in CHANNEL_BLOCKS.items()}
            folded = FOLDED_WHEN_QUANTIZED if precision != "fp16" else set()
            unfolded = [c.kind == "fused" and c.op_type != "BatchNormalization" and c.op_type not in folded for c in costs]
            column = lambda value: np.array([value(c) for c in costs], dtype=np.float64)  # noqa: E731
            values[key] = {
                "grouped_values": column(lambda c: c.elements if c.kind == "grouped" else 0),
                "linear_resize_values": column(lambda c: c.elements if c.name in linear else 0),
                "tiled_io_values": tiled_io_values(model, shapes),
                "transpose_values": column(lambda c: c.elements if c.op_type == "Transpose" and c.kind == "vector"
                                           else 0),
                **{f"{change}_macs": column(lambda c, b=b: b.get(c.name, c.macs) if c.kind == "dense" else 0)
                   for change, b in blocked.items()},
                "gelu_op_dispatched": column(lambda c: 0 if c.name in inner else 1 if c.name in last else -1),
                "gelu_op_values": column(lambda c: -c.elements if c.name in inner and c.kind == "vector" else 0),
                "compiled_activations_dispatched": np.where(unfolded, 1.0, -1.0),
                "compiled_activations_values": np.array([c.elements * u for c, u in zip(costs, unfolded)], dtype=np.float64)}
        sample.update(values[key])


def without_each_model(training: list[dict]) -> Iterator[tuple[str, list[dict]]]:
    """Each training model, with the rows of the other training models."""
    for model in sorted({s["model"] for s in training}):
        yield model, [s for s in training if s["model"] != model]


def leave_one_model_out(training: list[dict], chips: list[str], form: set[str]) -> dict[str, float]:
    """Each training model's rows estimated by the form fitted on the other training models."""
    estimates, measured = [], []
    for model, others in without_each_model(training):
        values = form_fit(others, chips, form)
        for sample in training:
            if sample["model"] == model:
                estimates.append(form_time_ms(sample, values, form))
                measured.append(sample["inference_ms"])
    return relative_errors(estimates, measured)


def held_out_report(samples: list[dict], values: dict[str, float], form: set[str]) -> dict:
    """The form fitted on every training model: held-out error on the 8 Gen 3 and the SD-1.5 components there."""
    chip = "snapdragon-8-gen-3"
    estimate = {id(s): form_time_ms(s, values, form) for s in samples}
    report = {}
    for precision in ("float", "w8a16"):
        chosen = [s for s in samples
                  if s["side"] == "held_out" and s["profile"] == chip and s["precision"] == precision]
        errors = relative_errors([estimate[id(s)] for s in chosen], [s["inference_ms"] for s in chosen])
        worst = max(max(estimate[id(s)] / s["inference_ms"], s["inference_ms"] / estimate[id(s)]) for s in chosen)
        report[f"8 Gen 3 {precision}, held out"] = {**errors, "worst_factor": round(worst, 2)}
    for component in ("unet", "vae", "text_encoder"):
        rows = [s for s in samples if s["model"] == "stable_diffusion_v1_5" and s["component"] == component
                and s["profile"] == chip]
        measured, estimated = statistics.median(s["inference_ms"] for s in rows), estimate[id(rows[0])]
        report[f"SD-1.5 {component}, 8 Gen 3"] = f"{estimated:.1f} ms vs {measured:.1f} ({estimated / measured - 1:+.0%})"
    return report


def influence(samples: list[dict], training: list[dict], chips: list[str]) -> dict[str, dict]:
    """What the held-out figures rest on: the model's form fitted without each training model in turn."""
    return {model: held_out_report(samples, fit(others, chips), set()) for model, others in without_each_model(training)}


def op_counts(samples: list[dict], form: set[str]) -> dict[str, float]:
    """The form's dispatched layers per graph and precision against the NPU op count AI Hub publishes for it (the
    median over its rows): the median ratio and its 10th and 90th percentiles."""
    published, counted = {}, {}
    for sample in samples:
        key = sample["model"], sample["component"], sample["precision"]
        if sample["npu_ops"]:
            published.setdefault(key, []).append(int(sample["npu_ops"]))
            counted[key] = structure(sample, form)[0].sum()
    ratios = [counted[key] / statistics.median(ops) for key, ops in published.items()]
    return {"graphs": len(ratios), "median": round(statistics.median(ratios), 2),
            "p10": round(float(np.percentile(ratios, 10)), 2), "p90": round(float(np.percentile(ratios, 90)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--form", choices=FORMS, action="append", help="try only this form (repeatable)")
    parser.add_argument("--csv", type=Path, default=CSV)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgefusion-estimate-validation")
    parser.add_argument("--influence", action="store_true",
                        help="instead of the forms: the held-out figures with each training model left out of the fit")
    args = parser.parse_args()
    samples = estimated_samples(args.csv, args.work)
    training, chips = [s for s in samples if s["side"] == "fit"], fitted_chipsets(samples)
    if args.influence:
        print(json.dumps(influence(samples, training, chips), indent=1))
        return
    if any(FORMS[name] & PER_LAYER_FORMS for name in args.form or FORMS):
        with_layer_values(samples, args.work)
    values = fit(training, chips)
    drift = max(abs(form_time_ms(s, values, set()) / estimate_ms(s, values) - 1) for s in samples)
    assert drift < 1e-9, f"the model's form differs from layer_times_ms by {drift:.2e}"
    results = {}
    for name in args.form or FORMS:
        form = FORMS[name]
        fitted = form_fit(training, chips, form)
        results[name] = {"training, leave one model out": leave_one_model_out(training, chips, form),
                         **held_out_report(samples, fitted, form),
                         "dispatched layers over AI Hub's NPU ops": op_counts(samples, form),
                         "fitted on every training model": fitted}
        print(f"{name}: {json.dumps(results[name])}", file=sys.stderr)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
