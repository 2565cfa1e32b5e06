"""Calibration recorder: the exact inputs each component sees when the float model draws images.

The float pipeline runs over a prompt list with seeded noise; every component call is recorded, so the
UNet is calibrated at the model's own timesteps (999 and 499 for 2 steps) with the real noise re-injection
between them. Prompts are split: even lines calibrate, odd lines are held out for the fidelity report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..components import COMPONENTS
from ..errors import UserError
from ..runtime.pipeline import Noise, Text2ImagePipeline
from ..stages import StageResult

DEFAULT_PROMPTS = Path(__file__).with_name("calibration_prompts.txt")


def read_prompts(path: Path | None) -> list[str]:
    """One prompt per line; blank lines and '#' comments are skipped. A .tsv takes its first column."""
    path = path or DEFAULT_PROMPTS
    if not path.is_file():
        raise UserError(f"calibration prompt file {path} does not exist; pass a text file with one prompt per line")
    lines = [line.split("\t")[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    prompts = [line for line in lines if line and not line.startswith("#")]
    if path.suffix == ".tsv" and prompts and prompts[0].lower() == "prompt":
        prompts = prompts[1:]
    if len(prompts) < 2:
        raise UserError(f"{path} has {len(prompts)} prompts; calibration needs at least 2 (one is held out)")
    return prompts


def split_prompts(prompts: list[str], calibration_size: int, evaluation_size: int) -> tuple[list[str], list[str]]:
    """Even-numbered prompts calibrate, odd-numbered ones are held out; the two sets never overlap."""
    return prompts[0::2][:calibration_size], prompts[1::2][:evaluation_size]


@dataclass(frozen=True)
class CalibrationResult(StageResult):
    calibration_prompts: list[str]
    evaluation_prompts: list[str]
    unet_timesteps: list[int]

    def summary(self) -> str:
        return f"{len(self.calibration_prompts)} calibration + {len(self.evaluation_prompts)} held-out prompts"


@dataclass
class Recording:
    """Feeds per component, in call order."""

    samples: dict[str, list[dict[str, np.ndarray]]] = field(default_factory=lambda: {c: [] for c in COMPONENTS})

    def save(self, folder: Path, prefix: str) -> None:
        for component, feeds in self.samples.items():
            arrays = {f"{index}/{name}": value for index, feed in enumerate(feeds) for name, value in feed.items()}
            np.savez(folder / f"{prefix}_{component}.npz", **arrays)

    @classmethod
    def load(cls, folder: Path, prefix: str) -> "Recording":
        recording = cls()
        for component in COMPONENTS:
            with np.load(folder / f"{prefix}_{component}.npz") as data:
                feeds: dict[int, dict[str, np.ndarray]] = {}
                for key in data.files:
                    index, name = key.split("/", 1)
                    feeds.setdefault(int(index), {})[name] = data[key]
            recording.samples[component] = [feeds[index] for index in sorted(feeds)]
        return recording


class RecordingPipeline(Text2ImagePipeline):
    """The float pipeline, keeping a copy of every component's inputs."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.recording = Recording()

    def run(self, component: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        self.recording.samples[component].append({name: np.array(value) for name, value in feeds.items()})
        return super().run(component, feeds)


def record(pipeline: RecordingPipeline, prompts: list[str], seed: int) -> Recording:
    """Run the float pipeline over `prompts` (seed, seed+1, ...) and return what each component saw.

    The VAE decoder's inputs are the final denoised latents; it is not run.
    """
    pipeline.recording = Recording()
    for index, prompt in enumerate(prompts):
        embeddings = pipeline.encode_prompt(prompt)
        denoised = pipeline.denoise(embeddings, Noise.seeded(seed + index, pipeline.plan))
        pipeline.recording.samples["vae_decoder"].append({"latent": denoised})
    return pipeline.recording
