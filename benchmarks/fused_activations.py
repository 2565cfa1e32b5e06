"""Which activations QNN folds into the MAC layer before them, what GELU becomes, whether a Linear's bias and
a GroupNorm's scale and shift run as ops of their own, and what grouped and narrow convolutions cost: print JSON.

`estimate` charges nothing for an activation it takes to be folded into the convolution or MatMul before it, for
a MatMul's bias Add or for a GroupNorm's affine (the exporter's Mul and Add after its InstanceNormalization), and
charges GELU written out by torch's exporter (Div-Erf-Add-Mul-Mul) as five elementwise layers. This builds one
small graph per case (Conv 64->64 3x3, the activation or a GroupNorm of 32 groups with a drawn scale and shift,
Conv again, at 56x56; GELU and nothing also between two Linear layers, 77 tokens), compiles it for the 8 Gen 3
in FP16 and in W8A16 (onnxruntime's QNN pre-processing, then QDQ calibrated on two random inputs), runs it once in
onnxruntime-qnn's HTP emulation with QNN's per-op profiling and lists the ops of the finalized graph between the
two MAC layers: an empty list means QNN folded what lies between them.
`estimate_forms.py` turns the answer into a form of the estimate ("activations folded as QNN compiles them").
"grouped convolutions" compiles a chain of 3x3 Convs (32 channels at 64x64: dense, 4 groups, depthwise; 256
channels at 28x28: 8 groups, then dense) the same way and gives each one's emulated time as a share of the dense
Conv of its shape: `estimate` costs a grouped Conv that is not depthwise with each group's input channels padded
to 32, as the dense Conv for 4 groups of 8 channels and at an eighth of it for 8 groups of 32.
"narrow convolutions" does the same for dense 3x3 Convs with fewer than 32 channels on one side (a first layer on
a 3-channel image; then at 64x64, 32 -> 3, 3 -> 32, 32 -> 8 and 8 -> 32 channels) against the 32 -> 32 Conv that
follows them: whether the HTP charges a block of 32 channels for the narrow side (`estimate_forms.py`, "output
channels in blocks of 32" and "input and output channels in blocks of 32").

    .venv/bin/python benchmarks/fused_activations.py [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from emulation_rates import random_feeds  # noqa: E402

from edgefusion_export.export.onnx_export import simplify, trace  # noqa: E402
from edgefusion_export.memory import PeakMemory  # noqa: E402
from edgefusion_export.profile.emulator_backend import profile_component  # noqa: E402
from edgefusion_export.quantize import qdq  # noqa: E402
from edgefusion_export.targets.chipsets import chipset  # noqa: E402
from edgefusion_export.targets.snapdragon import compile_for_chipset  # noqa: E402

CHIPSET = "snapdragon-8-gen-3"
MAC_OP_TYPES = {"Conv", "MatMul", "MatMulAddFusion", "FullyConnected", "Gemm"}


class SiLU(torch.nn.Module):
    """x * sigmoid(x) as EfficientNet and YOLO write it (torch exports nn.SiLU as the same two nodes)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


def group_norm() -> torch.nn.GroupNorm:
    """A GroupNorm with the scale and shift of a trained one (its initial 1 and 0 would be simplified away)."""
    norm = torch.nn.GroupNorm(32, 64)
    with torch.no_grad():
        norm.weight.normal_(1.0, 0.1), norm.bias.normal_(0.0, 0.1)
    return norm


ACTIVATIONS = {"relu": torch.nn.ReLU, "relu6": torch.nn.ReLU6, "leaky_relu": lambda: torch.nn.LeakyReLU(0.1),
               "sigmoid": torch.nn.Sigmoid, "silu": SiLU, "tanh": torch.nn.Tanh, "hardswish": torch.nn.Hardswish,
               "gelu": torch.nn.GELU, "group_norm": group_norm, "nothing": torch.nn.Identity}
CASES = [(name, False) for name in ACTIVATIONS if name != "nothing"] + [("gelu", True), ("nothing", True)]


class Between(torch.nn.Module):
    """An activation between two MAC layers."""

    def __init__(self, activation: torch.nn.Module, linear: bool):
        super().__init__()
        make = (lambda: torch.nn.Linear(256, 256)) if linear else (lambda: torch.nn.Conv2d(64, 64, 3, padding=1))
        self.first, self.activation, self.second = make(), activation, make()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.activation(self.first(x)))


def emulated_rows(module: torch.nn.Module, example: torch.Tensor, name: str, folder: Path) -> dict[str, list]:
    """The module compiled for the chipset in FP16 and in W8A16 and profiled once in HTP emulation: its op rows."""
    folder.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        exported = trace(module.eval(), [example], folder / "model.onnx", ["input_0"], ["output"])
    (folder / "simplified").mkdir(exist_ok=True)
    (folder / "prepared").mkdir(exist_ok=True)
    prepared, _ = qdq.prepare(simplify(exported, folder / "simplified")[0], folder / "prepared")
    graphs = {"fp16": prepared, "w8a16": qdq.quantize_w8a16(prepared, random_feeds(prepared, 2), folder / "w8a16.onnx")}
    chip = chipset(CHIPSET)
    rows = {}
    for precision, graph in graphs.items():
        (folder / precision).mkdir(exist_ok=True)
        compiled = compile_for_chipset(graph, chip, folder / precision, allow_cpu_fallback=False, mode="2")
        rows[precision] = profile_component(folder / precision / compiled.file, name, chip, folder / precision)
    return rows


