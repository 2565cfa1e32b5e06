"""The LCM sampling plan (what the manifest stores) and the one LCM update every runner applies."""

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


def lcm_sampling_plan(scheduler_config: dict[str, Any], num_steps: int, guidance_scale: float,
                      guidance_embedding_dim: int | None, latent_shape: list[int],
                      latent_scaling_factor: float) -> SamplingPlan:
    """Timesteps and per-step coefficients from diffusers' own `LCMScheduler`."""
    from diffusers import LCMScheduler

    scheduler = LCMScheduler.from_config(scheduler_config)
    scheduler.set_timesteps(num_steps)
    timesteps = [int(t) for t in scheduler.timesteps]
    alphas = scheduler.alphas_cumprod
    steps = []
    for index, timestep in enumerate(timesteps):
        previous = timesteps[index + 1] if index + 1 < len(timesteps) else timestep
        c_skip, c_out = scheduler.get_scalings_for_boundary_condition_discrete(timestep)
        steps.append(SamplingStep(timestep, float(alphas[timestep]), float(alphas[previous]), float(c_skip), float(c_out)))
    embedding = None
    if guidance_embedding_dim:
        embedding = guidance_scale_embedding(guidance_scale - 1.0, guidance_embedding_dim).tolist()
    return SamplingPlan(steps, guidance_scale, embedding, latent_scaling_factor, latent_shape)


def guidance_scale_embedding(w: float, dim: int) -> np.ndarray:
    """LCM's sinusoidal embedding of 1000 w, computed in float32 as diffusers does."""
    import torch

    half = dim // 2
    frequencies = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
    angles = torch.tensor([w * 1000.0], dtype=torch.float32)[:, None] * frequencies[None, :]
    embedding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        embedding = torch.nn.functional.pad(embedding, (0, 1))
    return embedding[0].numpy()


def lcm_step(step: SamplingStep, latent: np.ndarray, noise_prediction: np.ndarray,
             noise: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """One LCM update: returns (next latent, denoised latent). `noise` is None after the last step."""
    x0 = (latent - math.sqrt(1.0 - step.alpha_cumprod) * noise_prediction) / math.sqrt(step.alpha_cumprod)
    denoised = (step.c_out * x0 + step.c_skip * latent).astype(np.float32)
    if noise is None:
        return denoised, denoised
    next_latent = math.sqrt(step.alpha_cumprod_prev) * denoised + math.sqrt(1.0 - step.alpha_cumprod_prev) * noise
    return next_latent.astype(np.float32), denoised
