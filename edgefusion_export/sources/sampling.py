"""The LCM sampling plan of a model, computed at compile time with diffusers' own `LCMScheduler`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from diffusers import LCMScheduler

from ..runtime.scheduler import SamplingPlan, SamplingStep


def lcm_sampling_plan(scheduler_config: dict[str, Any], num_steps: int, guidance_scale: float,
                      guidance_embedding_dim: int | None, latent_shape: list[int],
                      latent_scaling_factor: float) -> SamplingPlan:
    """Timesteps and per-step coefficients from diffusers' own `LCMScheduler`."""
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
    half = dim // 2
    frequencies = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
    angles = torch.tensor([w * 1000.0], dtype=torch.float32)[:, None] * frequencies[None, :]
    embedding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        embedding = torch.nn.functional.pad(embedding, (0, 1))
    return embedding[0].numpy()
