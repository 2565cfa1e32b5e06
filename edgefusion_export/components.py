"""The components a bundle holds, described once; every list of names, calls, sources and shapes reads this table.

Names follow the diffusers subfolders (qai-hub-models uses the same). Each row declares its graph's inputs and
outputs as a function of the model's configuration and the image size (what the exporter traces, the manifest
records and every runner feeds). Adding a component means a row here and a torch wrapper in `export/wrappers.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from .errors import UserError

ImageSize = tuple[int, int]  # (height, width) in pixels
DEFAULT_SIZE: ImageSize = (512, 512)


def size_label(size: ImageSize) -> str:
    """WIDTHxHEIGHT, as the CLI, the manifest and file names write a size."""
    height, width = size
    return f"{width}x{height}"


def parse_size(text: str) -> ImageSize:
    """'768x512' (WIDTHxHEIGHT) -> (512, 768); a one-line UserError for anything else."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise UserError(f"size {text!r} is not WIDTHxHEIGHT; use e.g. 512x768")
    return int(match[2]), int(match[1])


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: list[int]
    dtype: str  # numpy dtype name


class ModelShapes(Protocol):
    """What the shapes of the graphs depend on (a `sources.loader.ModelSource` provides it)."""

    text_config: dict[str, Any]
    unet_config: dict[str, Any]
    guidance_embedding_dim: int | None
    vae_scale_factor: int

    @property
    def tokenizer(self) -> Any: ...  # its max_length is the text encoder's sequence length


Specs = tuple[list[TensorSpec], list[TensorSpec]]


def latent_shape(model: ModelShapes, size: ImageSize) -> list[int]:
    height, width = size
    return [1, model.unet_config.get("in_channels", 4), height // model.vae_scale_factor, width // model.vae_scale_factor]


def text_encoder_io(model: ModelShapes, size: None) -> Specs:
    """int32 token ids [1, tokens] -> text embeddings [1, tokens, hidden]."""
    tokens, hidden = model.tokenizer.max_length, model.text_config["hidden_size"]
    return [TensorSpec("input_ids", [1, tokens], "int32")], [TensorSpec("text_embeddings", [1, tokens, hidden], "float32")]


def unet_io(model: ModelShapes, size: ImageSize) -> Specs:
    """(latent, timestep, text embeddings[, guidance embedding]) -> predicted noise of the latent's shape."""
    tokens, hidden = model.tokenizer.max_length, model.text_config["hidden_size"]
    inputs = [TensorSpec("latent", latent_shape(model, size), "float32"), TensorSpec("timestep", [1], "float32"),
              TensorSpec("text_embeddings", [1, tokens, hidden], "float32")]
    if model.guidance_embedding_dim:
        inputs.append(TensorSpec("guidance_embedding", [1, model.guidance_embedding_dim], "float32"))
    return inputs, [TensorSpec("noise_prediction", latent_shape(model, size), "float32")]


def vae_decoder_io(model: ModelShapes, size: ImageSize) -> Specs:
    """Denoised latent -> RGB image [1, 3, height, width] in [0, 1]."""
    height, width = size
    return [TensorSpec("latent", latent_shape(model, size), "float32")], [TensorSpec("image", [1, 3, height, width], "float32")]


@dataclass(frozen=True)
class Component:
    name: str  # in the bundle and its manifest
    source: str  # the diffusers pipeline part it is traced from (its subfolder in a model folder)
    weights: str  # the weight file stem in that subfolder
    per_step: bool  # called at every sampling step, else once per image
    image_sized: bool  # its input or output shapes depend on the image size
    edgefusion_precision: str  # its precision in EdgeFusion's deployment recipe
    declared_io: Callable[[ModelShapes, Any], Specs]  # (model, image size or None) -> static batch-1 inputs, outputs

    def calls_per_image(self, steps: int) -> int:
        return steps if self.per_step else 1

    def io(self, model: ModelShapes, size: ImageSize | None) -> Specs:
        """Its graph's inputs and outputs; `size` (height, width) for an image-sized component, None for the others."""
        if self.image_sized and size is None:
            raise ValueError(f"{self.name}'s shapes depend on the image size; pass (height, width)")
        return self.declared_io(model, size if self.image_sized else None)


COMPONENTS: dict[str, Component] = {component.name: component for component in (
    Component("text_encoder", "text_encoder", "model", per_step=False, image_sized=False, edgefusion_precision="fp16",
              declared_io=text_encoder_io),
    Component("unet", "unet", "diffusion_pytorch_model", per_step=True, image_sized=True, edgefusion_precision="w8a16",
              declared_io=unet_io),
    Component("vae_decoder", "vae", "diffusion_pytorch_model", per_step=False, image_sized=True, edgefusion_precision="fp16",
              declared_io=vae_decoder_io),
)}
