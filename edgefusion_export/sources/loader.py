"""Model sources: a diffusers folder, a single-file SD-1.x checkpoint, or a built-in preset.

A `ModelSource` knows the architecture, tokenizer and scheduler at once, and loads the torch
modules only when a stage that needs them is not already cached.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..components import COMPONENTS
from ..errors import UserError, first_line
from ..files import sha256_file
from ..runtime.tokenizer import EOS_TOKEN, ClipTokenizer, builtin_vocabulary
from .presets import PRESET_SEED, Preset

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
DIFFUSERS_COMPONENTS = {component.source: component.weights for component in COMPONENTS.values()}  # subfolder: weights stem


@dataclass
class TorchComponents:
    """The float torch modules of a text-to-image model."""

    unet: torch.nn.Module
    text_encoder: torch.nn.Module
    vae: torch.nn.Module


@dataclass
class ModelSource:
    """A model's architecture, tokenizer and scheduler, with its weights loaded on demand."""

    description: str
    fingerprint: str
    unet_config: dict[str, Any]
    text_config: dict[str, Any]
    vae_config: dict[str, Any]
    scheduler_config: dict[str, Any]
    tokenizer: ClipTokenizer
    _loader: Callable[[], TorchComponents]
    _loaded: TorchComponents | None = None
    vae_description: str = "the model's own AutoencoderKL"
    vae_fingerprint: str = ""  # set when the decoder is not the model's own (the fingerprint covers the rest)
    own_vae: Callable[[], torch.nn.Module] | None = None  # the model's own VAE, when another decoder replaces it

    def load(self) -> TorchComponents:
        if self._loaded is None:
            self._loaded = self._loader()
            for module in (self._loaded.unet, self._loaded.text_encoder, self._loaded.vae):
                module.eval().requires_grad_(False)
        return self._loaded

    def release(self) -> None:
        """Drop the torch modules (the later passes work on ONNX files)."""
        self._loaded = None

    def cache_identity(self) -> dict[str, Any]:
        """What the model contributes to the key of a pass that reads it: weights, decoder, tokenizer, scheduler."""
        return {"weights": self.fingerprint, "decoder": self.vae_fingerprint, "tokenizer": self.tokenizer.digest,
                "scheduler": self.scheduler_config}

    def part(self, component: str) -> SourcePart:
        """The model as one component's export reads it."""
        return SourcePart(self, component)

    @property
    def guidance_embedding_dim(self) -> int | None:
        """Width of the LCM guidance embedding, or None for LCM-LoRA style models."""
        return self.unet_config.get("time_cond_proj_dim")

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae_config["block_out_channels"]) - 1)


@dataclass(frozen=True)
class SourcePart:
    """One component of a model source, keyed by the weights it is traced from (a replacement VAE decoder keeps
    the UNet's and text encoder's exports) and the tokenizer that writes its example inputs."""

    source: ModelSource
    component: str

    def cache_identity(self) -> dict[str, Any]:
        replaced = COMPONENTS[self.component].source == "vae" and self.source.vae_fingerprint
        return {"weights": self.source.vae_fingerprint if replaced else self.source.fingerprint,
                "tokenizer": self.source.tokenizer.digest}


def preset_source(preset: Preset) -> ModelSource:
    """Seeded random weights in the preset's exact architecture."""

    def build() -> TorchComponents:
        torch.manual_seed(PRESET_SEED)
        return _build_components(preset.unet, preset.text_encoder, preset.vae)

    tokenizer, tokenizer_digest = _builtin_tokenizer()
    fingerprint = hash_strings("preset", json.dumps({**preset.__dict__, "seed": PRESET_SEED}, sort_keys=True), tokenizer_digest)
    return ModelSource(f"preset {preset.name} (seeded random weights)", fingerprint, dict(preset.unet),
                       dict(preset.text_encoder), dict(preset.vae), dict(preset.scheduler), tokenizer, build)


def _build_components(unet_config: dict, text_config: dict, vae_config: dict) -> TorchComponents:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNet2DConditionModel.from_config(unet_config)
    text_encoder = CLIPTextModel._from_config(CLIPTextConfig(**text_config), attn_implementation="eager")
    vae = AutoencoderKL.from_config(vae_config)
    return TorchComponents(unet, text_encoder, vae)


