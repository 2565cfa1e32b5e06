"""Compile targets: what each one adds to the portable ONNX bundle, as its own passes and manifest entry."""

from __future__ import annotations

from .base import Target
from .cpu import CpuTarget
from .snapdragon_target import SnapdragonTarget

TARGETS: dict[str, Target] = {target.name: target for target in (CpuTarget(), SnapdragonTarget())}
