"""diffusers' own LCM pipeline on the same weights: the reference the host runner is checked against."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..runtime.pipeline import Noise
from .loader import ModelSource


def torch_noise(seed: int, latent_shape: list[int], num_steps: int) -> Noise:
    """The noise diffusers draws from `torch.Generator().manual_seed(seed)`: the latent, then one per step."""
    generator = torch.Generator().manual_seed(seed)
    latent = torch.randn(latent_shape, generator=generator).numpy()
    steps = [torch.randn(latent_shape, generator=generator).numpy() for _ in range(num_steps - 1)]
    return Noise(latent, np.stack(steps) if steps else np.zeros([0, *latent_shape], np.float32))


def diffusers_image(source: ModelSource, tokenizer_folder: Path, prompt: str, seed: int, num_steps: int,
                    guidance_scale: float, height: int, width: int) -> np.ndarray:
    """[H, W, 3] float image from `LatentConsistencyModelPipeline` with `torch.Generator().manual_seed(seed)`."""
    from diffusers import LatentConsistencyModelPipeline, LCMScheduler
    from transformers import CLIPTokenizer

    components = source.load()
    tokenizer = CLIPTokenizer(str(tokenizer_folder / "vocab.json"), str(tokenizer_folder / "merges.txt"),
                              pad_token=_token(source, source.tokenizer.pad_id),
                              model_max_length=source.tokenizer.max_length)
    pipeline = LatentConsistencyModelPipeline(
        vae=components.vae, text_encoder=components.text_encoder, tokenizer=tokenizer, unet=components.unet,
        scheduler=LCMScheduler.from_config(source.scheduler_config), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipeline.set_progress_bar_config(disable=True)
    with torch.no_grad():
        result = pipeline(prompt, height=height, width=width, num_inference_steps=num_steps,
                          guidance_scale=guidance_scale, generator=torch.Generator().manual_seed(seed), output_type="np")
    return result.images[0]


def _token(source: ModelSource, token_id: int) -> str:
    return next(token for token, index in source.tokenizer.vocab.items() if index == token_id)