def load_tokenizer(folder: Path) -> ClipTokenizer:
    """A CLIP tokenizer folder in either layout transformers writes: vocab.json + merges.txt, or tokenizer.json alone
    (transformers 5: its BPE model holds the vocabulary and the merges); tokenizer_config.json is optional."""
    vocab_file, merges_file, single_file = folder / "vocab.json", folder / "merges.txt", folder / "tokenizer.json"
    settings = read_json(folder / "tokenizer_config.json") if (folder / "tokenizer_config.json").is_file() else {}
    pad = settings.get("pad_token") or EOS_TOKEN
    pad = pad["content"] if isinstance(pad, dict) else pad
    max_length = min(int(settings.get("model_max_length", 77)), 77)
    try:
        if vocab_file.is_file() and merges_file.is_file():
            vocab = json.loads(vocab_file.read_text(encoding="utf-8"))
            return ClipTokenizer.from_files(vocab_file, merges_file, max_length, vocab[pad])
        if single_file.is_file():
            model = read_json(single_file)["model"]
            if model.get("type") != "BPE":
                raise ValueError(f"its model is {model.get('type')}, not BPE")
            vocab = dict(model["vocab"])
            merges = [tuple(pair.split(" ") if isinstance(pair, str) else pair) for pair in model["merges"]]
            return ClipTokenizer(vocab, merges, max_length, vocab[pad])
    except (KeyError, ValueError, TypeError) as error:
        raise UserError(f"tokenizer in {folder} is not a CLIP BPE vocabulary ({error}); use the model's own tokenizer/ folder")
    raise UserError(f"tokenizer folder {folder} needs tokenizer.json, or vocab.json and merges.txt (a CLIP tokenizer)")


def diffusers_folder_source(folder: Path, allow_pickle: bool) -> ModelSource:
    """A local diffusers Stable Diffusion folder (unet/, text_encoder/, vae/, tokenizer/, scheduler/)."""
    if not any(folder.iterdir()):
        raise UserError(f"model folder {folder} is empty; pass a diffusers Stable Diffusion folder")
    missing = [f"{name}/config.json" for name in DIFFUSERS_COMPONENTS if not (folder / name / "config.json").is_file()]
    missing += ["tokenizer/"] if not (folder / "tokenizer").is_dir() else []
    if missing:
        raise UserError(f"{folder} is not a diffusers Stable Diffusion folder (missing {', '.join(missing)}); "
                        "pass a folder with unet/, text_encoder/, vae/ and tokenizer/")
    weights = {name: weight_file(folder / name, stem, allow_pickle) for name, stem in DIFFUSERS_COMPONENTS.items()}
    configs = {name: read_json(folder / name / "config.json") for name in DIFFUSERS_COMPONENTS}
    scheduler_file = folder / "scheduler" / "scheduler_config.json"
    scheduler = _scheduler_config(read_json(scheduler_file) if scheduler_file.is_file() else {})
    tokenizer = load_tokenizer(folder / "tokenizer")
    config_files = [folder / name / "config.json" for name in DIFFUSERS_COMPONENTS]

    def build() -> TorchComponents:
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel

        def options(name: str) -> dict[str, Any]:
            path = weights[name]
            return {"use_safetensors": path.suffix == ".safetensors",
                    "variant": "fp16" if ".fp16." in path.name else None}

        try:
            unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32, **options("unet"))
            vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32, **options("vae"))
            text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", dtype=torch.float32,
                                                         attn_implementation="eager", **options("text_encoder"))
        except (OSError, ValueError, RuntimeError) as error:
            raise UserError(f"could not load the model in {folder}: {first_line(error)}")
        return TorchComponents(unet, text_encoder, vae)

    fingerprint = hash_files(sorted(weights.values()) + config_files)
    return ModelSource(f"diffusers folder {folder}", fingerprint, configs["unet"], configs["text_encoder"],
                       configs["vae"], scheduler, tokenizer, build)


