"""Tiny VAE decoders (diffusers' AutoencoderTiny, the TAESD family) in place of a model's own decoder.

TAESD decodes SD-1.x latents with about 1.2M decoder parameters. diffusers' pipelines call
`vae.decode(latents / vae.config.scaling_factor)` whatever the VAE; AutoencoderTiny's scaling factor is 1.0, its
decoder squashes latents with tanh and returns images in [-1, 1]: the export wrapper does exactly that, so the
bundle's `vae_decoder` component needs no special case in any runtime.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError, first_line
from .loader import ModelSource, TorchComponents, hash_files, hash_strings, read_json, weight_file
from .presets import PRESET_SEED

TAESD = "taesd"
# diffusers' AutoencoderTiny defaults, which are TAESD's configuration for SD-1.x latents (block_out_channels is
# what AutoencoderTiny records for pipelines, the decoder's channels).
TAESD_CONFIG: dict[str, Any] = {
    "_class_name": "AutoencoderTiny", "in_channels": 3, "out_channels": 3, "encoder_block_out_channels": [64, 64, 64, 64],
    "decoder_block_out_channels": [64, 64, 64, 64], "act_fn": "relu", "upsample_fn": "nearest", "latent_channels": 4,
    "upsampling_scaling_factor": 2, "num_encoder_blocks": [1, 3, 3, 3], "num_decoder_blocks": [3, 3, 3, 1],
    "latent_magnitude": 3, "latent_shift": 0.5, "force_upcast": False, "scaling_factor": 1.0, "shift_factor": 0.0,
    "block_out_channels": [64, 64, 64, 64],
}


def with_tiny_decoder(source: ModelSource, choice: str, allow_pickle: bool = False) -> ModelSource:
    """`source` decoding with an AutoencoderTiny: "taesd" (TAESD's configuration, seeded random weights) or a
    diffusers AutoencoderTiny folder (config.json + safetensors). Its own VAE stays available for comparison."""
    if choice == TAESD:
        config, description = dict(TAESD_CONFIG), "AutoencoderTiny, TAESD configuration (seeded random weights)"
        fingerprint = hash_strings("taesd", json.dumps(config, sort_keys=True), str(PRESET_SEED))

        def build() -> torch.nn.Module:
            from diffusers import AutoencoderTiny

            torch.manual_seed(PRESET_SEED)
            return AutoencoderTiny.from_config({key: value for key, value in config.items() if key != "block_out_channels"})
    else:
        folder = Path(choice)
        config, weights = _tiny_decoder_folder(folder, allow_pickle)
        description, fingerprint = f"AutoencoderTiny from {folder}", hash_files([weights, folder / "config.json"])

        def build() -> torch.nn.Module:
            from diffusers import AutoencoderTiny

            try:
                return AutoencoderTiny.from_pretrained(folder, torch_dtype=torch.float32,
                                                       use_safetensors=weights.suffix == ".safetensors")
            except (OSError, ValueError, RuntimeError) as error:
                raise UserError(f"could not load the AutoencoderTiny in {folder}: {first_line(error)}")

    replaced: dict[str, torch.nn.Module] = {}  # the model's own VAE from the last load, until asked for

    def load() -> TorchComponents:
        components = source._loader()
        replaced["vae"] = components.vae
        return dataclasses.replace(components, vae=build())

    def own_vae() -> torch.nn.Module:
        vae = replaced.pop("vae", None)
        return vae if vae is not None else source._loader().vae

    return dataclasses.replace(source, vae_config=config, _loader=load, _loaded=None,
                               vae_description=description, vae_fingerprint=fingerprint, own_vae=own_vae)


def _tiny_decoder_folder(folder: Path, allow_pickle: bool) -> tuple[dict[str, Any], Path]:
    """The config and weight file of a diffusers AutoencoderTiny folder, refused with the fix when it is not one."""
    if not (folder / "config.json").is_file():
        raise UserError(f"--vae-decoder {folder} is not a diffusers AutoencoderTiny folder (no config.json); pass a "
                        "folder saved by AutoencoderTiny.save_pretrained (TAESD's layout) or 'taesd'")
    config = read_json(folder / "config.json")
    if config.get("_class_name") != "AutoencoderTiny":
        raise UserError(f"--vae-decoder {folder} holds a {config.get('_class_name', 'unknown model')}, not an "
                        "AutoencoderTiny; pass a TAESD-style folder or 'taesd'")
    return config, weight_file(folder, "diffusion_pytorch_model", allow_pickle)
