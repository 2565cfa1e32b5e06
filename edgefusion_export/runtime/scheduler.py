"""The LCM sampling plan (what the manifest stores) and the one LCM update every runner applies.

The plan is built at compile time from the model's scheduler (`sources.sampling`); runners only read it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SamplingStep:
    timestep: int
    alpha_cumprod: float
    alpha_cumprod_prev: float
    c_skip: float
    c_out: float


@dataclass(frozen=True)
class SamplingPlan:
    steps: list[SamplingStep]
    guidance_scale: float
    guidance_embedding: list[float] | None
    latent_scaling_factor: float
    latent_shape: list[int]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "SamplingPlan":
        return cls(**{**data, "steps": [SamplingStep(**step) for step in data["steps"]]})


def lcm_step(step: SamplingStep, latent: np.ndarray, noise_prediction: np.ndarray,
             noise: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """One LCM update: returns (next latent, denoised latent). `noise` is None after the last step."""
    x0 = (latent - math.sqrt(1.0 - step.alpha_cumprod) * noise_prediction) / math.sqrt(step.alpha_cumprod)
    denoised = (step.c_out * x0 + step.c_skip * latent).astype(np.float32)
    if noise is None:
        return denoised, denoised
    next_latent = math.sqrt(step.alpha_cumprod_prev) * denoised + math.sqrt(1.0 - step.alpha_cumprod_prev) * noise
    return next_latent.astype(np.float32), denoised
