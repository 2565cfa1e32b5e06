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
from .components import COMPONENTS, ImageSize, latent_shape, size_label
from .errors import UserError
from .options import BuildOptions, check_request
from .export import onnx_export
from .export.onnx_export import ExportResult, PrecisionResult, SimplifyResult
from .export.shared_weights import SHARED_WEIGHTS_SUFFIX, SharedWeights, share_weights
from .quantize import calibration, fidelity
from .quantize.calibration import CalibrationResult
from .quantize.fidelity import EndToEnd
from .quantize.lookup_tables import has_large_tables, store_lookup_tables_8bit
from .quantize.recipes import AUTO_FALLBACK_RECIPES, QUANTIZED, RECIPES, QuantizeResult, QuantizeSettings, check_fidelity, quantize_component
from .runtime.pipeline import Text2ImagePipeline
from .runtime.scheduler import SamplingPlan
from .runtime.tokenizer import ClipTokenizer
from .sources.loader import ModelSource, SourcePart
from .sources.sampling import lcm_sampling_plan
from .stages import RESULT_FILE, Pass, StageCache, StageResult
from .targets import TARGETS
from .targets.base import FinalModels, Target, TargetBuild

TOOLS = ("torch", "diffusers", "transformers", "onnx", "onnxruntime", "onnxruntime-qnn", "onnxsim", "qai-hub")
NOISE_SCHEME = "splitmix64-box-muller-v1"
CACHE_FORMAT = 7  # bump when a pass changes its output, so cached artifacts are rebuilt
CALIBRATION_SEED = 1_000_000  # calibration prompts use seeds from here, held-out prompts and images further on
HELD_OUT_SEED_OFFSET = 1000
FIDELITY_SEED_OFFSET = 2000
FIDELITY_IMAGE = "fidelity.png"
SINGLE_GRAPH_CHECK = ("this graph's single-graph context binary, compiled from the same model with the same options: "
                      "onnxruntime-qnn's x86_64 HTP emulator cannot load a context binary holding several graphs")
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
        return run_chain(source, options, cache, cache_dir, output, command_line, console)[0]


def run_chain(source: ModelSource, options: BuildOptions, cache: StageCache, cache_dir: Path, output: Path,
              command_line: list[str], console: Console) -> tuple[dict[str, Any], list[Build]]:
    """The passes in order for each image size (the size-free text encoder's come from the cache after the first),
    then the bundle at `output`; returns the build report and each size's build."""
    builds = [Build(source, options, cache, cache_dir, size) for size in options.sizes]
    console.print(f"[bold]edgefusion-export[/bold] {source.description} -> {output} (target {options.target}, "
                  f"{builds[0].precision}, {options.steps} steps, {', '.join(size_label(size) for size in options.sizes)})")
    freed = stages.sweep(cache_dir)
    if freed:
        console.print(f"  removed {freed / 2**20:.1f} MB that a killed build left in the cache {cache_dir}")
    target = TARGETS[options.target]
    compiled = []
    for build in builds:
        if len(builds) > 1:
            console.print(f"[bold]{size_label(build.size)}[/bold]")
        compiled.append(build_size(build, target))
    graphs = BundleGraphs(builds, compiled, target)
    files = graphs.files()
    manifest, shipped = select(graphs.manifest(command_line), [*files, *TOKENIZER_FILES], options.ship)
    report = write_bundle(output, {name: files[name] for name in shipped if name in files}, manifest,
                          graphs.report(), lambda staging: source.tokenizer.save(staging / "tokenizer"))
    console.print(f"[green]bundle written[/green] {output}  ({report['total_seconds']} s, "
                  f"{sum(report['sizes_mb'].values()):.1f} MB)")
    return report, builds


def build_size(build: Build, target: Target) -> TargetBuild:
    """Every component at one image size: exported, simplified, at its precision, checked, and compiled."""
    source, options = build.source, build.options
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
    return target.compile(build.final_models(), options, build.cache)


@dataclass
class Build:
    """The artifacts of one build so far."""

    source: ModelSource
    options: BuildOptions
    cache: StageCache
    cache_dir: Path
    size: ImageSize
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
                                      self.source.guidance_embedding_dim, latent_shape(self.source, self.size),
                                      float(self.source.vae_config.get("scaling_factor", 0.18215)))

    @property
    def label(self) -> str:
        return size_label(self.size)

    @property
    def is_default(self) -> bool:
        """The bundle's first size, whose graphs carry their component's plain name."""
        return self.size == self.options.sizes[0]

    def size_of(self, component: str) -> ImageSize | None:
        """The image size that `component`'s shapes depend on, or None when they do not."""
        return self.size if COMPONENTS[component].image_sized else None

    def graph_name(self, component: str) -> str:
        """The component's key in the manifest at this size: its name, with the size for another size's graph."""
        return component if self.is_default or not COMPONENTS[component].image_sized else f"{component}@{self.label}"

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
                           {c: self.label if self.size_of(c) else None for c in COMPONENTS},
                           {c: "" if self.graph_name(c) == c else self.label for c in COMPONENTS})


