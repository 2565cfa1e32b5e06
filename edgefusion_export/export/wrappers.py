"""NPU-ready component wrappers: static batch-1 shapes, plain tensors in and out, no dict outputs.

Component names follow the diffusers subfolders (qai-hub-models uses the same): text_encoder, unet, vae_decoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..sources.loader import ModelSource, TorchComponents

COMPONENTS = ("text_encoder", "unet", "vae_decoder")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: list[int]
    dtype: str  # numpy dtype name



class TextEncoder(torch.nn.Module):
    """int32 token ids [1, 77] -> text embeddings [1, 77, hidden]."""

    def __init__(self, text_encoder: torch.nn.Module) -> None:
        super().__init__()
        self.text_encoder = text_encoder

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(input_ids.to(torch.int64), return_dict=False)[0]


class UNet(torch.nn.Module):
    """(latent, timestep, text embeddings[, guidance embedding]) -> predicted noise."""

    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, latent: torch.Tensor, timestep: torch.Tensor, text_embeddings: torch.Tensor,
                guidance_embedding: torch.Tensor | None = None) -> torch.Tensor:
        return self.unet(latent, timestep, encoder_hidden_states=text_embeddings,
                         timestep_cond=guidance_embedding, return_dict=False)[0]


class VaeDecoder(torch.nn.Module):
    """Denoised latent -> RGB image in [0, 1]; the latent scaling factor is folded in."""

    def __init__(self, vae: torch.nn.Module) -> None:
        super().__init__()
        self.vae = vae
        self.scaling_factor = float(vae.config.scaling_factor)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        image = self.vae.decode(latent / self.scaling_factor, return_dict=False)[0]
        return (image / 2 + 0.5).clamp(0, 1)


def component_io(source: ModelSource, name: str, height: int, width: int) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Static input and output specs of one component at batch 1."""
    tokens = source.tokenizer.max_length
    hidden = source.text_config["hidden_size"]
    channels = source.unet_config.get("in_channels", 4)
    latent = [1, channels, height // source.vae_scale_factor, width // source.vae_scale_factor]
    if name == "text_encoder":
        return [TensorSpec("input_ids", [1, tokens], "int32")], [TensorSpec("text_embeddings", [1, tokens, hidden], "float32")]
    if name == "unet":
        inputs = [TensorSpec("latent", latent, "float32"), TensorSpec("timestep", [1], "float32"),
                  TensorSpec("text_embeddings", [1, tokens, hidden], "float32")]
        if source.guidance_embedding_dim:
            inputs.append(TensorSpec("guidance_embedding", [1, source.guidance_embedding_dim], "float32"))
        return inputs, [TensorSpec("noise_prediction", latent, "float32")]
    if name == "vae_decoder":
        return [TensorSpec("latent", latent, "float32")], [TensorSpec("image", [1, 3, height, width], "float32")]
    raise ValueError(f"unknown component {name}")


def wrap(components: TorchComponents, name: str) -> torch.nn.Module:
    """The export wrapper of one component."""
    wrapper = {"text_encoder": lambda: TextEncoder(components.text_encoder),
               "unet": lambda: UNet(components.unet),
               "vae_decoder": lambda: VaeDecoder(components.vae)}[name]()
    return wrapper.eval()
