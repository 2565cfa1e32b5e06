"""A tiny VAE decoder (diffusers' AutoencoderTiny, the TAESD family) in place of the model's own."""

from __future__ import annotations

import json

import pytest
import torch

from edgefusion_export.bundle.manifest import load_bundle
from edgefusion_export.metrics import psnr_db
from edgefusion_export.runtime.pipeline import Text2ImagePipeline
from edgefusion_export.sources.resolve import resolve_source
from edgefusion_export.sources.reference import diffusers_image, torch_noise

from .conftest import TINY_SIZE, compile_args, run_cli
from .test_bad_input import assert_clean_error

PROMPT = "a lighthouse on a cliff at dawn"


@pytest.fixture(scope="module")
def tiny_decoder_folder(tmp_path_factory):
    """A small AutoencoderTiny the project has not seen, saved as diffusers does (config.json + safetensors), with
    its decoder weights scaled up so that its images are not flat."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(3)
    vae = AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(16, 16, 16, 16),
                          num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(2, 2, 2, 1))
    with torch.no_grad():
        for parameter in vae.decoder.parameters():
            parameter.mul_(2.5)
    folder = tmp_path_factory.mktemp("decoders") / "my-taesd"
    vae.save_pretrained(folder)
    return folder


def test_generate_with_a_tiny_decoder_matches_diffusers(tiny_decoder_folder, cache_dir, tmp_path):
    bundle = tmp_path / "bundle"
    result = run_cli(*compile_args(bundle, cache_dir, "--preset", "tiny", "--vae-decoder", tiny_decoder_folder))
    assert result.exit_code == 0, result.output
    loaded = load_bundle(bundle)
    assert loaded.manifest["model"]["vae_decoder"] == f"AutoencoderTiny from {tiny_decoder_folder}"
    pipeline = Text2ImagePipeline.from_bundle(loaded)
    ours = pipeline(PROMPT, torch_noise(11, pipeline.plan.latent_shape, len(pipeline.plan.steps))).image
    source = resolve_source(None, "tiny", vae_decoder=str(tiny_decoder_folder))
    reference = diffusers_image(source, bundle / "tokenizer", PROMPT, 11, 2, 8.5, TINY_SIZE, TINY_SIZE)
    assert reference.std() > 0.05  # a real picture, not a flat one
    # diffusers' UNet loop + AutoencoderTiny.decode; measured 116.9 dB (float32 rounding between onnxruntime and torch)
    assert psnr_db(reference, ours) >= 105
    report = json.loads((bundle / "build_report.json").read_text())
    comparison = report["decoder_comparison"][f"{TINY_SIZE}x{TINY_SIZE}"]
    assert "measures nothing about quality" in comparison["note"] and len(comparison["psnr_db"]) == 1


def test_the_unet_and_text_encoder_stages_are_reused_with_another_decoder(tiny_bundle, cache_dir, tmp_path):
    result = run_cli(*compile_args(tmp_path / "bundle", cache_dir, "--preset", "tiny", "--vae-decoder", "taesd"))
    assert result.exit_code == 0, result.output
    stages = {stage["name"]: stage["cached"] for stage in json.loads((tmp_path / "bundle" / "build_report.json").read_text())["stages"]}
    assert stages["export unet"] and stages["export text_encoder"] and not stages["export vae_decoder"]
    manifest = load_bundle(tmp_path / "bundle").manifest
    assert manifest["model"]["vae_decoder"].startswith("AutoencoderTiny, TAESD configuration")
    assert load_bundle(tiny_bundle).manifest["model"]["vae_decoder"] == "the model's own AutoencoderKL"


def test_a_folder_that_is_not_an_autoencoder_tiny_is_refused(tiny_folder, tmp_path):
    assert_clean_error(run_cli("compile", "--preset", "tiny", "--vae-decoder", tiny_folder / "vae", "-o", tmp_path / "o"),
                       "holds a AutoencoderKL, not an AutoencoderTiny")
    assert_clean_error(run_cli("compile", "--preset", "tiny", "--vae-decoder", tmp_path, "-o", tmp_path / "o"),
                       "is not a diffusers AutoencoderTiny folder", "taesd")