class BundleGraphs:
    """The graphs of every size's build, as the bundle holds them: the size-free components once, the others per
    size (the default size's under the component's name), the weights of a component's sizes stored once."""

    def __init__(self, builds: list[Build], compiled: list[TargetBuild], target: Target) -> None:
        self.builds, self.compiled = builds, compiled
        self.first = builds[0]
        # graph name -> (the build of its size, its component, what the target made of that build)
        self.graphs = {build.graph_name(c): (build, c, target_build) for build, target_build in zip(builds, compiled)
                       for c in COMPONENTS if build.is_default or COMPONENTS[c].image_sized}
        self.shared = {}  # component -> the folder of its per-size graphs over one weights file
        self.npu = TargetBuild()  # the target's graphs of several sizes in one binary, by graph name
        if len(builds) > 1:
            graphs: dict[str, dict[str, Path]] = {}  # component -> graph name -> its model over the shared weights
            for component in (c for c in COMPONENTS if COMPONENTS[c].image_sized):
                models = {build.graph_name(component): build.model(build.finals, component) for build in builds}
                self.shared[component], written = self.first.cache.run(share_weights_pass(component, models))
                graphs[component] = {graph: self.shared[component] / file for graph, file in written.graphs.items()}
            self.npu = target.share(graphs, self.first.options, self.first.cache)

    @staticmethod
    def file(name: str) -> str:
        """The portable ONNX file of a graph: `unet.onnx`, `unet-768x512.onnx`."""
        return f"{name.replace('@', '-')}.onnx"

    def files(self) -> dict[str, Path]:
        """Bundle path -> artifact: every portable model (and its weights), compiled model, and fidelity image."""
        files = {}
        for component in COMPONENTS:
            if component in self.shared:
                folder = self.shared[component]
                files |= {artifact.name: artifact for artifact in sorted(folder.iterdir()) if artifact.name != RESULT_FILE}
            else:
                folder = self.first.finals[component]
                files |= {artifact.name: artifact for artifact in sorted(folder.iterdir())
                          if artifact.name.startswith(f"{component}.onnx")}
        for build in self.builds:
            image = build.fidelity_folder / FIDELITY_IMAGE if build.fidelity_folder is not None else None
            if image is not None and image.is_file():
                files[self.fidelity_image(build)] = image
        replaced = {name for graph, (_, component, target_build) in self.graphs.items() if graph in self.npu.compiled
                    for entry in target_build.compiled[component].values()
                    for name in [entry["offline"]["file"], *entry["offline"]["context_binaries"]]}
        for target_build in self.compiled:
            files |= {name: path for name, path in target_build.files.items() if name not in replaced}
        return files | self.npu.files

    def compiled_entry(self, graph: str) -> dict[str, Any] | None:
        """The manifest's "compiled" entry of a graph: per chipset its NPU model, and its emulated check (on the
        graph's single-graph binary where the shipped one holds several sizes)."""
        _, component, target_build = self.graphs[graph]
        entries = target_build.compiled
        if not entries:
            return None
        if graph not in self.npu.compiled:
            return entries[component]
        return {chip: {**entry, "offline": self.npu.compiled[graph][chip]["offline"],
                       "emulated": {**entry["emulated"], **({"binary": SINGLE_GRAPH_CHECK} if "skipped" not in entry["emulated"] else {})}}
                for chip, entry in entries[component].items()}

    def fidelity_image(self, build: Build) -> str:
        return FIDELITY_IMAGE if build.is_default else FIDELITY_IMAGE.replace(".png", f"-{build.label}.png")

    def manifest(self, command_line: list[str]) -> dict[str, Any]:
        components = {}
        for name, (build, component, _) in self.graphs.items():
            inputs, outputs = COMPONENTS[component].io(build.source, build.size_of(component))
            compiled = self.compiled_entry(name)
            components[name] = {"component": component, "size": build.label if build.size_of(component) else None,
                                "file": self.file(name), "precision": build.recipe[component],
                                **({"shared_weights": f"{component}{SHARED_WEIGHTS_SUFFIX}"} if component in self.shared else {}),
                                "inputs": [asdict(spec) for spec in inputs], "outputs": [asdict(spec) for spec in outputs],
                                **build.results[component].as_dict(),
                                **({"compiled": compiled} if compiled else {})}
        sizes = {build.label: {"height": build.size[0], "width": build.size[1], "latent_shape": build.plan.latent_shape,
                               "graphs": {c: build.graph_name(c) for c in COMPONENTS},
                               **({"fidelity": build.end_to_end.as_dict()} if build.end_to_end else {})}
                 for build in self.builds}
        first, tokenizer = self.first, self.first.source.tokenizer
        plan = {key: value for key, value in first.plan.to_json().items() if key != "latent_shape"}
        return {"model": {"description": first.source.description, "fingerprint": first.source.fingerprint,
                          "vae_decoder": first.source.vae_description},
                "target": self.compiled[0].manifest, "sizes": sizes, "components": components,
                "sampling": {"scheduler": "lcm", "num_steps": first.options.steps, **plan, "noise": NOISE_SCHEME},
                "tokenizer": {"type": "clip-bpe", "vocab_file": TOKENIZER_FILES[0], "merges_file": TOKENIZER_FILES[1],
                              "max_length": tokenizer.max_length, "bos_id": tokenizer.bos_id, "eos_id": tokenizer.eos_id,
                              "pad_id": tokenizer.pad_id},
                "provenance": {"source_fingerprint": first.source.fingerprint, "tool_versions": tool_versions(),
                               "command_line": command_line, "created": first.created.isoformat(timespec="seconds")}}

    def report(self) -> dict[str, Any]:
        first = self.first
        npu = {name: {chip: {**entry, **self.npu.report.get(name, {}).get(chip, {})} for chip, entry in target_build.report[component].items()}
               for name, (_, component, target_build) in self.graphs.items() if target_build.report}
        return {"options": {**asdict(first.options), "precision": first.precision}, "source": first.source.description,
                "stages": [asdict(record) for record in first.cache.records],
                "components": {name: build.results[component].as_dict() for name, (build, component, _) in self.graphs.items()},
                "npu": npu,
                "end_to_end": {build.label: build.end_to_end.as_dict() for build in self.builds if build.end_to_end},
                **({"decoder_comparison": {build.label: build.decoders.as_dict() for build in self.builds}}
                   if first.decoders else {}),
                "total_seconds": round(time.perf_counter() - first.started, 1)}


