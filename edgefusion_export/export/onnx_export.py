"""Passes from torch to ONNX: trace, simplify, change precision. Each checks parity against torch.

Every pass reads one ONNX artifact (or the torch model) and writes one, plus the example inputs and
torch reference outputs that later passes use for their own parity gate without loading torch again.
"""

from __future__ import annotations

import ast
import logging
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import torch

from ..errors import UserError
from ..graphs import load_full, save_model
from ..runtime.sessions import cpu_session
from ..stages import StageResult
from ..metrics import cosine_similarity, sqnr_db
from ..sources.loader import ModelSource
from .group_norm import channels_last_group_norms
from .npu_rewrites import make_npu_friendly
from ..components import COMPONENTS, ImageSize, TensorSpec
from .wrappers import wrap

OPSET = 18  # opset 17 writes an invalid UNet with the dynamo exporter; 21 emits GroupNormalization
EXAMPLE_PROMPT = "a photo of an astronaut riding a horse on mars"
EXAMPLE_SEED = 0
PARITY_FILE = "parity_data.npz"
CONTRIB_FUSIONS = ("fuse_attention", "fuse_gqa")  # onnxsim passes writing com.microsoft ops, which QNN leaves on the CPU
MIN_PARITY_SQNR_DB = {"fp32": 60.0, "fp16": 30.0, "w8a16": 15.0}  # w8a16: a sanity check; fidelity has its own gate
IDENTICAL_SQNR_DB = 999.0  # what the reports write for an exact match (JSON has no infinity)


@dataclass(frozen=True)
class Parity:
    """How closely an ONNX graph reproduces the torch reference on the example inputs."""

    sqnr_db: float
    cosine: float
    max_abs_error: float

    def as_dict(self) -> dict[str, float]:
        return {"sqnr_db": round(self.sqnr_db, 2) if np.isfinite(self.sqnr_db) else IDENTICAL_SQNR_DB,
                "cosine": self.cosine, "max_abs_error": self.max_abs_error}


@dataclass(frozen=True)
class ExportResult(StageResult):
    """A traced graph and its parity with torch on the example inputs."""

    parity: dict[str, float]

    def summary(self) -> str:
        return f"parity {self.parity['sqnr_db']:.1f} dB"


@dataclass(frozen=True)
class SimplifyResult(StageResult):
    nodes_before: int
    nodes_after: int
    simplified: bool
    npu_rewrites: dict[str, int]
    parity: dict[str, float]

    def summary(self) -> str:
        return f"nodes {self.nodes_before} -> {self.nodes_after}  parity {self.parity['sqnr_db']:.1f} dB"


@dataclass(frozen=True)
class PrecisionResult(ExportResult):
    """A float component at its final precision (fp32 as exported, or converted to fp16)."""

    precision: str


def example_inputs(source: ModelSource, name: str, inputs: list[TensorSpec]) -> list[torch.Tensor]:
    """Realistic example inputs: a tokenized prompt, a noisy latent at t=999, normalised embeddings."""
    generator = torch.Generator().manual_seed(EXAMPLE_SEED)
    values: list[torch.Tensor] = []
    for spec in inputs:
        if spec.name == "input_ids":
            values.append(torch.tensor([source.tokenizer(EXAMPLE_PROMPT)], dtype=torch.int32))
        elif spec.name == "timestep":
            values.append(torch.tensor([999.0]))
        else:
            values.append(torch.randn(spec.shape, generator=generator))
    return values


def export_component(source: ModelSource, name: str, size: ImageSize | None, folder: Path,
                     channels_last_group_norm: bool = False) -> Path:
    """Trace one component to `folder/name.onnx` (weights in external data) and store parity data.

    `channels_last_group_norm` traces every GroupNorm in the form QNN's HTP backend computes correctly with 16-bit
    quantized activations (see `group_norm`); torch's own form is cheaper on the NPU and right in float.
    """
    inputs, outputs = COMPONENTS[name].io(source, size)
    module = wrap(source.load(), name)
    arguments = example_inputs(source, name, inputs)
    with torch.no_grad():
        reference = module(*arguments).numpy()
    path = folder / f"{name}.onnx"
    with channels_last_group_norms(module) if channels_last_group_norm else nullcontext():
        trace(module, arguments, path, [spec.name for spec in inputs], [spec.name for spec in outputs])
    np.savez(folder / PARITY_FILE, **{spec.name: value.numpy() for spec, value in zip(inputs, arguments)},
             reference=reference)
    return path


def trace(module: torch.nn.Module, arguments: list[torch.Tensor], path: Path, input_names: list[str],
          output_names: list[str]) -> Path:
    """Any torch module to `path` (static shapes, weights in external data, nodes named after their module)."""
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, tuple(arguments), str(path), input_names=input_names, output_names=output_names,
                          opset_version=OPSET, dynamo=True, external_data=True, verbose=False)
    _normalize_names(path)
    return path