def weight_file(folder: Path, stem: str, allow_pickle: bool) -> Path:
    for name in (f"{stem}.safetensors", f"{stem}.fp16.safetensors"):
        if (folder / name).is_file():
            check_safetensors(folder / name)
            return folder / name
    pickled = [folder / f"{stem}{variant}.bin" for variant in ("", ".fp16") if (folder / f"{stem}{variant}.bin").is_file()]
    if pickled and not allow_pickle:
        raise UserError(f"{pickled[0]} is a pickle file, which can run code when loaded; convert it to safetensors "
                        "or pass --allow-pickle if you trust it")
    if pickled:
        return pickled[0]
    raise UserError(f"no weights in {folder} (expected {stem}.safetensors); the model folder is incomplete")


def check_safetensors(path: Path) -> None:
    """Fail with a clear message when a safetensors file is corrupt or truncated."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as handle:
            handle.keys()
    except (SafetensorError, OSError) as error:
        raise UserError(f"{path} is not a valid safetensors file ({first_line(error)}); re-download or re-save it")


def single_file_source(path: Path, preset: Preset, allow_pickle: bool) -> ModelSource:
    """A single-file SD-1.x checkpoint (LDM key layout); the architecture comes from `preset`."""
    if path.suffix in PICKLE_SUFFIXES and not allow_pickle:
        raise UserError(f"{path} is a pickle checkpoint, which can run code when loaded; convert it to safetensors "
                        "or pass --allow-pickle if you trust it")
    if path.suffix not in PICKLE_SUFFIXES + (".safetensors",):
        raise UserError(f"{path} is not a model checkpoint; pass a .safetensors file or a diffusers folder")
    if path.suffix == ".safetensors":
        check_safetensors(path)
    unet_config = dict(preset.unet)

    def build() -> TorchComponents:
        from diffusers.loaders.single_file_utils import (convert_ldm_clip_checkpoint, convert_ldm_unet_checkpoint,
                                                         convert_ldm_vae_checkpoint)

        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            checkpoint = load_file(str(path))
        else:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            checkpoint = checkpoint.get("state_dict", checkpoint)
        try:
            unet_state = convert_ldm_unet_checkpoint(checkpoint, preset.unet)
            vae_state = convert_ldm_vae_checkpoint(checkpoint, preset.vae)
            text_state = convert_ldm_clip_checkpoint(checkpoint)
        except (KeyError, IndexError, ValueError) as error:
            raise UserError(f"{path} is not an SD-1.x checkpoint in the layout of preset {preset.name} "
                            f"(key {first_line(error)}); pick the preset that matches it with --preset")
        if "time_embedding.cond_proj.weight" not in unet_state:
            unet_config["time_cond_proj_dim"] = None
        components = _build_components(unet_config, preset.text_encoder, preset.vae)
        for name, state in (("unet", unet_state), ("vae", vae_state), ("text_encoder", text_state)):
            result = getattr(components, name).load_state_dict(state, strict=False)
            missing = [key for key in result.missing_keys if not key.endswith("position_ids")]
            if missing or result.unexpected_keys:
                raise UserError(f"{path}: the {name} weights do not fit preset {preset.name} "
                                f"({len(missing)} missing, {len(result.unexpected_keys)} unexpected, e.g. "
                                f"{(missing + result.unexpected_keys)[0]}); pick the matching --preset")
        return components

    tokenizer, tokenizer_digest = _builtin_tokenizer()
    fingerprint = hash_strings(hash_files([path]), preset.name, tokenizer_digest)
    return ModelSource(f"single file {path} as {preset.name}", fingerprint, unet_config, dict(preset.text_encoder),
                       dict(preset.vae), dict(preset.scheduler), tokenizer, build)


def _scheduler_config(config: dict[str, Any]) -> dict[str, Any]:
    """The LCM scheduler settings, taking the model's betas where it gives them."""
    from .presets import LCM_SCHEDULER

    keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "original_inference_steps",
            "timestep_scaling", "prediction_type", "set_alpha_to_one", "steps_offset")
    return {**LCM_SCHEDULER, **{key: config[key] for key in keys if key in config}}


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"{path} is not valid JSON ({first_line(error)}); restore the file from the model's source")


def hash_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def _builtin_tokenizer() -> tuple[ClipTokenizer, str]:
    """The built-in CLIP tokenizer and its digest, which source fingerprints include."""
    tokenizer = ClipTokenizer(*builtin_vocabulary())
    return tokenizer, tokenizer.digest


def hash_strings(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()
