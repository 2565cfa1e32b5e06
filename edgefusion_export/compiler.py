"""`compile`: the chain of passes from a model source to a verified bundle.

Each pass (`stages.Pass`) declares what it reads and writes one artifact into a cache folder keyed by those
inputs, so a re-run skips finished work and redoes exactly what a changed option or input reaches; each is
followed by its gate. Producers are plain functions of their declared inputs. The target adds its own passes;
the bundle appears atomically.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from . import __version__, stages
from .bundle.selection import select
from .bundle.writer import write_bundle
from .components import COMPONENTS
from .errors import UserError
from .options import BuildOptions, check_request
from .export import onnx_export
from .export.onnx_export import ExportResult, PrecisionResult, SimplifyResult
from .export.wrappers import ImageSize, component_io, latent_shape
from .quantize import calibration, fidelity
from .quantize.calibration import CalibrationResult
from .quantize.fidelity import EndToEnd
from .quantize.recipes import AUTO_FALLBACK_RECIPES, QUANTIZED, RECIPES, QuantizeResult, QuantizeSettings, check_fidelity, quantize_component
from .runtime.pipeline import Text2ImagePipeline
from .runtime.scheduler import SamplingPlan
from .runtime.tokenizer import ClipTokenizer
from .sources.loader import ModelSource, SourcePart
from .sources.sampling import lcm_sampling_plan
from .stages import Pass, StageCache, StageResult
from .targets import TARGETS
from .targets.base import FinalModels, Target, TargetBuild

TOOLS = ("torch", "diffusers", "transformers", "onnx", "onnxruntime", "onnxruntime-qnn", "onnxsim", "qai-hub")
NOISE_SCHEME = "splitmix64-box-muller-v1"
CACHE_FORMAT = 7  # bump when a pass changes its output, so cached artifacts are rebuilt
CALIBRATION_SEED = 1_000_000  # calibration prompts use seeds from here, held-out prompts and images further on
HELD_OUT_SEED_OFFSET = 1000
FIDELITY_SEED_OFFSET = 2000
FIDELITY_IMAGE = "fidelity.png"
TOKENIZER_FILES = ("tokenizer/vocab.json", "tokenizer/merges.txt")


def tool_versions() -> dict[str, str]:
    versions = {"edgefusion-export": __version__, "python": sys.version.split()[0]}
    for tool in TOOLS:
        try:
            versions[tool] = metadata.version(tool)
        except metadata.PackageNotFoundError:
            versions[tool] = "not installed"
    return versions


def default_cache_dir() -> Path:
    root = os.environ.get("EDGEFUSION_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgefusion-export"
    return Path(root)


def compile_bundle(source: ModelSource, options: BuildOptions, output: Path, cache_dir: Path,
                   command_line: list[str], console: Console) -> dict[str, Any]:
    """Build a bundle at `output` by running the chain of passes; returns the build report."""
    check_request(options, output)
    versions = {"format": CACHE_FORMAT, "tools": tool_versions()}
    with StageCache(cache_dir, console, options.force, versions) as cache:
        return run_chain(Build(source, options, cache, cache_dir), output, command_line, console)


def run_chain(build: Build, output: Path, command_line: list[str], console: Console) -> dict[str, Any]:
    """The passes in order, then the bundle at `output`."""
    source, options, cache_dir = build.source, build.options, build.cache_dir
    console.print(f"[bold]edgefusion-export[/bold] {source.description} -> {output} (target {options.target}, "
                  f"{build.precision}, {options.steps} steps, {options.height}x{options.width})")
    freed = stages.sweep(cache_dir)
    if freed:
        console.print(f"  removed {freed / 2**20:.1f} MB that a killed build left in the cache {cache_dir}")
    target = TARGETS[options.target]
    for component in COMPONENTS:
        build.exports[component], _ = build.cache.run(export_pass(build, component))
        build.floats[component], build.simplified[component] = build.cache.run(simplify_pass(build, component))
        if build.recipe[component] not in QUANTIZED:  # final without calibration: the target can start on it
            finish_component(build, target, component)
    source.release()
    quantized = [component for component in COMPONENTS if build.recipe[component] in QUANTIZED]
    if quantized:
        build.recordings, _ = build.cache.run(calibrate_pass(build))
    for component in quantized:
        finish_component(build, target, component)
    if build.precision != "fp32":
        build.fidelity_folder, build.end_to_end = build.cache.run(fidelity_pass(build))
        fidelity.check(build.end_to_end, options.fidelity)
    if source.own_vae is not None:
        _, build.decoders = build.cache.run(decoder_comparison_pass(build))
    compiled = target.compile(build.final_models(), options, build.cache)
    files = build.bundle_files(compiled)
    manifest, shipped = select(build.manifest(compiled, command_line), [*files, *TOKENIZER_FILES], options.ship)
    report = write_bundle(output, {name: files[name] for name in shipped if name in files}, manifest,
                          build.report(compiled), lambda staging: source.tokenizer.save(staging / "tokenizer"))
    console.print(f"[green]bundle written[/green] {output}  ({report['total_seconds']} s, "
                  f"{sum(report['sizes_mb'].values()):.1f} MB)")
    return report


@dataclass
class Build:
    """The artifacts of one build so far."""

    source: ModelSource
    options: BuildOptions
    cache: StageCache
    cache_dir: Path
    exports: dict[str, Path] = field(default_factory=dict)
    floats: dict[str, Path] = field(default_factory=dict)
    simplified: dict[str, SimplifyResult] = field(default_factory=dict)
    recordings: Path | None = None
    finals: dict[str, Path] = field(default_factory=dict)
    results: dict[str, PrecisionResult | QuantizeResult] = field(default_factory=dict)
    fidelity_folder: Path | None = None
    end_to_end: EndToEnd | None = None
    decoders: DecoderComparison | None = None
    started: float = field(default_factory=time.perf_counter)
    created: datetime = field(default_factory=lambda: build_time())
    precision: str = field(init=False)
    recipe: dict[str, str] = field(init=False)
    plan: SamplingPlan = field(init=False)

    def __post_init__(self) -> None:
        self.precision = self.options.resolved_precision
        self.recipe = RECIPES[self.precision]
        self.plan = lcm_sampling_plan(self.source.scheduler_config, self.options.steps, self.options.guidance_scale,
                                      self.source.guidance_embedding_dim, latent_shape(self.source, self.image_size),
                                      float(self.source.vae_config.get("scaling_factor", 0.18215)))

    @property
    def image_size(self) -> ImageSize:
        return self.options.height, self.options.width

    def size_of(self, component: str) -> ImageSize | None:
        """The image size that `component`'s shapes depend on, or None when they do not."""
        return self.image_size if COMPONENTS[component].image_sized else None

    def model(self, stage: dict[str, Path], component: str) -> Path:
        return stage[component] / f"{component}.onnx"

    def parity_data(self, component: str) -> Path:
        return self.exports[component] / onnx_export.PARITY_FILE

    def prompts(self, evaluation_size: int) -> tuple[list[str], list[str]]:
        return calibration.split_prompts(calibration.read_prompts(self.options.calibration_prompts),
                                         self.options.calibration_size, evaluation_size)

    def final_models(self) -> FinalModels:
        """What the target compiles, with one held-out image's inputs per component for its checks."""
        if self.recordings is not None:
            recorded = calibration.Recording.load(self.recordings, "evaluation").samples
            held_out = {c: recorded[c][:COMPONENTS[c].calls_per_image(self.options.steps)] for c in COMPONENTS}
        else:
            held_out = {c: [example_feeds(self.exports[c])] for c in COMPONENTS}
        return FinalModels({c: self.model(self.finals, c) for c in COMPONENTS}, {c: self.model(self.floats, c) for c in COMPONENTS},
                           dict(self.recipe), held_out, self.cache_dir,
                           {c: f"{self.options.width}x{self.options.height}" if self.size_of(c) else None for c in COMPONENTS})

    def bundle_files(self, compiled: TargetBuild) -> dict[str, Path]:
        files = {artifact.name: artifact for component, folder in self.finals.items() for artifact in sorted(folder.iterdir())
                 if artifact.name.startswith(f"{component}.onnx")}
        if self.fidelity_folder is not None and (self.fidelity_folder / FIDELITY_IMAGE).is_file():
            files[FIDELITY_IMAGE] = self.fidelity_folder / FIDELITY_IMAGE
        return files | compiled.files

    def manifest(self, compiled: TargetBuild, command_line: list[str]) -> dict[str, Any]:
        components = {}
        for component in COMPONENTS:
            inputs, outputs = component_io(self.source, component, self.size_of(component))
            components[component] = {"file": f"{component}.onnx", "precision": self.recipe[component],
                                     "inputs": [asdict(spec) for spec in inputs], "outputs": [asdict(spec) for spec in outputs],
                                     **self.results[component].as_dict(),
                                     **({"compiled": compiled.compiled[component]} if compiled.compiled else {})}
        tokenizer = self.source.tokenizer
        return {"model": {"description": self.source.description, "fingerprint": self.source.fingerprint,
                          "height": self.options.height, "width": self.options.width,
                          "vae_decoder": self.source.vae_description},
                "target": compiled.manifest, "components": components,
                "sampling": {"scheduler": "lcm", "num_steps": self.options.steps, **self.plan.to_json(), "noise": NOISE_SCHEME},
                "tokenizer": {"type": "clip-bpe", "vocab_file": TOKENIZER_FILES[0], "merges_file": TOKENIZER_FILES[1],
                              "max_length": tokenizer.max_length, "bos_id": tokenizer.bos_id, "eos_id": tokenizer.eos_id,
                              "pad_id": tokenizer.pad_id},
                **({"fidelity": self.end_to_end.as_dict()} if self.end_to_end else {}),
                "provenance": {"source_fingerprint": self.source.fingerprint, "tool_versions": tool_versions(),
                               "command_line": command_line, "created": self.created.isoformat(timespec="seconds")}}

    def report(self, compiled: TargetBuild) -> dict[str, Any]:
        return {"options": {**asdict(self.options), "precision": self.precision}, "source": self.source.description,
                "stages": [asdict(record) for record in self.cache.records],
                "components": {c: self.results[c].as_dict() for c in COMPONENTS}, "npu": compiled.report,
                "end_to_end": self.end_to_end.as_dict() if self.end_to_end else None,
                **({"decoder_comparison": self.decoders.as_dict()} if self.decoders else {}),
                "total_seconds": round(time.perf_counter() - self.started, 1)}


