"""The components a bundle holds, described once; every list of names, calls and sources reads this table.

Names follow the diffusers subfolders (qai-hub-models uses the same). Adding a component means a row here and a
torch wrapper in `export/wrappers.py`.
"""

from __future__ import annotations

from dataclasses import dataclass


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
