"""NPU-ready component wrappers: static batch-1 shapes, plain tensors in and out, no dict outputs.

One wrapper per row of the component table (`edgefusion_export.components`), with its static inputs and outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..components import ImageSize
from ..sources.loader import ModelSource, TorchComponents


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: list[int]
    dtype: str  # numpy dtype name


class TextEncoder(torch.nn.Module):
    """int32 token ids [1, 77] -> text embeddings [1, 77, hidden]."""

    component = "text_encoder"

    def __init__(self, components: TorchComponents) -> None:
        super().__init__()
        self.text_encoder = components.text_encoder

    @staticmethod
    def io(source: ModelSource, size: ImageSize | None) -> tuple[list[TensorSpec], list[TensorSpec]]:
        tokens, hidden = source.tokenizer.max_length, source.text_config["hidden_size"]
        return [TensorSpec("input_ids", [1, tokens], "int32")], [TensorSpec("text_embeddings", [1, tokens, hidden], "float32")]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(input_ids.to(torch.int64), return_dict=False)[0]


class UNet(torch.nn.Module):
    """(latent, timestep, text embeddings[, guidance embedding]) -> predicted noise."""

    component = "unet"

    def __init__(self, components: TorchComponents) -> None:
        super().__init__()
        self.unet = components.unet

    @staticmethod
    def io(source: ModelSource, size: ImageSize | None) -> tuple[list[TensorSpec], list[TensorSpec]]:
        tokens, hidden = source.tokenizer.max_length, source.text_config["hidden_size"]
        inputs = [TensorSpec("latent", latent_shape(source, size), "float32"), TensorSpec("timestep", [1], "float32"),
                  TensorSpec("text_embeddings", [1, tokens, hidden], "float32")]
        if source.guidance_embedding_dim:
            inputs.append(TensorSpec("guidance_embedding", [1, source.guidance_embedding_dim], "float32"))
        return inputs, [TensorSpec("noise_prediction", latent_shape(source, size), "float32")]

    def forward(self, latent: torch.Tensor, timestep: torch.Tensor, text_embeddings: torch.Tensor,
                guidance_embedding: torch.Tensor | None = None) -> torch.Tensor:
        return self.unet(latent, timestep, encoder_hidden_states=text_embeddings,
                         timestep_cond=guidance_embedding, return_dict=False)[0]


class VaeDecoder(torch.nn.Module):
    """Denoised latent -> RGB image in [0, 1]; the latent scaling factor is folded in."""

    component = "vae_decoder"

    def __init__(self, components: TorchComponents) -> None:
        super().__init__()
        self.vae = components.vae
        self.scaling_factor = float(components.vae.config.scaling_factor)

    @staticmethod
    def io(source: ModelSource, size: ImageSize | None) -> tuple[list[TensorSpec], list[TensorSpec]]:
        height, width = image_size(size)
        return [TensorSpec("latent", latent_shape(source, size), "float32")], \
            [TensorSpec("image", [1, 3, height, width], "float32")]

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        image = self.vae.decode(latent / self.scaling_factor, return_dict=False)[0]
        return (image / 2 + 0.5).clamp(0, 1)


WRAPPERS: dict[str, type[TextEncoder] | type[UNet] | type[VaeDecoder]] = {
    wrapper.component: wrapper for wrapper in (TextEncoder, UNet, VaeDecoder)}


def image_size(size: ImageSize | None) -> ImageSize:
    if size is None:
        raise ValueError("this component's shapes depend on the image size; pass (height, width)")
    return size


def latent_shape(source: ModelSource, size: ImageSize | None) -> list[int]:
    height, width = image_size(size)
    return [1, source.unet_config.get("in_channels", 4), height // source.vae_scale_factor, width // source.vae_scale_factor]


def component_io(source: ModelSource, name: str, size: ImageSize | None) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Static input and output specs of one component at batch 1; `size` (height, width) for the components whose
    shapes depend on the image size (`Component.image_sized`), None for the others."""
    return WRAPPERS[name].io(source, size)


def wrap(components: TorchComponents, name: str) -> torch.nn.Module:
    """The export wrapper of one component."""
    return WRAPPERS[name](components).eval()