def _normalize_names(path: Path) -> None:
    """Name nodes after their torch module, make value names collision-proof, drop exporter metadata.

    Node names become `<module path>/<op>_<index>` (e.g. `unet.down_blocks.1.attentions.0...to_q/MatMul_12`),
    which quantization reports and per-layer profiles map back to the model's structure. Value names get a
    `_v` suffix: onnxruntime's quantizer generates names by appending digits to existing ones (`val_12` ->
    `val_126`), which otherwise collide with the exporter's own `val_<n>` names and corrupt the graph.
    """
    model = onnx.load(str(path), load_external_data=False)
    keep = {value.name for value in [*model.graph.input, *model.graph.output]}

    def rename(name: str) -> str:
        return name if not name or name in keep else f"{name}_v"

    for index, node in enumerate(model.graph.node):
        scopes = next((entry.value for entry in node.metadata_props if entry.key == "pkg.torch.onnx.name_scopes"), "[]")
        modules = ast.literal_eval(scopes)[:-1]  # the last entry is the fx node, the ones before are modules
        node.name = f"{modules[-1] if modules and modules[-1] else 'graph'}/{node.op_type}_{index}"
        del node.metadata_props[:]
        node.input[:] = [rename(name) for name in node.input]
        node.output[:] = [rename(name) for name in node.output]
    for tensor in model.graph.initializer:
        tensor.name = rename(tensor.name)
    for value in model.graph.value_info:
        value.name = rename(value.name)
    del model.metadata_props[:]
    onnx.save(model, str(path))


def simplify(source_path: Path, folder: Path) -> tuple[Path, dict[str, int | bool | dict[str, int]]]:
    """NPU-friendly rewrites, then onnxsim constant folding and shape inference (kept only when it removes nodes).
    onnxsim reads the rewritten graph from its file: handed the loaded model instead, it peaked at 18.6 GB and took
    109 s on SD-1.5's UNet, from the file 4.7 GB and 46 s (benchmarks/simplify_memory.py)."""
    import onnxsim

    model = load_full(source_path)
    rewrites = make_npu_friendly(model)
    before = len(model.graph.node)
    path = save_model(model, folder / source_path.name)
    del model
    try:
        simplified, valid = onnxsim.simplify(str(path), skipped_optimizers=list(CONTRIB_FUSIONS))
    except Exception:  # onnxsim raises plain Exceptions on graphs it cannot handle; the export stays usable
        simplified, valid = None, False
    kept = bool(valid) and len(simplified.graph.node) < before
    if kept:  # onnxsim returns the weights loaded, so its graph can replace the file it read
        _inherit_scopes(simplified)
        save_model(simplified, path)
    return path, {"nodes_before": before, "nodes_after": len(simplified.graph.node) if kept else before,
                  "simplified": kept, "npu_rewrites": rewrites}


def _inherit_scopes(model: onnx.ModelProto) -> None:
    """Nodes that onnxsim created (named `Gemm_3`) take the module scope of the node feeding them."""
    scope_of = {output: node.name.rpartition("/")[0] for node in model.graph.node if "/" in node.name
                for output in node.output}
    for index, node in enumerate(model.graph.node):
        if "/" not in node.name:
            scope = next((scope_of[name] for name in node.input if scope_of.get(name)), "graph")
            node.name = f"{scope}/{node.op_type}_s{index}"
            scope_of.update({output: scope for output in node.output})


def to_fp16(source_path: Path, folder: Path, rewrite: Callable[[onnx.ModelProto], onnx.ModelProto] | None = None) -> Path:
    """Float16 weights and activations, float32 graph inputs and outputs (keeps the runtime simple), then `rewrite`
    (the 8-bit lookup tables of quantize.lookup_tables)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(load_full(source_path), keep_io_types=True, disable_shape_infer=True)
    return save_model(rewrite(model) if rewrite else model, folder / source_path.name)


def check_parity(path: Path, parity_data: Path, precision: str, component: str) -> Parity:
    """Run the graph in onnxruntime on the stored example inputs; fail the build if it drifts from torch."""
    data = np.load(parity_data)
    session = cpu_session(path)
    feeds = {node.name: data[node.name] for node in session.get_inputs()}
    output = session.run(None, feeds)[0]
    reference = data["reference"]
    parity = Parity(sqnr_db(reference, output), cosine_similarity(reference, output),
                    float(np.max(np.abs(reference - output))))
    minimum = MIN_PARITY_SQNR_DB[precision]
    if not parity.sqnr_db >= minimum:
        raise UserError(f"{component} at {precision} does not match torch (SQNR {parity.sqnr_db:.1f} dB < "
                        f"{minimum} dB); the export is wrong, please report it with the build report")
    return parity
