"""Ahead-of-time compilation for the Hexagon NPU with onnxruntime's QNN execution provider (onnxruntime-qnn).

Each component becomes an EPContext ONNX plus its QNN context binary for one chipset. The compile reports how
many NPU partitions the graph became and which nodes stayed on the CPU; more than one partition or any CPU
node fails the build unless `--allow-cpu-fallback`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import onnx

from ..errors import UserError
from ..runtime.sessions import first_line, qnn_devices
from .chipsets import Chipset

IO_CONVERSIONS = ("QuantizeLinear", "DequantizeLinear", "Cast")


@dataclass
class NpuCompilation:
    """What one component became on the NPU."""

    file: str
    context_binaries: list[str]
    partitions: int
    cpu_nodes: list[str] = field(default_factory=list)
    io_conversions: list[str] = field(default_factory=list)
    qnn_sdk_version: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def compile_for_chipset(model_path: Path, chipset: Chipset, folder: Path, allow_cpu_fallback: bool) -> NpuCompilation:
    """Compile `model_path` for `chipset` into `folder/<name>.qnn.onnx` and its context binary."""
    import onnxruntime

    name = model_path.name.removesuffix(".onnx")
    output = folder / f"{name}.{chipset.name}.onnx"
    for stale in folder.glob(f"{name}.{chipset.name}*"):  # onnxruntime refuses to overwrite a context model
        stale.unlink()
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("ep.context_enable", "1")
    options.add_session_config_entry("ep.context_file_path", str(output))
    options.add_session_config_entry("ep.context_embed_mode", "0")
    options.add_provider_for_devices(qnn_devices(), {
        "backend_type": "htp", "soc_model": str(chipset.qnn_soc_model), "htp_arch": str(chipset.htp_arch_number),
        "enable_htp_fp16_precision": "1", "htp_graph_finalization_optimization_mode": "3"})
    start = time.perf_counter()
    try:
        onnxruntime.InferenceSession(str(model_path), options)
    except Exception as error:  # onnxruntime raises its own Fail/RuntimeException types with QNN's log text
        raise UserError(f"QNN could not compile {name} for {chipset.marketing_name}: {first_line(error)}")
    compilation = inspect_context_model(output)
    compilation.seconds = round(time.perf_counter() - start, 1)
    if not allow_cpu_fallback and (compilation.partitions != 1 or compilation.cpu_nodes):
        raise UserError(f"{name} is {compilation.partitions} NPU partitions with {len(compilation.cpu_nodes)} CPU nodes "
                        f"({', '.join(compilation.cpu_nodes[:5])}) on {chipset.marketing_name}; pass --allow-cpu-fallback "
                        "to accept it, or use a W8A16 recipe")
    return compilation


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
    return NpuCompilation(path.name, sorted(set(binaries)), len(contexts), cpu, conversions, version)
