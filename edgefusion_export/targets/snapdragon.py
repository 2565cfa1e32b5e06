"""Ahead-of-time compilation for the Hexagon NPU with onnxruntime's QNN execution provider (onnxruntime-qnn).

Each component becomes an EPContext ONNX plus its QNN context binary for one chipset. The compile reports how
many NPU partitions the graph became and which nodes stayed on the CPU; more than one partition or any CPU
node fails the build unless `--allow-cpu-fallback`.
"""

from __future__ import annotations

import functools
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx.external_data_helper import load_external_data_for_model

from ..errors import UserError, first_line
from ..graphs import MAC_OPS, LayerCost, fix_input_shapes, layer_costs, load_shaped, op_types
from ..metrics import sqnr_db
from ..processes import in_fresh_process
from ..runtime.sessions import QNN_EP, HtpTarget, cpu_session, htp_session, qnn_session_options
from ..stages import StageResult
from .chipsets import Chipset

IO_CONVERSIONS = ("QuantizeLinear", "DequantizeLinear", "Cast")
# glibc fills every block malloc hands out with this pattern, so bytes QNN's serializer might leave uninitialized
# (padding) are the same in every build instead of what the process allocated before.
DETERMINISTIC_HEAP = {"MALLOC_PERTURB_": "165"}
# QNN graph finalization ("auto"). Measured here (QNN 2.51, bk-sdm-tiny FP16 VAE decoder, 8 Gen 3, compile wall
# time / peak): 256x256 mode 3 99 s / 4.1 GiB, mode 1 54 s / 2.8 GiB; 512x512 mode 3 905 s, mode 1 484 s. The FP16
# text encoder and VAE decoder compute the same numbers with modes 1 and 3 in HTP emulation (tiny, 256x256: 60.1 and
# 61.7 dB against the CPU either way).
LARGE_CONV_ACTIVATION_BYTES = 32 * 2**20  # 512x512 VAE decoder: 64 MiB per convolution input/output; 256x256: 16 MiB
LARGE_GRAPH_MODE = "1"


@dataclass
class NpuCompilation(StageResult):
    """What one component became on the NPU."""

    file: str
    context_binaries: list[str]
    partitions: int
    cpu_nodes: list[str] = field(default_factory=list)
    io_conversions: list[str] = field(default_factory=list)
    qnn_sdk_version: str = ""
    prepared_for: list[str] = field(default_factory=list)  # "SoC/vNN" read back from each context binary
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"{self.partitions} NPU partition(s), {len(self.cpu_nodes)} CPU nodes, {len(self.io_conversions)} I/O "
                f"conversions, QNN {self.qnn_sdk_version[:5]}, prepared for {', '.join(self.prepared_for)}")


@dataclass
class SharedNpuCompilation(StageResult):
    """Several graphs in one context binary: each graph's compilation, by graph name."""

    graphs: dict[str, dict]

    def compilations(self) -> dict[str, NpuCompilation]:
        return {graph: NpuCompilation(**entry) for graph, entry in self.graphs.items()}

    def summary(self) -> str:
        compilations = list(self.compilations().values())
        binaries = sorted({binary for compilation in compilations for binary in compilation.context_binaries})
        return (f"{len(compilations)} graphs in {len(binaries)} context binary, "
                f"{sum(c.partitions for c in compilations)} NPU partitions, "
                f"{sum(len(c.cpu_nodes) for c in compilations)} CPU nodes")


def compile_shared(folder: Path, models: dict[str, Path], chip: Chipset, allow_cpu_fallback: bool,
                   mode: str) -> SharedNpuCompilation:
    """`models` (graph name -> model) compiled for `chip` into one context binary."""
    compilations = compile_context(list(models.values()), chip, folder, allow_cpu_fallback, mode)
    return SharedNpuCompilation({graph: compilation.as_dict() for graph, compilation in zip(models, compilations)})


@functools.cache  # asked when a compile starts in the background and again when the target collects it
def finalization_mode(model_path: Path, choice: str) -> str:
    """QNN's graph finalization mode for a model. "auto": the most optimizing (3), except for float graphs whose
    convolution activations exceed LARGE_CONV_ACTIVATION_BYTES, where mode 3's compile time and memory grow
    steeply (LARGE_GRAPH_MODE). Quantized (QDQ) graphs never get mode 1: its binaries compute wrong numbers for
    them (tiny W8A16 UNet at 256x256 in HTP emulation: -1.4 dB against the CPU, 50.9 dB with modes 2 and 3;
    at 64x64 all three agree, so only --verify-npu on the real shapes would catch it)."""
    quantized = is_quantized(model_path)
    if choice != "auto":
        return "2" if quantized and choice == "1" else choice
    if quantized:
        return "3"
    costs = layer_costs(load_shaped(model_path), "fp16", LARGE_CONV_ACTIVATION_BYTES)  # bytes count only over the limit
    return LARGE_GRAPH_MODE if any(cost.activation_bytes for cost in costs if cost.op_type == "Conv") else "3"