def share_weights_pass(component: str, models: dict[str, Path]) -> Pass[SharedWeights]:
    return Pass(f"share weights {component}", {"models": models, "files": {name: BundleGraphs.file(name) for name in models},
                                               "weights_file": f"{component}{SHARED_WEIGHTS_SUFFIX}"},
                share_weights, SharedWeights)


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
    # precision (its export's GroupNorm form) and its latent scaling factor (folded into it) do not change the
    # UNet's calibration, so another decoder keeps the UNet's quantization, compile and check
    runs = [c for c in COMPONENTS if c != "vae_decoder"]
    plan = replace(build.plan, latent_scaling_factor=1.0)
    return Pass("calibrate", {"floats": {c: build.model(build.floats, c) for c in runs}, "plan": plan,
                              "tokenizer": build.source.tokenizer, "calibration_prompts": calibration_prompts,
                              "evaluation_prompts": evaluation_prompts}, record_calibration, CalibrationResult)


def record_calibration(folder: Path, floats: dict[str, Path], plan: SamplingPlan, tokenizer: ClipTokenizer,
                       calibration_prompts: list[str], evaluation_prompts: list[str]) -> CalibrationResult:
    pipeline = calibration.RecordingPipeline(floats, plan, tokenizer)
    calibration.record(pipeline, calibration_prompts, CALIBRATION_SEED).save(folder, "calibration")
    calibration.record(pipeline, evaluation_prompts, CALIBRATION_SEED + HELD_OUT_SEED_OFFSET).save(folder, "evaluation")
    return CalibrationResult(calibration_prompts, evaluation_prompts, [step.timestep for step in plan.steps])


def fp16_pass(build: Build, component: str) -> Pass[PrecisionResult]:
    float_model = build.model(build.floats, component)
    inputs = {"float_model": float_model, "parity_data": build.parity_data(component)}
    if has_large_tables(float_model):  # --lookup-tables changes only graphs that have such tables
        inputs["lookup_tables"] = build.options.lookup_tables
    return Pass(f"fp16 {component}", inputs, to_fp16, PrecisionResult)


def to_fp16(folder: Path, float_model: Path, parity_data: Path, lookup_tables: str = "fp16") -> PrecisionResult:
    path = onnx_export.to_fp16(float_model, folder, store_lookup_tables_8bit if lookup_tables == "int8" else None)
    return PrecisionResult(parity=onnx_export.check_parity(path, parity_data, "fp16", float_model.stem).as_dict(),
                           precision="fp16")


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
        return build.floats[component], PrecisionResult(parity=build.simplified[component].parity, precision="fp32")
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