def ops_between(name: str, linear: bool, folder: Path) -> dict[str, list[str]]:
    """The op types QNN runs between the two MAC layers, per precision."""
    torch.manual_seed(0)
    example = torch.randn(1, 77, 256) if linear else torch.randn(1, 64, 56, 56)
    ops = {}
    for precision, rows in emulated_rows(Between(ACTIVATIONS[name](), linear), example, name, folder).items():
        macs = [i for i, row in enumerate(rows) if row.op_type in MAC_OP_TYPES]
        # ops QNN or onnxruntime's pre-processing named themselves go by their name, reshapes left out
        ops[precision] = [row.name if row.op_type == "QNN:op" else row.op_type for row in rows[macs[0] + 1:macs[1]]
                          if "reshape" not in row.name]
    return ops


class GroupedConvs(torch.nn.Module):
    """Dense, 4-group and depthwise 3x3 Convs at 32 channels, then 8-group and dense ones at 256."""

    def __init__(self):
        super().__init__()
        conv = lambda width, groups: torch.nn.Conv2d(width, width, 3, padding=1, groups=groups)  # noqa: E731
        self.dense32, self.groups4, self.depthwise32 = conv(32, 1), conv(32, 4), conv(32, 32)
        self.widen = torch.nn.Conv2d(32, 256, 2, stride=2)
        self.groups8, self.dense256 = conv(256, 8), conv(256, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.widen(self.depthwise32(self.groups4(self.dense32(x))))[..., 2:30, 2:30]
        return self.dense256(self.groups8(x))


class NarrowConvs(torch.nn.Module):
    """3x3 Convs with fewer than 32 channels on one side, from a 3-channel image, then a dense one at 32."""

    def __init__(self):
        super().__init__()
        conv = lambda inputs, outputs: torch.nn.Conv2d(inputs, outputs, 3, padding=1)  # noqa: E731
        self.first, self.to3, self.from3, self.to8, self.from8, self.dense32 = (
            conv(3, 32), conv(32, 3), conv(3, 32), conv(32, 8), conv(8, 32), conv(32, 32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense32(self.from8(self.to8(self.from3(self.to3(self.first(x))))))


GROUPED_SHARES = {"4 groups of 8 channels": ("groups4", "dense32"),
                  "depthwise (32 groups of 1)": ("depthwise32", "dense32"),
                  "8 groups of 32 channels": ("groups8", "dense256")}
NARROW_SHARES = {f"{name} (exact MACs: {macs})": (layer, "dense32") for name, layer, macs in (
    ("3 -> 32 on the graph's input", "first", "0.09"), ("32 -> 3", "to3", "0.09"), ("3 -> 32", "from3", "0.09"),
    ("32 -> 8", "to8", "0.25"), ("8 -> 32", "from8", "0.25"))}


def conv_shares(module: torch.nn.Module, example: torch.Tensor, shares: dict[str, tuple[str, str]],
                folder: Path) -> dict[str, dict[str, float]]:
    """Per precision, each named Conv's emulated time as a share of its reference Conv's (`shares`: name -> both)."""
    shares_by_precision = {}
    for precision, rows in emulated_rows(module, example, folder.name, folder).items():
        times = {row.name.split("/")[0]: row.time_ms for row in rows if row.op_type == "Conv"}
        shares_by_precision[precision] = {name: round(times[layer] / times[reference], 2)
                                          for name, (layer, reference) in shares.items()}
    return shares_by_precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgefusion-fused-activations")
    args = parser.parse_args()
    start = time.perf_counter()
    with PeakMemory() as peak:
        result = {f"{name} after {'Linear' if linear else 'Conv'}": ops_between(name, linear, args.work / f"{name}-{linear}")
                  for name, linear in CASES}
        torch.manual_seed(0)
        grouped = conv_shares(GroupedConvs(), torch.randn(1, 32, 64, 64), GROUPED_SHARES, args.work / "grouped")
        narrow = conv_shares(NarrowConvs(), torch.randn(1, 3, 64, 64), NARROW_SHARES, args.work / "narrow")
    print(json.dumps({"chipset": CHIPSET, "ops between the two MAC layers": result,
                      "grouped convolutions, emulated time over the dense Conv's": grouped,
                      "narrow convolutions, emulated time over the 32 -> 32 Conv's": narrow,
                      "seconds": round(time.perf_counter() - start, 1), "peak_rss_gb": round(peak.mb / 1024, 2)}, indent=1))


if __name__ == "__main__":
    main()
