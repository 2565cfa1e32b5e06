"""The components a bundle holds, described once; every list of names, calls and sources reads this table.

Names follow the diffusers subfolders (qai-hub-models uses the same). Adding a component means a row here and a
torch wrapper in `export/wrappers.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
class Component:
    name: str  # in the bundle and its manifest
    source: str  # the diffusers pipeline part it is traced from (its subfolder in a model folder)
    weights: str  # the weight file stem in that subfolder
    per_step: bool  # called at every sampling step, else once per image
    image_sized: bool  # its input or output shapes depend on the image size
    edgefusion_precision: str  # its precision in EdgeFusion's deployment recipe

    def calls_per_image(self, steps: int) -> int:
        return steps if self.per_step else 1


COMPONENTS: dict[str, Component] = {component.name: component for component in (
    Component("text_encoder", "text_encoder", "model", per_step=False, image_sized=False, edgefusion_precision="fp16"),
    Component("unet", "unet", "diffusion_pytorch_model", per_step=True, image_sized=True, edgefusion_precision="w8a16"),
    Component("vae_decoder", "vae", "diffusion_pytorch_model", per_step=False, image_sized=True, edgefusion_precision="fp16"),
)}
