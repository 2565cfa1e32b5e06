"""The host runner: tokenizer, text encoder, the LCM loop and the VAE decoder on onnxruntime.

Driven only by the bundle's manifest; it is the reference that other runtimes (the Kotlin app) match.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..bundle.manifest import Bundle
from ..errors import UserError
from .noise import gaussian_noise
from .scheduler import SamplingPlan, lcm_step
from .tokenizer import ClipTokenizer


@dataclass
class Noise:
    """The initial latent and the noise re-injected after each step but the last."""

    latent: np.ndarray
    step_noise: np.ndarray  # [num_steps - 1, *latent_shape]

    @classmethod
    def seeded(cls, seed: int, plan: SamplingPlan) -> "Noise":
        shape = plan.latent_shape
        steps = [gaussian_noise(seed, stream, shape) for stream in range(1, len(plan.steps))]
        return cls(gaussian_noise(seed, 0, shape), np.stack(steps) if steps else np.zeros([0, *shape], np.float32))

    @classmethod
    def load(cls, path: Path, plan: SamplingPlan) -> "Noise":
        """An .npz with `latent` (the latent shape) and `step_noise` ([num_steps - 1, *latent shape])."""
        try:
            with np.load(path) as data:
                noise = cls(data["latent"].astype(np.float32), data["step_noise"].astype(np.float32))
        except (OSError, KeyError, ValueError) as error:
            raise UserError(f"{path} is not a noise file with 'latent' and 'step_noise' arrays ({error}); "
                            "write one with 'generate --save-noise'")
        expected = (len(plan.steps) - 1, *plan.latent_shape)
        if list(noise.latent.shape) != plan.latent_shape or noise.step_noise.shape != expected:
            raise UserError(f"{path} has latent {list(noise.latent.shape)} and step_noise {list(noise.step_noise.shape)}; "
                            f"this bundle needs {plan.latent_shape} and {list(expected)}")
        return noise

    def save(self, path: Path) -> None:
        np.savez(path, latent=self.latent, step_noise=self.step_noise)


@dataclass
class Generation:
    image: np.ndarray  # [height, width, 3] float32 in [0, 1]
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_uint8(self) -> np.ndarray:
        return np.round(np.clip(self.image, 0, 1) * 255).astype(np.uint8)


class Text2ImagePipeline:
    """Runs the three components with onnxruntime on the CPU; every component call goes through `run`."""

    def __init__(self, models: dict[str, Path], plan: SamplingPlan, tokenizer: ClipTokenizer,
                 threads: int | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.sessions = {name: onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                         for name, path in models.items()}
        self.plan = plan
        self.tokenizer = tokenizer

    @classmethod
    def from_bundle(cls, bundle: Bundle, threads: int | None = None) -> "Text2ImagePipeline":
        manifest = bundle.manifest
        plan = SamplingPlan.from_json({key: value for key, value in manifest["sampling"].items()
                                       if key not in ("scheduler", "num_steps", "noise")})
        spec = manifest["tokenizer"]
        tokenizer = ClipTokenizer.from_files(bundle.path(spec["vocab_file"]), bundle.path(spec["merges_file"]),
                                             spec["max_length"], spec["pad_id"])
        models = {name: bundle.component_path(name) for name in manifest["components"]}
        return cls(models, plan, tokenizer, threads)

    def run(self, component: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.sessions[component].run(None, feeds)[0]

    def encode_prompt(self, prompt: str) -> np.ndarray:
        return self.run("text_encoder", {"input_ids": np.array([self.tokenizer(prompt)], dtype=np.int32)})

    def predict_noise(self, latent: np.ndarray, timestep: int, text_embeddings: np.ndarray) -> np.ndarray:
        feeds = {"latent": latent, "timestep": np.array([timestep], dtype=np.float32), "text_embeddings": text_embeddings}
        if self.plan.guidance_embedding is not None:
            feeds["guidance_embedding"] = np.array([self.plan.guidance_embedding], dtype=np.float32)
        return self.run("unet", feeds)

    def denoise(self, text_embeddings: np.ndarray, noise: Noise, timings: dict[str, float] | None = None) -> np.ndarray:
        """The LCM loop; returns the final denoised latent."""
        latent = denoised = noise.latent
        for index, step in enumerate(self.plan.steps):
            start = time.perf_counter()
            eps = self.predict_noise(latent, step.timestep, text_embeddings)
            step_noise = noise.step_noise[index] if index + 1 < len(self.plan.steps) else None
            latent, denoised = lcm_step(step, latent, eps, step_noise)
            if timings is not None:
                timings[f"unet_step_{index + 1}"] = _elapsed_ms(start)
        return denoised

    def __call__(self, prompt: str, noise: Noise) -> Generation:
        timings: dict[str, float] = {}
        start = time.perf_counter()
        text_embeddings = self.encode_prompt(prompt)
        timings["text_encoder"] = _elapsed_ms(start)
        denoised = self.denoise(text_embeddings, noise, timings)
        decode_start = time.perf_counter()
        image = self.run("vae_decoder", {"latent": denoised})
        timings["vae_decoder"] = _elapsed_ms(decode_start)
        timings["total"] = _elapsed_ms(start)
        return Generation(image[0].transpose(1, 2, 0), timings)


def _elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)
