"""NPU-ready component wrappers: plain tensors in and out, no dict outputs.

One wrapper per row of the component table (`edgefusion_export.components`), whose declared inputs and outputs
are its forward's arguments and result.
"""

from __future__ import annotations

import torch

from ..sources.loader import TorchComponents


class TextEncoder(torch.nn.Module):
    component = "text_encoder"

    def __init__(self, components: TorchComponents) -> None:
        super().__init__()
        self.text_encoder = components.text_encoder

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(input_ids.to(torch.int64), return_dict=False)[0]


class UNet(torch.nn.Module):
    component = "unet"

    def __init__(self, components: TorchComponents) -> None:
        super().__init__()
        self.unet = components.unet

    def forward(self, latent: torch.Tensor, timestep: torch.Tensor, text_embeddings: torch.Tensor,
                guidance_embedding: torch.Tensor | None = None) -> torch.Tensor:
        return self.unet(latent, timestep, encoder_hidden_states=text_embeddings,
                         timestep_cond=guidance_embedding, return_dict=False)[0]


class VaeDecoder(torch.nn.Module):
    """The latent scaling factor is folded in."""

    component = "vae_decoder"

    def __init__(self, components: TorchComponents) -> None:
        super().__init__()
        self.vae = components.vae
        self.scaling_factor = float(components.vae.config.scaling_factor)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        image = self.vae.decode(latent / self.scaling_factor, return_dict=False)[0]
        return (image / 2 + 0.5).clamp(0, 1)


WRAPPERS: dict[str, type[TextEncoder] | type[UNet] | type[VaeDecoder]] = {
    wrapper.component: wrapper for wrapper in (TextEncoder, UNet, VaeDecoder)}


def wrap(components: TorchComponents, name: str) -> torch.nn.Module:
    """The export wrapper of one component."""
    return WRAPPERS[name](components).eval()