def is_quantized(model_path: Path) -> bool:
    """A QDQ graph: a weighted layer reads a DequantizeLinear (an FP16 graph's 8-bit lookup tables do not make one)."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    dequantized = {output for node in graph.node if node.op_type == "DequantizeLinear" for output in node.output}
    return any(node.op_type in MAC_OPS and dequantized.intersection(node.input) for node in graph.node)


def compile_for_chipset(model_path: Path, chipset: Chipset, folder: Path, allow_cpu_fallback: bool,
                        mode: str = "3") -> NpuCompilation:
    """Compile `model_path` for `chipset` with QNN's graph finalization `mode` into `folder/<name>.<chipset>.onnx`
    and its context binary."""
    return compile_context([model_path], chipset, folder, allow_cpu_fallback, mode)[0]


def compile_context(model_paths: list[Path], chipset: Chipset, folder: Path, allow_cpu_fallback: bool,
                    mode: str = "3") -> list[NpuCompilation]:
    """Compile `model_paths` (distinct file names) for `chipset` with QNN's graph finalization `mode` into
    `folder/<name>.<chipset>.onnx` each; several models go into one QNN context binary that stores the weights
    they share once (onnxruntime's `ep.share_ep_contexts`)."""
    names = [path.name.removesuffix(".onnx") for path in model_paths]
    outputs = [folder / f"{name}.{chipset.name}.onnx" for name in names]
    for name in names:
        for stale in folder.glob(f"{name}.{chipset.name}*"):  # onnxruntime refuses to overwrite a context model
            stale.unlink()
    provider_options = {**chipset.htp_target.provider_options(), "enable_htp_fp16_precision": "1",
                        "htp_graph_finalization_optimization_mode": mode}
    start = time.perf_counter()
    # QNN numbers graphs and tensors per process, so a compile writes other bytes after earlier ones in the same
    # process (a cached stage changes the count); a fresh process writes the same binary every time.
    error = in_fresh_process(write_context_models, [str(path) for path in model_paths], [str(path) for path in outputs],
                             provider_options, temp_parent=folder, environment=DETERMINISTIC_HEAP)
    if error is not None:
        raise UserError(f"QNN could not compile {', '.join(names)} for {chipset.marketing_name}: {error}")
    compilations, expected = [], f"{chipset.soc}/{chipset.hexagon_arch}"
    for name, output, model_path in zip(names, outputs, model_paths):
        match_ir_version(output, model_path)
        compilation = inspect_context_model(output)
        compilation.seconds = round(time.perf_counter() - start, 1)
        if compilation.prepared_for != [expected] * len(compilation.context_binaries):
            raise UserError(f"QNN prepared {name} for {', '.join(compilation.prepared_for) or 'an unknown SoC'} instead of "
                            f"{expected} ({chipset.marketing_name}); check qnn_soc_model and hexagon_arch in its chipset profile")
        if not allow_cpu_fallback and (compilation.partitions != 1 or compilation.cpu_nodes):
            raise UserError(f"{name} is {compilation.partitions} NPU partitions with {len(compilation.cpu_nodes)} CPU nodes "
                            f"({', '.join(compilation.cpu_nodes[:5])}) on {chipset.marketing_name}; pass --allow-cpu-fallback "
                            "to accept it, or use a W8A16 recipe")
        compilations.append(compilation)
    return compilations


def write_context_models(model_paths: list[str], outputs: list[str], provider_options: dict[str, str]) -> str | None:
    """Compile each model into its EPContext model in `outputs` (embed mode 0: the context binary beside it), all
    into one shared context when there are several; returns QNN's error, or None. Runs in a fresh process: it
    changes the working directory, and QNN keeps a shared context per process."""
    import onnxruntime

    sharing = len(model_paths) > 1
    sessions = []
    for index, (model_path, output) in enumerate(zip(model_paths, outputs)):
        # onnxruntime names the graph in the binary after a hash of the path the model was opened by: by its file
        # name, the binary is the same wherever the cache is (by its absolute path, 54 bytes differed between caches).
        os.chdir(Path(model_path).parent)
        entries = {"ep.context_enable": "1", "ep.context_file_path": output, "ep.context_embed_mode": "0",
                   **({"ep.share_ep_contexts": "1"} if sharing else {}),
                   **({"ep.stop_share_ep_contexts": "1"} if sharing and index == len(model_paths) - 1 else {})}
        options = qnn_session_options(provider_options, entries)
        try:
            sessions.append(onnxruntime.InferenceSession(Path(model_path).name, options))
        except Exception as error:  # onnxruntime raises its own Fail/RuntimeException types with QNN's log text
            return first_line(error)
    while sessions:  # the last first, as onnxruntime's weight-sharing design asks
        sessions.pop()
    return None


def placed_on_cpu(model_path: Path, input_shapes: Mapping[str, list[int]], chip: Chipset) -> dict[str, int]:
    """Op types, by count, of the layers the installed QNN provider leaves to the CPU when it loads the model for
    `chip`'s HTP (a float graph in FP16), its dynamic dimensions set as `estimate` sets them. It compiles the graph
    to do so, in a fresh process: seconds for a small graph, minutes for a UNet."""
    with tempfile.TemporaryDirectory(prefix="edgefusion-placement-") as work:
        loaded, header = model_path, onnx.load(str(model_path), load_external_data=False)
        declared = [value.SerializeToString() for value in header.graph.input]
        fix_input_shapes(header, input_shapes)
        if [value.SerializeToString() for value in header.graph.input] != declared:  # a dynamic dimension was set
            try:  # QNN compiles static shapes only: write them in, with the weights
                load_external_data_for_model(header, str(model_path.parent))
            except (OSError, ValueError, onnx.checker.ValidationError) as error:
                raise UserError(f"cannot read the weights of {model_path} ({first_line(error)}); --ask-qnn compiles "
                                "the model, so its external data must be beside it")
            loaded = Path(work) / "model.onnx"
            onnx.save(header, str(loaded), save_as_external_data=True, location="model.onnx.data")
        options = {**chip.htp_target.provider_options(), "enable_htp_fp16_precision": "1"}
        placed = in_fresh_process(cpu_op_types, str(loaded), options, temp_parent=Path(work))
    if isinstance(placed, str):
        raise UserError(f"the QNN provider could not load {model_path} for {chip.marketing_name}: {placed}")
    return placed


def cpu_op_types(model_path: str, provider_options: dict[str, str]) -> dict[str, int] | str:
    """The op types, by count, that onnxruntime places off the QNN provider; or why the session failed."""
    import onnxruntime

    options = qnn_session_options(provider_options, {"session.record_ep_graph_assignment_info": "1"})
    try:
        session = onnxruntime.InferenceSession(model_path, options)
    except Exception as error:  # onnxruntime's own Fail/RuntimeException types carry QNN's log text
        return first_line(error)
    return op_types(node for subgraph in session.get_provider_graph_assignment_info()
                    if subgraph.ep_name != QNN_EP for node in subgraph.get_nodes())


def match_ir_version(compiled: Path, portable: Path) -> None:
    """Write the EPContext model at the portable model's IR version. onnxruntime stamps its own newest one (14 for
    1.32), which an app's older onnxruntime refuses ("Unsupported model IR version") although the wrapper uses
    nothing newer than the model it was compiled from."""
    model = onnx.load(str(compiled), load_external_data=False)
    model.ir_version = onnx.load(str(portable), load_external_data=False).ir_version
    onnx.save_model(model, str(compiled))


def inspect_context_model(path: Path) -> NpuCompilation:
    """Partitions (EPContext nodes), CPU nodes and boundary conversions of a compiled EPContext model."""
    model = onnx.load(str(path), load_external_data=False)
    inputs = {value.name for value in model.graph.input}
    outputs = {value.name for value in model.graph.output}
    contexts = [node for node in model.graph.node if node.op_type == "EPContext"]
    binaries, version = [], ""
    for node in contexts:
        attributes = {attribute.name: attribute for attribute in node.attribute}
        if "ep_cache_context" in attributes and attributes.get("embed_mode") and attributes["embed_mode"].i == 0:
            binaries.append(attributes["ep_cache_context"].s.decode())
        if "ep_sdk_version" in attributes:
            version = attributes["ep_sdk_version"].s.decode()
    conversions, cpu = [], []
    for node in model.graph.node:
        if node.op_type == "EPContext":
            continue
        at_boundary = any(name in inputs for name in node.input) or any(name in outputs for name in node.output)
        (conversions if at_boundary and node.op_type in IO_CONVERSIONS else cpu).append(f"{node.op_type}:{node.name}")
    binaries = sorted(set(binaries))
    prepared = [prepared_target(path.parent / binary) for binary in binaries]
    return NpuCompilation(path.name, binaries, len(contexts), cpu, conversions, version, prepared)


PREPARED_TARGET = re.compile(rb";soc_type=(SM[0-9A-Z]+);arch=([0-9]+);")


def prepared_target(binary: Path) -> str:
    """The SoC and HTP architecture a QNN context binary was prepared for ("SM8650/v75"), from the graph
    configuration that QNN's HTP backend stores in it; "" when it names none or several."""
    found = {(soc.decode(), int(arch)) for soc, arch in PREPARED_TARGET.findall(binary.read_bytes())}
    return f"{next(iter(found))[0]}/v{next(iter(found))[1]}" if len(found) == 1 else ""


EMULATION_VALUE_FORMS = ("every value", "transcendental values")  # which values written an emulation rate charges for
# Layers whose FP16 emulation computes an exponential, a square root or a reciprocal per value
TRANSCENDENTAL_OPS = {"Sigmoid", "Tanh", "Softmax", "Exp", "Erf", "Gelu", "InstanceNormalization",
                      "LayerNormalization", "GroupNormalization", "Sqrt", "Reciprocal"}


@dataclass(frozen=True)
class EmulationRate:
    """How fast this machine class (2 cores) runs one precision in onnxruntime-qnn's HTP emulation: loading a
    compiled model, and per call seconds per GMAC and per billion of the values that cost (`values`: "every value"
    written, in the HTP's tiled layout for image tensors, or the "transcendental values" that TRANSCENDENTAL_OPS
    write); fitted by benchmarks/emulation_rates.py."""

    load_s: float
    s_per_gmac: float
    s_per_gvalue: float
    values: str  # one of EMULATION_VALUE_FORMS

    def seconds(self, costs: list[LayerCost], calls: int) -> float:
        per_call = (self.s_per_gmac * sum(cost.macs for cost in costs)
                    + self.s_per_gvalue * sum(costed_values(costs, self.values))) / 1e9
        return self.load_s + calls * per_call


def costed_values(costs: list[LayerCost], values: str) -> list[int]:
    """Per layer, the values an emulation rate charges for (see EmulationRate.values)."""
    return [cost.tiled_elements + cost.untiled_elements
            if values == "every value" or cost.op_type in TRANSCENDENTAL_OPS else 0 for cost in costs]


# Fitted on benchmarks/emulation_rates.measured.jsonl (the tiny preset, bk-sdm-tiny at 256x256 and 512x512, a
# half-width VAE decoder, TAESD), each precision in the form with the smaller leave-one-out error: in W8A16 every
# value written costs alike; in FP16 the MACs and the values of exponentials and norms (TAESD's 71 GMAC of
# convolutions and ReLUs emulate in 33 s, SD's decoder at 256x256 with GroupNorms and SiLUs in 512 s).
EMULATION_RATES = {"w8a16": EmulationRate(load_s=0.24, s_per_gmac=1.382, s_per_gvalue=22.14, values="every value"),
                   "fp16": EmulationRate(load_s=0.38, s_per_gmac=0.46, s_per_gvalue=1403.0, values="transcendental values")}
EMULATION_RATES |= {"w8a16-mixed": EMULATION_RATES["w8a16"], "fp32": EMULATION_RATES["fp16"]}
AUTO_VERIFY_SECONDS = 120.0  # --verify-npu auto checks, besides the quantized components, those whose check per chipset takes this long at most


def emulation_seconds(model_path: Path, precision: str, calls: int) -> float:
    """Expected time to load a compiled graph and run it `calls` times in HTP emulation on this machine class."""
    return EMULATION_RATES[precision].seconds(layer_costs(load_shaped(model_path), precision, 0), calls)


@dataclass(frozen=True)
class NpuVerification(StageResult):
    """How the compiled model's output in HTP emulation compares with the CPU on one held-out call."""

    sample: str  # which call of the held-out image: "t=999" for a UNet step, "call 1" otherwise
    sqnr_vs_cpu_db: float  # against the same portable graph on the CPU with exact QDQ arithmetic
    sqnr_vs_float_db: float  # against the float component
    seconds: float  # loading the compiled model and running the call in HTP emulation

    def summary(self) -> str:
        return (f"{self.sample}: HTP emulation vs CPU {self.sqnr_vs_cpu_db:.1f} dB, vs float {self.sqnr_vs_float_db:.1f} dB, "
                f"{self.seconds:.0f} s emulated")


def sample_label(feed: dict[str, np.ndarray], index: int) -> str:
    """A held-out call's name: its timestep for a UNet step, else its position."""
    return f"t={int(round(float(feed['timestep'].ravel()[0])))}" if "timestep" in feed else f"call {index + 1}"


def verify_in_emulation(compiled: Path, portable: Path, float_model: Path, sample: dict[str, np.ndarray], label: str,
                        target: HtpTarget) -> NpuVerification:
    """Run the compiled EPContext model in HTP emulation on one held-out call against the CPU and the float model."""
    start = time.perf_counter()
    npu = htp_session(compiled, target).run(None, sample)[0]
    seconds = time.perf_counter() - start
    cpu, reference = (session.run(None, sample)[0] for session in (cpu_session(portable, exact=True), cpu_session(float_model)))
    return NpuVerification(label, round(sqnr_db(cpu, npu), 2), round(sqnr_db(reference, npu), 2), round(seconds, 1))
