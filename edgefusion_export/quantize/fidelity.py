"""End-to-end fidelity of a reduced-precision build against the float one: images and prompt conditioning."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import UserError
from ..metrics import psnr_db
from ..runtime.images import save_png, to_uint8
from ..runtime.pipeline import Noise, Text2ImagePipeline
from ..stages import StageResult


@dataclass(frozen=True)
class FidelityGates:
    min_psnr_db: float = 20.0
    min_prompt_sensitivity: float = 0.7


@dataclass(frozen=True)
class EndToEnd(StageResult):
    psnr_db: list[float]
    ssim: list[float]
    prompt_sensitivity_float: float
    prompt_sensitivity_reduced: float

    @property
    def prompt_sensitivity_ratio(self) -> float:
        return self.prompt_sensitivity_reduced / max(self.prompt_sensitivity_float, 1e-12)

    def as_dict(self) -> dict:
        return {**asdict(self), "min_psnr_db": min(self.psnr_db) if self.psnr_db else None,
                "prompt_sensitivity_ratio": round(self.prompt_sensitivity_ratio, 4)}

    def summary(self) -> str:
        images = f"PSNR {min(self.psnr_db):.1f} dB, SSIM {min(self.ssim):.3f}  " if self.psnr_db else ""
        return f"{images}prompt sensitivity {self.prompt_sensitivity_ratio:.2f}x float"


def ssim(reference: np.ndarray, test: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(reference, test, channel_axis=2, data_range=1.0))


def prompt_sensitivity(pipeline: Text2ImagePipeline, prompts: list[str], noise: Noise) -> float:
    """Mean relative change of the first UNet prediction when the prompt changes (same latent and timestep)."""
    step = pipeline.plan.steps[0]
    predictions = [pipeline.predict_noise(noise.latent, step.timestep, pipeline.encode_prompt(p)) for p in prompts]
    changes = [np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-12) for a, b in zip(predictions, predictions[1:])]
    return float(np.mean(changes))


def draw(pipeline: Text2ImagePipeline, prompts: list[str], seed: int, images: int) -> tuple[list[np.ndarray], float]:
    """The images of the first `images` prompts (seeds seed, seed+1, ...) and the pipeline's prompt sensitivity."""
    drawn = [pipeline(prompt, Noise.seeded(seed + index, pipeline.plan)).image for index, prompt in enumerate(prompts[:images])]
    return drawn, round(prompt_sensitivity(pipeline, prompts, Noise.seeded(seed, pipeline.plan)), 4)


def compare(reference: Callable[[], Text2ImagePipeline], reduced: Callable[[], Text2ImagePipeline], prompts: list[str],
            seed: int, images: int, save_to: Path | None = None) -> EndToEnd:
    """Images of both pipelines for the first `images` prompts (same seeds), and conditioning strength. The
    pipelines are opened one after the other (the float UNet and VAE alone take gigabytes at 512x512).

    With `save_to`, writes a PNG with one row per prompt: the float image left, the reduced one right.
    """
    expected, sensitivity_float = draw(reference(), prompts, seed, images)
    actual, sensitivity_reduced = draw(reduced(), prompts, seed, images)
    if save_to is not None and expected:
        save_png(to_uint8(np.concatenate([np.concatenate(pair, axis=1) for pair in zip(expected, actual)], axis=0)), save_to)
    return EndToEnd([round(psnr_db(e, a), 2) for e, a in zip(expected, actual)],
                    [round(ssim(e, a), 4) for e, a in zip(expected, actual)], sensitivity_float, sensitivity_reduced)


def check(result: EndToEnd, gates: FidelityGates) -> None:
    """The end-to-end gates."""
    if result.psnr_db and min(result.psnr_db) < gates.min_psnr_db:
        raise UserError(f"images differ from the float build: PSNR {min(result.psnr_db):.1f} dB < --min-psnr "
                        f"{gates.min_psnr_db:g}; use a higher-precision recipe (w8a16-mixed, edgefusion) or lower --min-psnr")
    if result.prompt_sensitivity_ratio < gates.min_prompt_sensitivity:
        raise UserError(f"quantization weakened prompt conditioning to {result.prompt_sensitivity_ratio:.2f}x of the "
                        f"float model's (< --min-prompt-sensitivity {gates.min_prompt_sensitivity:g}); calibrate on "
                        "more prompts (--calibration-size) or use w8a16-mixed")
