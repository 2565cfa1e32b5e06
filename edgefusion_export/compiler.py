"""`compile`: the chain of passes from a model source to a verified bundle.

Each pass (`stages.Pass`) writes one artifact into a cache folder keyed by everything it depends on, so a re-run
skips finished work, and is followed by its gate. The target adds its own passes; the bundle appears atomically.
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
from .export.wrappers import component_io, latent_shape
from .quantize import calibration, fidelity
from .quantize.calibration import CalibrationResult
from .quantize.fidelity import EndToEnd
from .quantize.recipes import AUTO_FALLBACK_RECIPES, QUANTIZED, RECIPES, QuantizeResult, check_fidelity, quantize_component
from .runtime.pipeline import Text2ImagePipeline
from .runtime.scheduler import SamplingPlan
from .sources.loader import ModelSource
from .sources.sampling import lcm_sampling_plan
from .stages import Pass, StageCache, StageResult
from .targets import TARGETS
from .targets.base import FinalModels, Target, TargetBuild

TOOLS = ("torch", "diffusers", "transformers", "onnx", "onnxruntime", "onnxruntime-qnn", "onnxsim", "qai-hub")
NOISE_SCHEME = "splitmix64-box-muller-v1"
CACHE_FORMAT = 6  # bump when a pass changes its output, so cached artifacts are rebuilt
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
    with StageCache(cache_dir, console, options.force) as cache:
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
    build.plan = lcm_sampling_plan(source.scheduler_config, options.steps, options.guidance_scale,
                                   source.guidance_embedding_dim, latent_shape(source, options.height, options.width),
                                   float(source.vae_config.get("scaling_factor", 0.18215)))
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
    """The artifacts of one build so far, and the keys its passes share."""

    source: ModelSource
    options: BuildOptions
    cache: StageCache
    cache_dir: Path
    exports: dict[str, Path] = field(default_factory=dict)
    floats: dict[str, Path] = field(default_factory=dict)
    simplified: dict[str, SimplifyResult] = field(default_factory=dict)
    plan: SamplingPlan | None = None
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
    base_key: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.precision = self.options.resolved_precision
        self.recipe = RECIPES[self.precision]
        self.base_key = {"format": CACHE_FORMAT, "source": self.source.fingerprint, "height": self.options.height,
                         "width": self.options.width, "opset": onnx_export.OPSET, "tools": tool_versions()}

    def model(self, stage: dict[str, Path], component: str) -> Path:
        return stage[component] / f"{component}.onnx"

    def prompts(self, evaluation_size: int) -> tuple[list[str], list[str]]:
        return calibration.split_prompts(calibration.read_prompts(self.options.calibration_prompts),
                                         self.options.calibration_size, evaluation_size)

    @property
    def recording_key(self) -> dict[str, Any]:
        calibration_prompts, evaluation_prompts = self.prompts(self.options.evaluation_size)
        return {**self.base_key, "steps": self.options.steps, "guidance": self.options.guidance_scale,
                "seed": CALIBRATION_SEED, "prompts": calibration.prompts_digest(calibration_prompts + ["--"] + evaluation_prompts)}

    def final_models(self) -> FinalModels:
        """What the target compiles, with one held-out image's inputs per component for its checks."""
        if self.recordings is not None:
            recorded = calibration.Recording.load(self.recordings, "evaluation").samples
            held_out = {c: recorded[c][:COMPONENTS[c].calls_per_image(self.options.steps)] for c in COMPONENTS}
        else:
            held_out = {c: [example_feeds(self.exports[c])] for c in COMPONENTS}
        return FinalModels({c: self.model(self.finals, c) for c in COMPONENTS}, {c: self.model(self.floats, c) for c in COMPONENTS},
                           dict(self.recipe), held_out, self.recording_key if self.recordings else "examples", self.base_key,
                           self.cache_dir)

    def bundle_files(self, compiled: TargetBuild) -> dict[str, Path]:
        files = {artifact.name: artifact for component, folder in self.finals.items() for artifact in sorted(folder.iterdir())
                 if artifact.name.startswith(f"{component}.onnx")}
        if self.fidelity_folder is not None and (self.fidelity_folder / FIDELITY_IMAGE).is_file():
            files[FIDELITY_IMAGE] = self.fidelity_folder / FIDELITY_IMAGE
        return files | compiled.files

    def manifest(self, compiled: TargetBuild, command_line: list[str]) -> dict[str, Any]:
        components = {}
        for component in COMPONENTS:
            inputs, outputs = component_io(self.source, component, self.options.height, self.options.width)
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
    key = {**build.base_key, "component": component, "group_norm": "channels-last" if channels_last else "torch"}
    if component == "vae_decoder" and build.source.vae_fingerprint:
        key["decoder"] = build.source.vae_fingerprint  # another decoder than the model's own

    def produce(folder: Path) -> ExportResult:
        options = build.options
        path = onnx_export.export_component(build.source, component, options.height, options.width, folder, channels_last)
        return ExportResult(onnx_export.check_parity(path, folder / onnx_export.PARITY_FILE, "fp32", component).as_dict())

    return Pass(f"export {component}", key, produce, ExportResult)


def simplify_pass(build: Build, component: str) -> Pass[SimplifyResult]:
    exported = build.exports[component]

    def produce(folder: Path) -> SimplifyResult:
        path, info = onnx_export.simplify(exported / f"{component}.onnx", folder)
        parity = onnx_export.check_parity(path, exported / onnx_export.PARITY_FILE, "fp32", component)
        return SimplifyResult(**info, parity=parity.as_dict())

    return Pass(f"simplify {component}", {"exported": str(exported), "pass": "onnxsim", "format": CACHE_FORMAT},
                produce, SimplifyResult)


