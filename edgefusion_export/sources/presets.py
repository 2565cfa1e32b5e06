"""Built-in architecture presets: diffusers/transformers configs as plain data.

Preset weights are seeded random numbers: they exercise the whole compiler with the exact
architecture (sizes, latency, memory) and need no network. Real checkpoints are the user's to bring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LCM_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "original_inference_steps": 50,
    "timestep_scaling": 10.0,
    "prediction_type": "epsilon",
    "set_alpha_to_one": True,
    "steps_offset": 1,
    "clip_sample": False,
}

CLIP_VIT_L14_TEXT = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 49407,
}

SD_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}

_SD_UNET_COMMON = {
    "in_channels": 4,
    "out_channels": 4,
    "sample_size": 64,
    "attention_head_dim": 8,
    "cross_attention_dim": 768,
    "use_linear_projection": False,
    "norm_num_groups": 32,
    "time_cond_proj_dim": 256,
}

BK_SDM_TINY_UNET = {
    **_SD_UNET_COMMON,
    "block_out_channels": [320, 640, 1280],
    "down_block_types": ["CrossAttnDownBlock2D"] * 3,
    "up_block_types": ["CrossAttnUpBlock2D"] * 3,
    "mid_block_type": None,
    "layers_per_block": 1,
}

BK_SDM_SMALL_UNET = {
    **_SD_UNET_COMMON,
    "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "mid_block_type": None,
    "layers_per_block": 1,
}

SD_V15_UNET = {
    **_SD_UNET_COMMON,
    "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "layers_per_block": 2,
}

TINY_UNET = {
    **_SD_UNET_COMMON,
    "sample_size": 8,
    "block_out_channels": [32, 64],
    "down_block_types": ["CrossAttnDownBlock2D"] * 2,
    "up_block_types": ["CrossAttnUpBlock2D"] * 2,
    "mid_block_type": None,
    "layers_per_block": 1,
    "attention_head_dim": 4,
    "cross_attention_dim": 32,
    "norm_num_groups": 16,
}

TINY_TEXT = {
    **CLIP_VIT_L14_TEXT,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "projection_dim": 32,
}

TINY_VAE = {
    **SD_VAE,
    "block_out_channels": [16, 16, 32, 32],
    "layers_per_block": 1,
    "norm_num_groups": 8,
    "sample_size": 64,
}


@dataclass(frozen=True)
class Preset:
    """An architecture: one config per component (its random weights are seeded with PRESET_SEED)."""

    name: str
    description: str
    unet: dict[str, Any]
    text_encoder: dict[str, Any]
    vae: dict[str, Any]
    scheduler: dict[str, Any] = field(default_factory=lambda: dict(LCM_SCHEDULER))


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("bk-sdm-tiny", "BK-SDM-Tiny UNet (323.4M) with LCM guidance embedding; EdgeFusion's student",
               BK_SDM_TINY_UNET, CLIP_VIT_L14_TEXT, SD_VAE),
        Preset("bk-sdm-small", "BK-SDM-Small UNet (482M), no mid-block, LCM guidance embedding",
               BK_SDM_SMALL_UNET, CLIP_VIT_L14_TEXT, SD_VAE),
        Preset("sd-v1.5", "Stable Diffusion v1.5 UNet (859.5M) with LCM guidance embedding",
               SD_V15_UNET, CLIP_VIT_L14_TEXT, SD_VAE),
        Preset("tiny", "A few-MB model of the same structure, for tests", TINY_UNET, TINY_TEXT, TINY_VAE),
    )
}
DEFAULT_PRESET = "bk-sdm-tiny"
PRESET_SEED = 0  # the seed of every preset's random weights
