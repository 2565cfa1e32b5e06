"""The host runner: tokenizer, text encoder, the LCM loop and the VAE decoder on onnxruntime.

Driven only by the bundle's manifest; it is the reference that other runtimes (the Kotlin app) match.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..bundle.manifest import Bundle
from ..errors import UserError
from ..files import atomic_path
from .images import to_uint8
from .noise import gaussian_noise
from .scheduler import SamplingPlan, lcm_step
from .sessions import HtpTarget, cpu_session, htp_session

SEED_RANGE = (-(2**63), 2**63 - 1)  # the Kotlin core's Long: seeds beyond it would draw other noise there
from .tokenizer import ClipTokenizer


@dataclass
class Noise:
    """The initial latent and the noise re-injected after each step but the last."""

    latent: np.ndarray
    step_noise: np.ndarray  # [num_steps - 1, *latent_shape]

    @classmethod
    def seeded(cls, seed: int, plan: SamplingPlan) -> "Noise":
        if not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
            raise UserError(f"seed {seed} is outside {SEED_RANGE[0]}..{SEED_RANGE[1]} (a 64-bit signed integer, what the "
                            "Kotlin core takes); pick a seed in that range")
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
        if not (np.isfinite(noise.latent).all() and np.isfinite(noise.step_noise).all()):
            raise UserError(f"{path} holds NaN or infinite values; write a noise file with 'generate --save-noise'")
        expected = (len(plan.steps) - 1, *plan.latent_shape)
        if list(noise.latent.shape) != plan.latent_shape or noise.step_noise.shape != expected:
            raise UserError(f"{path} has latent {list(noise.latent.shape)} and step_noise {list(noise.step_noise.shape)}; "
                            f"this bundle needs {plan.latent_shape} and {list(expected)}")
        return noise

    def save(self, path: Path) -> None:
        """An .npz at exactly `path`, written whole or not at all."""
        with atomic_path(path) as temporary, open(temporary, "wb") as handle:
            np.savez(handle, latent=self.latent, step_noise=self.step_noise)


@dataclass
class Generation:
    image: np.ndarray  # [height, width, 3] float32 in [0, 1]
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_uint8(self) -> np.ndarray:
        return to_uint8(self.image)


class Text2ImagePipeline:
    """Runs the three components with onnxruntime; every component call goes through `run`.

    Sessions come from `open_session` (the CPU by default; `from_bundle` can open a chipset's compiled NPU
    models in HTP emulation instead).
    """

    def __init__(self, models: dict[str, Path], plan: SamplingPlan, tokenizer: ClipTokenizer,
                 threads: int | None = None, open_session: Callable[[Path], Any] | None = None) -> None:
        open_session = open_session or partial(cpu_session, threads=threads)
        self.models = models
        self.sessions = {name: open_session(path) for name, path in models.items()}
        self.plan = plan
        self.tokenizer = tokenizer

    @classmethod
    def from_bundle(cls, bundle: Bundle, threads: int | None = None, backend: str = "cpu",
                    chipset: str | None = None, size: str | None = None) -> "Text2ImagePipeline":
        """The bundle's graphs for `size` (WIDTHxHEIGHT; default: the bundle's first): its portable models on the
        CPU (backend "cpu") or its compiled NPU models for `chipset` (default: the bundle's first) in HTP
        emulation (backend "npu-emulator")."""
        manifest = bundle.manifest
        graphs = bundle.graphs(size)
        plan = bundle_plan(bundle, size)
        spec = manifest["tokenizer"]
        tokenizer = ClipTokenizer.from_files(bundle.path(spec["vocab_file"]), bundle.path(spec["merges_file"]),
                                             spec["max_length"], spec["pad_id"])
        if backend == "cpu":
            return cls({component: bundle.component_path(graph) for component, graph in graphs.items()}, plan, tokenizer, threads)
        target = htp_target(manifest, chipset)
        models = {component: bundle.path(compiled_entry(manifest, graph, target.name)["file"]) for component, graph in graphs.items()}
        return cls(models, plan, tokenizer, open_session=partial(htp_session, target=target))

    def providers(self) -> dict[str, str]:
        """The execution provider that runs each component (the first of its session's providers)."""
        return {name: session.get_providers()[0] for name, session in self.sessions.items()}

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


def bundle_plan(bundle: Bundle, size: str | None = None) -> SamplingPlan:
    """The bundle's sampling plan at `size` (default: its first): the shared steps with that size's latent shape."""
    shared = {key: value for key, value in bundle.manifest["sampling"].items() if key not in ("scheduler", "num_steps", "noise")}
    return SamplingPlan.from_json({**shared, "latent_shape": bundle.size_entry(size)["latent_shape"]})


def htp_target(manifest: dict[str, Any], chipset: str | None) -> HtpTarget:
    """The HTP settings of `chipset` (default: the bundle's first) from the manifest's target entry."""
    chips = manifest["target"].get("chipsets", [])
    if not chips:
        raise UserError("this bundle has no compiled NPU models; build it with 'compile --target snapdragon'")
    chip = next((c for c in chips if c["name"] == (chipset or chips[0]["name"])), None)
    if chip is None:
        raise UserError(f"this bundle has no NPU models for {chipset}; it was compiled for "
                        f"{', '.join(c['name'] for c in chips)} (rebuild with --chipset {chipset})")
    return HtpTarget(chip["name"], int(chip["hexagon_arch"].lstrip("v")), int(chip["qnn_soc_model"]))


def compiled_entry(manifest: dict[str, Any], graph: str, chipset: str) -> dict[str, Any]:
    """The offline-compiled EPContext model of `graph` (a key of the manifest's components) for `chipset`, to run in
    HTP emulation here."""
    compiled = manifest["components"][graph].get("compiled", {}).get(chipset)
    if compiled is None:
        raise UserError(f"{graph} has no compiled NPU model for {chipset} in this bundle; rebuild it with "
                        f"'compile --target snapdragon --chipset {chipset}'")
    binaries = set(compiled["offline"]["context_binaries"])
    sharing = [name for name, entry in manifest["components"].items() if name != graph
               and binaries & set(entry.get("compiled", {}).get(chipset, {}).get("offline", {}).get("context_binaries", []))]
    if sharing:
        raise UserError(f"{graph}'s NPU model for {chipset} shares its context binary with {', '.join(sharing)} (every "
                        "size's weights stored once), which onnxruntime-qnn's x86_64 HTP emulator cannot load (it "
                        "crashes); run it on a phone, or use --backend cpu (the build checked each size's graph in "
                        "emulation on its own binary)")
    return compiled["offline"]