def build_time() -> datetime:
    """Now, or SOURCE_DATE_EPOCH's time when it is set (reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is None:
        return datetime.now(timezone.utc)
    if not epoch.isdigit():
        raise UserError(f"SOURCE_DATE_EPOCH={epoch!r} is not a number of seconds since 1970; unset it or fix it")
    return datetime.fromtimestamp(int(epoch), timezone.utc)


def example_feeds(export_folder: Path) -> dict[str, np.ndarray]:
    """The export's example inputs of a component (what its parity gate runs on)."""
    with np.load(export_folder / onnx_export.PARITY_FILE) as data:
        return {name: data[name] for name in data.files if name != "reference"}


def export_pass(build: Build, component: str) -> Pass[ExportResult]:
    channels_last = build.recipe[component] in QUANTIZED  # the GroupNorm form 16-bit activations need on the HTP
    return Pass(f"export {component}", {"model": build.source.part(component), "size": build.size_of(component),
                                        "channels_last": channels_last}, export, ExportResult)


def export(folder: Path, model: SourcePart, size: ImageSize | None, channels_last: bool) -> ExportResult:
    path = onnx_export.export_component(model.source, model.component, size, folder, channels_last)
    return ExportResult(onnx_export.check_parity(path, folder / onnx_export.PARITY_FILE, "fp32", model.component).as_dict())


