"""The model a command names: `--model`, `--preset`, `--tokenizer` and `--vae-decoder` resolved to one source."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .loader import (ModelSource, diffusers_folder_source, hash_files, hash_strings, load_tokenizer, preset_source,
                     single_file_source)
from .presets import DEFAULT_PRESET, PRESETS, Preset
from .vae_decoders import with_tiny_decoder


def resolve_source(model: Path | None, preset: str | None, tokenizer: Path | None = None,
                   allow_pickle: bool = False, vae_decoder: str | None = None) -> ModelSource:
    """Pick the source that `--model`/`--preset`/`--tokenizer`/`--vae-decoder` describe."""
    preset_obj = preset_named(preset) if preset else None
    if model is None:
        source = preset_source(preset_obj or PRESETS[DEFAULT_PRESET])
    elif not model.exists():
        raise UserError(f"model path {model} does not exist; pass a diffusers folder, a .safetensors file or --preset NAME")
    elif model.is_dir():
        source = diffusers_folder_source(model, allow_pickle)
    else:
        source = single_file_source(model, preset_obj or PRESETS[DEFAULT_PRESET], allow_pickle)
    if tokenizer is not None:
        source.tokenizer = load_tokenizer(tokenizer)
        source.fingerprint = hash_strings(source.fingerprint, hash_files([tokenizer / "vocab.json", tokenizer / "merges.txt"]))
    if vae_decoder is not None:
        source = with_tiny_decoder(source, vae_decoder, allow_pickle)
    return source


def preset_named(name: str) -> Preset:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]
