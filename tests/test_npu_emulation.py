"""Compiled NPU models executed in onnxruntime-qnn's HTP emulation and matched against the CPU."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import onnx
import pytest
import torch

from edgefusion_export.export.group_norm import channels_last_group_norm, channels_last_group_norms
from edgefusion_export.export.onnx_export import OPSET, simplify
from edgefusion_export.metrics import sqnr_db
from edgefusion_export.quantize import qdq
from edgefusion_export.runtime.sessions import cpu_session, htp_session
from edgefusion_export.targets.chipsets import chipset

SIZE = 8


class ResnetHead(torch.nn.Module):
    """Conv -> GroupNorm -> SiLU -> Conv, the head of every resnet block."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.norm, self.conv2 = torch.nn.Conv2d(4, 32, 3, padding=1), torch.nn.GroupNorm(8, 32), \
            torch.nn.Conv2d(32, 32, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.nn.functional.silu(self.norm(self.conv1(x))))


def emulated_sqnr(channels_last: bool, folder) -> float:
    """Export and simplify ResnetHead as the compiler does (with or without the channels-last GroupNorm),
    W8A16-quantize it with the project's quantizer, run it on the HTP backend (no CPU fallback) and return its SQNR against the
    same QDQ graph on the CPU with exact QDQ arithmetic."""
    rng = np.random.default_rng(1)
    module = ResnetHead().eval()
    exported, quantized_path = folder / "exported" / "float.onnx", folder / "w8a16.onnx"
    exported.parent.mkdir()
    with warnings.catch_warnings(), channels_last_group_norms(module) if channels_last else contextlib.nullcontext():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(1, 4, SIZE, SIZE),), str(exported), input_names=["x"],
                          output_names=["y"], opset_version=OPSET, dynamo=True, external_data=False, verbose=False)
    float_path, _ = simplify(exported, folder)
    ops = {node.op_type for node in onnx.load(str(float_path)).graph.node}
    assert ("InstanceNormalization" in ops) != channels_last  # torch's own group_norm export is the NCHW form
    samples = [{"x": rng.standard_normal((1, 4, SIZE, SIZE)).astype(np.float32)} for _ in range(8)]
    qdq.quantize_w8a16(float_path, samples, quantized_path)
    feed = {"x": rng.standard_normal((1, 4, SIZE, SIZE)).astype(np.float32)}
    reference = cpu_session(quantized_path, exact=True).run(None, feed)[0]
    emulated = htp_session(quantized_path, chipset("snapdragon-8-gen-3").htp_target, cpu_fallback=False).run(None, feed)[0]
    return sqnr_db(reference, emulated)


def test_channels_last_group_norm_computes_on_the_htp_backend_where_torchs_form_does_not(tmp_path):
    """torch exports group_norm as Reshape (N, G, -1) -> InstanceNormalization -> Reshape -> Mul -> Add, and
    onnxsim drops the Mul and Add of an untrained norm (ones and zeros). Followed by SiLU and a Conv with 16-bit
    activations, QNN's HTP backend computes garbage for it (~0 dB; correct with
    uint8 activations, or without the SiLU or the Conv). The EP hands QNN a faithful graph (its JSON dump has the
    same ops and encodings), so the fault is inside QNN's HTP backend, whose graph preparation also writes the
    context binaries that phones load. The channels-last form the compiler exports instead is correct."""
    for name in ("torch", "channels_last"):
        (tmp_path / name).mkdir()
    assert emulated_sqnr(False, tmp_path / "torch") < 5.0
    assert emulated_sqnr(True, tmp_path / "channels_last") >= 55.0


@pytest.mark.parametrize("shape", [(2, 32, 5, 7), (1, 64, 12)])
def test_channels_last_group_norm_equals_torch(shape):
    norm = torch.nn.GroupNorm(8, shape[1])
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(shape) * 3 + 1
    expected = norm(x)
    with channels_last_group_norms(norm) as count:
        assert count == 1
        actual = norm(x)
    torch.testing.assert_close(actual, expected, atol=2e-6, rtol=0)
    torch.testing.assert_close(channels_last_group_norm(x, 8, None, None, 1e-5),
                               torch.nn.functional.group_norm(x, 8), atol=2e-6, rtol=0)
    assert "forward" not in vars(norm)  # restored after the block