def simplify_pass(build: Build, component: str) -> Pass[SimplifyResult]:
    return Pass(f"simplify {component}", {"exported": build.model(build.exports, component),
                                          "parity_data": build.parity_data(component)}, simplify, SimplifyResult)


def simplify(folder: Path, exported: Path, parity_data: Path) -> SimplifyResult:
    path, info = onnx_export.simplify(exported, folder)
    return SimplifyResult(**info, parity=onnx_export.check_parity(path, parity_data, "fp32", exported.stem).as_dict())


def calibrate_pass(build: Build) -> Pass[CalibrationResult]:
    calibration_prompts, evaluation_prompts = build.prompts(build.options.evaluation_size)
    # the recorder runs every component but the decoder, whose inputs are the final latents: the decoder's own
    # precision (its export's GroupNorm form) does not change the UNet's calibration
    runs = [c for c in COMPONENTS if c != "vae_decoder"]
    return Pass("calibrate", {"floats": {c: build.model(build.floats, c) for c in runs}, "plan": build.plan,
                              "tokenizer": build.source.tokenizer, "calibration_prompts": calibration_prompts,
                              "evaluation_prompts": evaluation_prompts}, record_calibration, CalibrationResult)


def record_calibration(folder: Path, floats: dict[str, Path], plan: SamplingPlan, tokenizer: ClipTokenizer,
                       calibration_prompts: list[str], evaluation_prompts: list[str]) -> CalibrationResult:
    pipeline = calibration.RecordingPipeline(floats, plan, tokenizer)
    calibration.record(pipeline, calibration_prompts, CALIBRATION_SEED).save(folder, "calibration")
    calibration.record(pipeline, evaluation_prompts, CALIBRATION_SEED + HELD_OUT_SEED_OFFSET).save(folder, "evaluation")
    return CalibrationResult(calibration_prompts, evaluation_prompts, [step.timestep for step in plan.steps])