def calibrate_pass(build: Build) -> Pass[CalibrationResult]:
    calibration_prompts, evaluation_prompts = build.prompts(build.options.evaluation_size)

    def produce(folder: Path) -> CalibrationResult:
        floats = {c: build.model(build.floats, c) for c in COMPONENTS}
        pipeline = calibration.RecordingPipeline(floats, build.plan, build.source.tokenizer)
        calibration.record(pipeline, calibration_prompts, CALIBRATION_SEED).save(folder, "calibration")
        calibration.record(pipeline, evaluation_prompts, CALIBRATION_SEED + HELD_OUT_SEED_OFFSET).save(folder, "evaluation")
        return CalibrationResult(calibration_prompts, evaluation_prompts, [step.timestep for step in build.plan.steps])

    return Pass("calibrate", build.recording_key, produce, CalibrationResult)


def fp16_pass(build: Build, component: str) -> Pass[PrecisionResult]:
    exported = build.exports[component]

    def produce(folder: Path) -> PrecisionResult:
        path = onnx_export.to_fp16(build.model(build.floats, component), folder)
        return PrecisionResult("fp16", onnx_export.check_parity(path, exported / onnx_export.PARITY_FILE, "fp16", component).as_dict())

    return Pass(f"fp16 {component}", {"float": str(build.floats[component]), "precision": "fp16", "format": CACHE_FORMAT},
                produce, PrecisionResult)


def w8a16_pass(build: Build, component: str, precision: str) -> Pass[QuantizeResult]:
    """Plain W8A16 (shared by every recipe), or w8a16-mixed's fallback to float layers."""
    float_model, exported = build.model(build.floats, component), build.exports[component]
    settings = asdict(build.options.quantize) if precision == "w8a16-mixed" else None

    def produce(folder: Path) -> QuantizeResult:
        recordings = {prefix: calibration.Recording.load(build.recordings, prefix).samples[component]
                      for prefix in ("calibration", "evaluation")}
        result = quantize_component(float_model, recordings["calibration"], recordings["evaluation"], folder, precision,
                                    build.options.quantize)
        parity = onnx_export.check_parity(folder / float_model.name, exported / onnx_export.PARITY_FILE, "w8a16", component)
        return replace(result, parity=parity.as_dict())

    key = {"float": str(build.floats[component]), "precision": precision, "calibration": build.recording_key,
           "settings": settings, "ranges": build.options.quantize.activation_ranges, "format": CACHE_FORMAT}
    # 5-7 GB at 512x512 (quantization and held-out runs): not beside a background QNN compile under 12 GiB
    return Pass(f"{precision} {component}", key, produce, QuantizeResult, exclusive=True)


def finish_component(build: Build, target: Target, component: str) -> None:
    """The component at its recipe's precision, handed to the target to start on."""
    build.finals[component], build.results[component] = reduce_precision(build, component)
    target.start(component, build.model(build.finals, component), build.base_key, build.options, build.cache)


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
    finals = {c: build.model(build.finals, c) for c in COMPONENTS}
    key = {**build.base_key, "finals": sorted(str(path) for path in build.finals.values()),
           "images": build.options.fidelity_images,
           "prompts": calibration.prompts_digest(calibration.read_prompts(build.options.calibration_prompts))}

    def produce(folder: Path) -> EndToEnd:
        floats = {c: build.model(build.floats, c) for c in COMPONENTS}
        _, prompts = build.prompts(max(build.options.evaluation_size, 2))
        return fidelity.compare(lambda: Text2ImagePipeline(floats, build.plan, build.source.tokenizer),
                                lambda: Text2ImagePipeline(finals, build.plan, build.source.tokenizer), prompts,
                                CALIBRATION_SEED + FIDELITY_SEED_OFFSET, build.options.fidelity_images, folder / FIDELITY_IMAGE)

    return Pass("fidelity end-to-end", key, produce, EndToEnd)


@dataclass(frozen=True)
class DecoderComparison(StageResult):
    """Informational: the replacement decoder's images against the model's own decoder on the same latents."""

    psnr_db: list[float]
    note: str = ("PSNR of the shipped decoder against the model's own decoder on held-out denoised latents; with a "
                 "preset's or any untrained decoder's random weights it measures nothing about quality")

    def summary(self) -> str:
        return f"tiny decoder vs own decoder PSNR {', '.join(f'{value:.1f}' for value in self.psnr_db)} dB (informational)"


def decoder_comparison_pass(build: Build) -> Pass[DecoderComparison]:
    key = {**build.base_key, "decoder": build.source.vae_fingerprint, "latents": build.recording_key if build.recordings else "examples"}

    def produce(folder: Path) -> DecoderComparison:
        import torch

        from .export.wrappers import wrap
        from .metrics import psnr_db

        if build.recordings is not None:
            latents = [feed["latent"] for feed in calibration.Recording.load(build.recordings, "evaluation").samples["vae_decoder"][:2]]
        else:
            latents = [example_feeds(build.exports["vae_decoder"])["latent"]]
        components = build.source.load()
        decoders = [wrap(components, "vae_decoder"), wrap(replace(components, vae=build.source.own_vae()), "vae_decoder")]
        with torch.no_grad():
            images = [[decoder(torch.from_numpy(latent)).numpy() for latent in latents] for decoder in decoders]
        build.source.release()
        return DecoderComparison([round(psnr_db(own, tiny), 2) for tiny, own in zip(*images)])

    return Pass("compare decoders", key, produce, DecoderComparison)
