"""GroupNorm traced in channels-last form, the form QNN's HTP backend computes correctly with 16-bit activations.

torch's ONNX exporter writes `group_norm` as Reshape to (N, G, -1), InstanceNormalization, Reshape back, Mul, Add.
Followed by SiLU and a Conv (every resnet block), that NCHW channel-group round trip computes garbage on QNN's HTP
backend with 16-bit activations (-0.3 dB against the CPU in HTP emulation for the tiny preset's W8A16 UNet).
Grouping the channels in NHWC terms (Transpose, Reshape to (N, spatial, G, C/G), statistics over axes 1 and 3)
is correct there and equals `group_norm` to ~1e-7.
"""

from __future__ import annotations

from contextlib import contextmanager
from types import MethodType
from typing import Iterator

import torch


def channels_last_group_norm(x: torch.Tensor, num_groups: int, weight: torch.Tensor | None,
                             bias: torch.Tensor | None, eps: float) -> torch.Tensor:
    """`torch.nn.functional.group_norm` for inputs [N, C, *spatial], with group statistics taken channels-last."""
    batch, channels, spatial = x.shape[0], x.shape[1], x.shape[2:]
    to_last = (0, *range(2, x.dim()), 1)
    to_first = (0, x.dim() - 1, *range(1, x.dim() - 1))
    grouped = x.permute(to_last).reshape(batch, -1, num_groups, channels // num_groups)
    centered = grouped - grouped.mean(dim=(1, 3), keepdim=True)
    variance = (centered * centered).mean(dim=(1, 3), keepdim=True)
    normalized = (centered / torch.sqrt(variance + eps)).reshape(batch, *spatial, channels)
    if weight is not None:
        normalized = normalized * weight
    if bias is not None:
        normalized = normalized + bias
    return normalized.permute(to_first)


def _forward(norm: torch.nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    return channels_last_group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps)


@contextmanager
def channels_last_group_norms(module: torch.nn.Module) -> Iterator[int]:
    """Within the block, every `nn.GroupNorm` in `module` runs (and traces) in channels-last form; yields their count."""
    norms = [child for child in module.modules() if isinstance(child, torch.nn.GroupNorm)]
    for norm in norms:
        norm.forward = MethodType(_forward, norm)
    try:
        yield len(norms)
    finally:
        for norm in norms:
            del norm.forward
