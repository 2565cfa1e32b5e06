import json

import torch

from edgefusion_export.sources.resolve import resolve_source

from .conftest import compile_args, run_cli, save_diffusers_folder


def test_diffusers_folder_loads_the_same_weights(tiny_folder):
    folder_source = resolve_source(tiny_folder, None)
    preset_source = resolve_source(None, "tiny")
    loaded, expected = folder_source.load(), preset_source.load()
    for name in ("unet", "vae", "text_encoder"):
        ours, theirs = getattr(loaded, name).state_dict(), getattr(expected, name).state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[key], theirs[key]) for key in ours)
    assert folder_source.fingerprint == resolve_source(tiny_folder, None).fingerprint
    assert folder_source.fingerprint != preset_source.fingerprint


def test_fp16_weights_are_loaded_in_float32(tmp_path):
    folder = save_diffusers_folder(tmp_path / "fp16")
    source = resolve_source(folder, None)
    components = source.load()
    components.unet.half().save_pretrained(folder / "unet", variant="fp16")
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    reloaded = resolve_source(folder, None).load()
    assert next(reloaded.unet.parameters()).dtype == torch.float32


def test_lcm_lora_style_model_has_no_guidance_input(tmp_path):
    folder = save_diffusers_folder(tmp_path / "lcm-lora", time_cond_proj_dim=None)
    output = tmp_path / "bundle"
    result = run_cli(*compile_args(output, tmp_path / "cache", "--model", folder))
    assert result.exit_code == 0, result.output
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["sampling"]["guidance_embedding"] is None
    assert [spec["name"] for spec in manifest["components"]["unet"]["inputs"]] == ["latent", "timestep", "text_embeddings"]
    generated = run_cli("generate", output, "a cat", "-o", tmp_path / "cat.png")
    assert generated.exit_code == 0, generated.output
