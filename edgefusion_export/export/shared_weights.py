"""One component's graphs at several image sizes over one external weights file: each distinct tensor stored once.

The sizes' graphs are traced from the same weights, so their weight tensors are byte-identical (a W8A16 weight's
int8 values and per-channel scales come from the weight alone); what differs per size (activation scales, a
quantized bias that depends on them, shapes) is small and stays inside each graph. onnxruntime reads external
data by file, offset and length, so every graph points into the one file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx.external_data_helper import _get_all_tensors, set_external_data

from ..errors import UserError
from ..stages import StageResult

SHARED_WEIGHTS_SUFFIX = ".weights"
MIN_SHARED_BYTES = 64  # smaller tensors (scalar scales and zero points) stay in their graph
PAGE, PAGE_ALIGNED_BYTES = 4096, 2**16  # tensors from 64 KiB start on a page (onnxruntime can map them); others on 64 bytes


@dataclass(frozen=True)
class SharedWeights(StageResult):
    graphs: dict[str, str]  # graph name -> its ONNX file in the folder
    weights_file: str
    weights_bytes: int  # the shared file
    separate_bytes: int  # what the graphs' tensors would take stored per graph

    def summary(self) -> str:
        return (f"{len(self.graphs)} graphs over {self.weights_bytes / 2**20:.1f} MB of weights "
                f"({self.separate_bytes / 2**20:.1f} MB as separate files)")


def share_weights(folder: Path, models: dict[str, Path], files: dict[str, str], weights_file: str) -> SharedWeights:
    """Write each model of `models` (graph name -> ONNX with its weights) to `folder/files[name]`, its tensors of
    MIN_SHARED_BYTES or more in `folder/weights_file`, each distinct byte string once; then check that every
    written graph reads back the tensors it was given."""
    placed: dict[str, tuple[int, int]] = {}  # sha256 of the bytes -> (offset, length)
    expected: dict[str, dict[str, str]] = {}
    separate = 0
    with open(folder / weights_file, "wb") as weights:
        for name, path in models.items():
            model = onnx.load(str(path))
            expected[name] = {}
            for tensor in _get_all_tensors(model):
                data = tensor.raw_data
                if len(data) < MIN_SHARED_BYTES:
                    continue
                digest = hashlib.sha256(data).hexdigest()
                expected[name][tensor.name] = digest
                separate += len(data)
                if digest not in placed:
                    weights.write(b"\0" * (-weights.tell() % (PAGE if len(data) >= PAGE_ALIGNED_BYTES else 64)))
                    placed[digest] = (weights.tell(), len(data))
                    weights.write(data)
                set_external_data(tensor, weights_file, *placed[digest])
                tensor.data_location = onnx.TensorProto.EXTERNAL
                tensor.ClearField("raw_data")
            onnx.save_model(model, str(folder / files[name]))
        size = weights.tell()
    for name, file in files.items():
        model = onnx.load(str(folder / file))
        read = {tensor.name: hashlib.sha256(tensor.raw_data).hexdigest() for tensor in _get_all_tensors(model)
                if tensor.name in expected[name]}
        if read != expected[name]:
            raise UserError(f"{file} does not read back its own weights from {weights_file}; rerun with --force")
    return SharedWeights(dict(files), weights_file, size, separate)
