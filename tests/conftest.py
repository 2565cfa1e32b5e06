"""Shared fixtures: a compiled `tiny` bundle, a tiny diffusers folder, and the shared data (../shared/data).

EDGEFUSION_TEST_SHARED_DATA=none hides the shared data, as a fresh clone with nothing beside it has none (or names
another folder); tests that need it skip, saying why.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from edgefusion_export.cli import main
from edgefusion_export.sources.loader import preset_source
from edgefusion_export.sources.presets import PRESETS

SHARED_DATA_SWITCH = "EDGEFUSION_TEST_SHARED_DATA"
SHARED_DATA = Path(os.environ.get(SHARED_DATA_SWITCH) or Path(__file__).resolve().parents[2] / "shared" / "data").resolve()
TINY_SIZE = 64
CHIPSETS = ("snapdragon-8-gen-3", "snapdragon-8-gen-2", "snapdragon-8-elite")


def shared_data(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data {path} is not on this machine (or hidden by {SHARED_DATA_SWITCH})")
    return path


def run_cli(*args: str | Path):
    """Run the CLI in-process; returns click's Result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(main, [str(arg) for arg in args], catch_exceptions=False)


def compile_args(output: Path, cache: Path, *extra: str | Path) -> list[str | Path]:
    return ["compile", "--height", TINY_SIZE, "--width", TINY_SIZE, "-o", output, "--cache-dir", cache, *extra]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, cache_dir) -> Path:
    output = tmp_path_factory.mktemp("bundles") / "tiny"
    result = run_cli(*compile_args(output, cache_dir, "--preset", "tiny"))
    assert result.exit_code == 0, result.output
    return output


@pytest.fixture(scope="session")
def snapdragon_bundle(tiny_bundle, cache_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("snapdragon") / "bundle"
    args = [arg for name in CHIPSETS for arg in ("--chipset", name)]
    result = run_cli(*compile_args(output, cache_dir, "--preset", "tiny", "--target", "snapdragon", *args))
    assert result.exit_code == 0, result.output
    return output


def save_diffusers_folder(folder: Path, preset: str = "tiny", **unet_overrides) -> Path:
    """Write a preset's seeded weights as a diffusers folder (safetensors), as a user's checkpoint would be."""
    from diffusers import LCMScheduler

    source = preset_source(PRESETS[preset])
    components = source.load()
    if unet_overrides:
        from diffusers import UNet2DConditionModel

        torch.manual_seed(1)
        components.unet = UNet2DConditionModel.from_config({**source.unet_config, **unet_overrides})
    components.unet.save_pretrained(folder / "unet")
    components.vae.save_pretrained(folder / "vae")
    components.text_encoder.save_pretrained(folder / "text_encoder")
    source.tokenizer.save(folder / "tokenizer")
    LCMScheduler.from_config(source.scheduler_config).save_pretrained(folder / "scheduler")
    return folder


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    return save_diffusers_folder(tmp_path_factory.mktemp("models") / "tiny-diffusers")
