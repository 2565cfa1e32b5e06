import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from edgefusion_export.sources.presets import PRESETS


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name, without_guidance, with_guidance", [
    ("bk-sdm-tiny", 323_384_964, 323_466_884),
    ("bk-sdm-small", 482_346_884, 482_428_804),
    ("sd-v1.5", 859_520_964, 859_602_884),
])
def test_unet_architectures_match_the_published_sizes(name, without_guidance, with_guidance):
    config = PRESETS[name].unet
    with torch.device("meta"):
        assert parameters(UNet2DConditionModel.from_config(config)) == with_guidance
        assert parameters(UNet2DConditionModel.from_config({**config, "time_cond_proj_dim": None})) == without_guidance


def test_text_encoder_and_vae_decoder_sizes():
    preset = PRESETS["bk-sdm-tiny"]
    with torch.device("meta"):
        text = CLIPTextModel(CLIPTextConfig(**preset.text_encoder))
        vae = AutoencoderKL.from_config(preset.vae)
    assert parameters(text) == 123_060_480
    assert parameters(vae.decoder) + parameters(vae.post_quant_conv) == 49_490_199


def test_tiny_preset_is_small():
    preset = PRESETS["tiny"]
    with torch.device("meta"):
        total = parameters(UNet2DConditionModel.from_config(preset.unet))
    assert total < 2_000_000