def fp16_pass(build: Build, component: str) -> Pass[PrecisionResult]:
    return Pass(f"fp16 {component}", {"float_model": build.model(build.floats, component),
                                      "parity_data": build.parity_data(component)}, to_fp16, PrecisionResult)


def to_fp16(folder: Path, float_model: Path, parity_data: Path) -> PrecisionResult:
    path = onnx_export.to_fp16(float_model, folder)
    return PrecisionResult("fp16", onnx_export.check_parity(path, parity_data, "fp16", float_model.stem).as_dict())


def w8a16_pass(build: Build, component: str, precision: str) -> Pass[QuantizeResult]:
    """Plain W8A16 (shared by every recipe), or w8a16-mixed's fallback to float layers."""
    inputs = {"float_model": build.model(build.floats, component), "parity_data": build.parity_data(component),
              "recordings": build.recordings, "precision": precision,
              "settings": build.options.quantize.read_by(precision)}
    # 5-7 GB at 512x512 (quantization and held-out runs): not beside a background QNN compile under 12 GiB
    return Pass(f"{precision} {component}", inputs, quantize, QuantizeResult, exclusive=True)


def quantize(folder: Path, float_model: Path, parity_data: Path, recordings: Path, precision: str,
             settings: QuantizeSettings) -> QuantizeResult:
    component = float_model.stem
    samples = {prefix: calibration.Recording.load(recordings, prefix).samples[component] for prefix in ("calibration", "evaluation")}
    result = quantize_component(float_model, samples["calibration"], samples["evaluation"], folder, precision, settings)
    parity = onnx_export.check_parity(folder / float_model.name, parity_data, "w8a16", component)
    return replace(result, parity=parity.as_dict())


def finish_component(build: Build, target: Target, component: str) -> None:
    """The component at its recipe's precision, handed to the target to start on."""
    build.finals[component], build.results[component] = reduce_precision(build, component)
    target.start(component, build.model(build.finals, component), build.options, build.cache)


def reduce_precision(build: Build, component: str) -> tuple[Path, StageResult]:
    """The component at its recipe's precision. When plain W8A16 misses the gate, w8a16-mixed, and the recipes that
    fall back by themselves (edgefusion), keep the most sensitive layers in float."""
    precision = build.recipe[component]
    if precision == "fp32":
        return build.floats[component], PrecisionResult("fp32", build.simplified[component].parity)
    if precision == "fp16":
        return build.cache.run(fp16_pass(build, component))
    folder, result = build.cache.run(w8a16_pass(build, component, "w8a16"))
    if precision == "w8a16-mixed" or build.precision in AUTO_FALLBACK_RECIPES:
        if result.fidelity["sqnr_db"] < build.options.quantize.min_sqnr_db:
            folder, result = build.cache.run(w8a16_pass(build, component, "w8a16-mixed"))
        elif precision == "w8a16-mixed":
            result = replace(result, precision="w8a16-mixed")
    check_fidelity(component, result, build.options.quantize)
    return folder, result


def fidelity_pass(build: Build) -> Pass[EndToEnd]:
    _, prompts = build.prompts(max(build.options.evaluation_size, 2))
    return Pass("fidelity end-to-end", {"floats": {c: build.model(build.floats, c) for c in COMPONENTS},
                                        "finals": {c: build.model(build.finals, c) for c in COMPONENTS},
                                        "plan": build.plan, "tokenizer": build.source.tokenizer, "prompts": prompts,
                                        "images": build.options.fidelity_images}, compare_end_to_end, EndToEnd)


def compare_end_to_end(folder: Path, floats: dict[str, Path], finals: dict[str, Path], plan: SamplingPlan,
                       tokenizer: ClipTokenizer, prompts: list[str], images: int) -> EndToEnd:
    return fidelity.compare(lambda: Text2ImagePipeline(floats, plan, tokenizer), lambda: Text2ImagePipeline(finals, plan, tokenizer),
                            prompts, CALIBRATION_SEED + FIDELITY_SEED_OFFSET, images, folder / FIDELITY_IMAGE)


@dataclass(frozen=True)
class DecoderComparison(StageResult):
    """Informational: the replacement decoder's images against the model's own decoder on the same latents."""

    psnr_db: list[float]
    note: str = ("PSNR of the shipped decoder against the model's own decoder on held-out denoised latents; with a "
                 "preset's or any untrained decoder's random weights it measures nothing about quality")

    def summary(self) -> str:
        return f"tiny decoder vs own decoder PSNR {', '.join(f'{value:.1f}' for value in self.psnr_db)} dB (informational)"


def decoder_comparison_pass(build: Build) -> Pass[DecoderComparison]:
    if build.recordings is not None:
        latents = [feed["latent"] for feed in calibration.Recording.load(build.recordings, "evaluation").samples["vae_decoder"][:2]]
    else:
        latents = [example_feeds(build.exports["vae_decoder"])["latent"]]
    return Pass("compare decoders", {"model": build.source, "latents": latents}, compare_decoders, DecoderComparison)


def compare_decoders(folder: Path, model: ModelSource, latents: list[np.ndarray]) -> DecoderComparison:
    import torch

    from .export.wrappers import wrap
    from .metrics import psnr_db

    components = model.load()
    decoders = [wrap(components, "vae_decoder"), wrap(replace(components, vae=model.own_vae()), "vae_decoder")]
    with torch.no_grad():
        images = [[decoder(torch.from_numpy(latent)).numpy() for latent in latents] for decoder in decoders]
    model.release()
    return DecoderComparison([round(psnr_db(own, tiny), 2) for tiny, own in zip(*images)])
