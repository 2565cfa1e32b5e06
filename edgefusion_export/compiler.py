"""`compile`: the chain of passes from a model source to a verified bundle.

Each pass writes one artifact into a cache folder keyed by everything it depends on, so a re-run
skips finished work; each is followed by its parity gate. The bundle appears atomically at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np
from rich.console import Console

from . import __version__
from .bundle.manifest import write_manifest
from .errors import UserError
from .export import onnx_export
from .components import COMPONENTS
from .export.wrappers import component_io
from .files import staged_directory, write_text_atomic
from .memory import PeakMemory, resident_bytes
from .profile.estimate import layer_costs
from .quantize import calibration, fidelity
from .quantize.fidelity import FidelityGates
from .quantize.recipes import QUANTIZED, RECIPES, QuantizeSettings, check_fidelity, quantize_component
from .runtime.pipeline import Text2ImagePipeline
from .runtime.scheduler import SamplingPlan
from .sources.sampling import lcm_sampling_plan
from .sources.loader import ModelSource
from .targets import MIN_NPU_SQNR_DB, TARGETS, aihub, chipsets, snapdragon

TOOLS = ("torch", "diffusers", "transformers", "onnx", "onnxruntime", "onnxruntime-qnn", "onnxsim", "qai-hub")
NOISE_SCHEME = "splitmix64-box-muller-v1"
CACHE_FORMAT = 6  # bump when a pass changes its output, so cached artifacts are rebuilt
CALIBRATION_SEED = 1_000_000
FIDELITY_IMAGE = "fidelity.png"


@dataclass(frozen=True)
class BuildOptions:
    target: str = "cpu"
    precision: str | None = None  # a recipe of quantize.recipes.RECIPES; None: the target's default
    steps: int = 2
    guidance_scale: float = 8.5
    height: int = 512
    width: int = 512
    force: bool = False
    calibration_prompts: Path | None = None
    calibration_size: int = 16
    evaluation_size: int = 4
    quantize: QuantizeSettings = QuantizeSettings()
    fidelity: FidelityGates = FidelityGates()
    fidelity_images: int = 2
    chipsets: tuple[str, ...] = ()  # snapdragon: profile names; empty means the default chipset
    allow_cpu_fallback: bool = False
    aihub: bool = False
    verify_npu: bool | None = None  # None: when HTP emulation of one image's calls is quick enough
    min_npu_sqnr: float = MIN_NPU_SQNR_DB

    @property
    def resolved_precision(self) -> str:
        return self.precision or TARGETS[self.target].default_precision

    def validate(self) -> None:
        if self.target not in TARGETS:
            raise UserError(f"unknown target {self.target!r}; choose one of: {', '.join(TARGETS)}")
        if self.resolved_precision not in RECIPES:
            raise UserError(f"unknown precision {self.resolved_precision!r}; choose one of: {', '.join(RECIPES)}")
        if self.calibration_size < 1 or self.evaluation_size < 1:
            raise UserError("--calibration-size must be at least 1")
        if self.calibration_prompts is not None:
            calibration.read_prompts(self.calibration_prompts)
        if self.target != "snapdragon" and (self.chipsets or self.aihub or self.verify_npu):
            raise UserError("--chipset, --aihub and --verify-npu apply to --target snapdragon only")
        for name in self.chipsets:
            chipsets.chipset(name)
        for label, value in (("height", self.height), ("width", self.width)):
            if value < 64 or value % 64:
                raise UserError(f"{label} {value} is not a positive multiple of 64; use e.g. 512")
        if not 1 <= self.steps <= 8:
            raise UserError(f"--steps {self.steps} is outside 1..8; LCM models are distilled for 1 to 8 steps")


@dataclass
class StageRecord:
    name: str
    seconds: float
    cached: bool
    peak_rss_mb: float
    info: dict[str, Any] = field(default_factory=dict)


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


class StageCache:
    """Artifacts of finished passes, one folder per (stage, key); written atomically."""

    def __init__(self, root: Path, console: Console, force: bool = False) -> None:
        self.root = root
        self.console = console
        self.force = force
        self.records: list[StageRecord] = []

    def run(self, stage: str, key: dict[str, Any], produce: Callable[[Path], dict[str, Any]]) -> tuple[Path, dict[str, Any]]:
        """Return the artifact folder of `stage` for `key`, producing it if needed."""
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        folder = self.root / stage.replace(" ", "-") / digest
        info_file = folder / "stage.json"
        start = time.perf_counter()
        if info_file.is_file() and not self.force:
            info = json.loads(info_file.read_text())
            info.pop("key")
            self._record(stage, start, True, info, resident_bytes() / 2**20)
            return folder, info
        with self.console.status(f"{stage} ..."), PeakMemory() as peak:
            with staged_directory(folder) as staging:
                info = produce(staging)
                (staging / "stage.json").write_text(json.dumps({**info, "key": key}, indent=2))
        self._record(stage, start, False, info, peak.mb)
        return folder, info

    def _record(self, stage: str, start: float, cached: bool, info: dict[str, Any], peak_mb: float) -> None:
        seconds = time.perf_counter() - start
        self.records.append(StageRecord(stage, round(seconds, 2), cached, round(peak_mb, 1), info))
        status = "cached" if cached else f"{seconds:6.1f} s"
        self.console.print(f"  [bold]{stage:<24}[/bold] {status:>9} {peak_mb / 1024:5.1f} GB  {_summary(info)}", overflow="fold")


def _summary(info: dict[str, Any]) -> str:
    """One line per finished stage: what the stage's gate measured."""
    parts = []
    if "nodes_before" in info:
        parts.append(f"nodes {info['nodes_before']} -> {info['nodes_after']}")
    if "fidelity" in info:
        per_step = ", ".join(f"t={t} {v:.1f}" for t, v in info["fidelity"]["per_timestep_sqnr_db"].items())
        parts.append(f"held-out SQNR {info['fidelity']['sqnr_db']:.1f} dB" + (f" ({per_step})" if per_step else ""))
        if info["kept_float"]:
            parts.append(f"{len(info['kept_float'])} layers kept float")
    elif "parity" in info:
        parts.append(f"parity {info['parity']['sqnr_db']:.1f} dB")
    if "partitions" in info:
        parts.append(f"{info['partitions']} NPU partition(s), {len(info['cpu_nodes'])} CPU nodes, "
                     f"{len(info['io_conversions'])} I/O conversions, QNN {info['qnn_sdk_version'][:5]}")
    if "sqnr_vs_cpu_db" in info:
        parts.append(f"HTP emulation vs CPU {info['sqnr_vs_cpu_db']:.1f} dB, vs float {info['sqnr_vs_float_db']:.1f} dB")
    if "job_id" in info:
        parts.append(f"AI Hub job {info['job_id']}")
    if "calibration_prompts" in info:
        parts.append(f"{len(info['calibration_prompts'])} calibration + {len(info['evaluation_prompts'])} held-out prompts")
    if "prompt_sensitivity_ratio" in info:
        if info["psnr_db"]:
            parts.append(f"PSNR {min(info['psnr_db']):.1f} dB, SSIM {min(info['ssim']):.3f}")
        parts.append(f"prompt sensitivity {info['prompt_sensitivity_ratio']:.2f}x float")
    return "  ".join(parts)


def check_request(options: BuildOptions, output: Path) -> None:
    """Refuse bad options and output paths before any work starts."""
    options.validate()
    if output.exists() and not output.is_dir():
        raise UserError(f"output {output} is a file; pass a folder path for the bundle")


def compile_bundle(source: ModelSource, options: BuildOptions, output: Path, cache_dir: Path,
                   command_line: list[str], console: Console) -> dict[str, Any]:
    """Build a bundle at `output`; returns the build report."""
    check_request(options, output)
    precision = options.resolved_precision
    target = TARGETS[options.target]
    cache = StageCache(cache_dir, console, options.force)
    started = time.perf_counter()
    console.print(f"[bold]edgefusion-export[/bold] {source.description} -> {output} "
                  f"(target {target.name}, {precision}, {options.steps} steps, {options.height}x{options.width})")

    base_key = {"format": CACHE_FORMAT, "source": source.fingerprint, "height": options.height, "width": options.width,
                "opset": onnx_export.OPSET, "tools": tool_versions()}
    recipe = RECIPES[precision]
    floats: dict[str, Path] = {}
    exports: dict[str, Path] = {}
    parity: dict[str, dict[str, float]] = {}
    for component in COMPONENTS:
        channels_last = recipe[component] in QUANTIZED  # the GroupNorm form 16-bit activations need on the HTP
        key = {**base_key, "component": component, "group_norm": "channels-last" if channels_last else "torch"}
        exports[component], _ = cache.run(f"export {component}", key, lambda folder, c=component, last=channels_last:
                                          _export(source, c, options, folder, last))
        floats[component], info = cache.run(f"simplify {component}", {**key, "pass": "onnxsim"},
                                            lambda folder, c=component: _simplify(exports[c], c, folder))
        parity[component] = info["parity"]
    source.release()

    plan = lcm_sampling_plan(source.scheduler_config, options.steps, options.guidance_scale,
                             source.guidance_embedding_dim, component_io(source, "unet", options.height, options.width)[0][0].shape,
                             float(source.vae_config.get("scaling_factor", 0.18215)))
    float_models = {component: floats[component] / f"{component}.onnx" for component in COMPONENTS}
    recording_key: dict[str, Any] = {}
    recordings = None
    if any(recipe[component] in QUANTIZED for component in COMPONENTS):
        calibration_prompts, evaluation_prompts = calibration.split_prompts(
            calibration.read_prompts(options.calibration_prompts), options.calibration_size, options.evaluation_size)
        recording_key = {**base_key, "steps": options.steps, "guidance": options.guidance_scale, "seed": CALIBRATION_SEED,
                         "prompts": calibration.prompts_digest(calibration_prompts + ["--"] + evaluation_prompts)}
        recordings, _ = cache.run("calibrate", recording_key, lambda folder: _calibrate(
            float_models, plan, source, calibration_prompts, evaluation_prompts, folder))

    finals: dict[str, Path] = {}
    details: dict[str, dict[str, Any]] = {}
    for component in COMPONENTS:
        component_precision = recipe[component]
        key = {**base_key, "component": component, "precision": component_precision}
        if component_precision == "fp32":
            finals[component], details[component] = floats[component], {"precision": "fp32", "parity": parity[component]}
        elif component_precision == "fp16":
            finals[component], details[component] = cache.run(f"fp16 {component}", key, lambda folder, c=component: _to_fp16(
                floats[c], exports[c], c, folder))
        else:
            # Plain W8A16 is shared by every recipe; w8a16-mixed adds a fallback stage only when it misses the target.
            key.update(precision="w8a16", calibration=recording_key, settings=None)
            finals[component], details[component] = cache.run(f"w8a16 {component}", key, lambda folder, c=component: _quantize(
                float_models[c], recordings, exports[c], c, "w8a16", options.quantize, folder))
            if component_precision == "w8a16-mixed":
                if details[component]["fidelity"]["sqnr_db"] >= options.quantize.min_sqnr_db:
                    details[component] = {**details[component], "precision": "w8a16-mixed"}
                else:
                    key.update(precision="w8a16-mixed", settings=asdict(options.quantize))
                    finals[component], details[component] = cache.run(
                        f"w8a16-mixed {component}", key, lambda folder, c=component: _quantize(
                            float_models[c], recordings, exports[c], c, "w8a16-mixed", options.quantize, folder))
            check_fidelity(component, details[component], options.quantize)

    end_to_end = None
    if precision != "fp32":
        finals_key = {**base_key, "finals": sorted(str(path) for path in finals.values()), "images": options.fidelity_images,
                      "prompts": calibration.prompts_digest(calibration.read_prompts(options.calibration_prompts))}
        fidelity_folder, end_to_end = cache.run("fidelity end-to-end", finals_key, lambda folder: _end_to_end(
            float_models, finals, plan, source, options, folder))
        fidelity.check(end_to_end, options.fidelity)
    npu, npu_folders = ({}, {})
    if target.name == "snapdragon":
        npu, npu_folders = _compile_for_npu(options, finals, base_key, cache, cache_dir)
        verification = _verification_samples(recordings, exports, len(plan.steps))
        if _should_verify(options, finals, recipe, verification, console):
            _verify_npu(options, npu, npu_folders, finals, float_models, verification, recording_key, cache)

    report = {"options": {**asdict(options), "precision": precision}, "source": source.description,
              "stages": [asdict(record) for record in cache.records], "components": details, "npu": npu,
              "end_to_end": end_to_end, "total_seconds": round(time.perf_counter() - started, 1)}
    with staged_directory(output) as staging:
        components = {}
        for component, folder in finals.items():
            inputs, outputs = component_io(source, component, options.height, options.width)
            for artifact in folder.iterdir():
                if artifact.name.startswith(f"{component}.onnx"):
                    shutil.copyfile(artifact, staging / artifact.name)
            components[component] = {"file": f"{component}.onnx", "precision": recipe[component],
                                     "inputs": [asdict(spec) for spec in inputs],
                                     "outputs": [asdict(spec) for spec in outputs], **details[component]}
        for component, entries in npu.items():
            components[component]["compiled"] = _copy_npu_artifacts(staging, entries, component, npu_folders)
        if end_to_end is not None and (fidelity_folder / FIDELITY_IMAGE).is_file():
            shutil.copyfile(fidelity_folder / FIDELITY_IMAGE, staging / FIDELITY_IMAGE)
        source.tokenizer.save(staging / "tokenizer")
        report["sizes_mb"] = {path.relative_to(staging).as_posix(): round(path.stat().st_size / 2**20, 2)
                              for path in sorted(staging.rglob("*")) if path.is_file()}
        write_text_atomic(staging / "build_report.json", json.dumps(report, indent=2, default=str) + "\n")
        write_manifest(staging, {
            "model": {"description": source.description, "fingerprint": source.fingerprint,
                      "height": options.height, "width": options.width},
            "target": _target_entry(target.name, options, npu),
            "components": components,
            "sampling": {"scheduler": "lcm", "num_steps": options.steps, **plan.to_json(), "noise": NOISE_SCHEME},
            "tokenizer": {"type": "clip-bpe", "vocab_file": "tokenizer/vocab.json", "merges_file": "tokenizer/merges.txt",
                          "max_length": source.tokenizer.max_length, "bos_id": source.tokenizer.bos_id,
                          "eos_id": source.tokenizer.eos_id, "pad_id": source.tokenizer.pad_id},
            **({"fidelity": end_to_end} if end_to_end else {}),
            "provenance": {"source_fingerprint": source.fingerprint, "tool_versions": tool_versions(),
                           "command_line": command_line, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        })
    console.print(f"[green]bundle written[/green] {output}  ({report['total_seconds']} s, "
                  f"{sum(report['sizes_mb'].values()):.1f} MB)")
    return report


def _compile_for_npu(options: BuildOptions, finals: dict[str, Path], base_key: dict[str, Any], cache: StageCache,
                     cache_dir: Path) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[tuple[str, str], Path]]:
    """Hexagon compilation of every final component for every chipset (offline, and in AI Hub with --aihub).

    Returns, per component and chipset, what each compile reported, and the stage folders holding the files.
    """
    npu: dict[str, dict[str, dict[str, Any]]] = {component: {} for component in COMPONENTS}
    folders: dict[tuple[str, str], Path] = {}
    ledger = aihub.JobLedger(cache_dir / "aihub-jobs.json")
    hub = client = None
    for chip in [chipsets.chipset(name) for name in options.chipsets or (None,)]:
        for component in COMPONENTS:
            model = finals[component] / f"{component}.onnx"
            key = {**base_key, "component": component, "final": str(finals[component]), "chipset": asdict(chip),
                   "allow_cpu_fallback": options.allow_cpu_fallback}
            folders[component, chip.name], info = cache.run(
                f"qnn {component} {chip.name}", key, lambda out, m=model, ch=chip: snapdragon.compile_for_chipset(
                    m, ch, out, options.allow_cpu_fallback).as_dict())
            npu[component][chip.name] = {"offline": info}
            if options.aihub:
                hub = hub or aihub.load_hub()
                client = client or aihub.make_client(hub)
                folders[component, f"{chip.name}/aihub"], npu[component][chip.name]["aihub"] = cache.run(
                    f"aihub {component} {chip.name}", {**key, "aihub": aihub.COMPILE_OPTIONS},
                    lambda out, m=model, c=component, ch=chip: aihub.compile_on_aihub(hub, client, m, c, ch, ledger, out))
    return npu, folders


def _verification_samples(recordings: Path | None, exports: dict[str, Path], steps: int) -> dict[str, list[dict]]:
    """One held-out image's calls per component (the calibration recorder's), else the export's example inputs."""
    if recordings is not None:
        held_out = calibration.Recording.load(recordings, "evaluation").samples
        return {component: held_out[component][:COMPONENTS[component].calls_per_image(steps)] for component in COMPONENTS}
    samples = {}
    for component in COMPONENTS:
        with np.load(exports[component] / onnx_export.PARITY_FILE) as data:
            samples[component] = [{name: data[name] for name in data.files if name != "reference"}]
    return samples


def _should_verify(options: BuildOptions, finals: dict[str, Path], recipe: dict[str, str],
                   samples: dict[str, list[dict]], console: Console) -> bool:
    """--verify-npu as asked, or by default when one chipset's emulation should take AUTO_VERIFY_SECONDS at most."""
    if options.verify_npu is not None:
        return options.verify_npu
    seconds = sum(snapdragon.emulation_seconds(sum(cost.macs for cost in layer_costs(finals[c] / f"{c}.onnx", recipe[c], 0)),
                                               recipe[c], len(samples[c])) for c in COMPONENTS)
    if seconds > snapdragon.AUTO_VERIFY_SECONDS:
        console.print(f"  NPU verification skipped: about {seconds / 60:.0f} min of HTP emulation per chipset; "
                      "pass --verify-npu to run it")
    return seconds <= snapdragon.AUTO_VERIFY_SECONDS


def _verify_npu(options: BuildOptions, npu: dict[str, dict[str, dict[str, Any]]], folders: dict[tuple[str, str], Path],
                finals: dict[str, Path], float_models: dict[str, Path], samples: dict[str, list[dict]],
                recording_key: dict[str, Any], cache: StageCache) -> None:
    """Run every compiled component in HTP emulation against the CPU; record the SQNR and gate it."""
    for chip in [chipsets.chipset(name) for name in options.chipsets or (None,)]:
        for component in COMPONENTS:
            compiled = folders[component, chip.name] / npu[component][chip.name]["offline"]["file"]
            key = {"compiled": str(folders[component, chip.name]), "samples": recording_key or "parity",
                   "format": CACHE_FORMAT}
            _, result = cache.run(f"verify-npu {component} {chip.name}", key, lambda _, m=compiled, c=component, ch=chip:
                                  snapdragon.verify_in_emulation(m, finals[c] / f"{c}.onnx", float_models[c],
                                                                 samples[c], ch.htp_target).as_dict())
            npu[component][chip.name]["emulated"] = result
            if not result["sqnr_vs_cpu_db"] >= options.min_npu_sqnr:
                raise UserError(f"the compiled {component} for {chip.marketing_name} computes other numbers than the CPU "
                                f"in HTP emulation ({result['sqnr_vs_cpu_db']:.1f} dB < --min-npu-sqnr "
                                f"{options.min_npu_sqnr:g}); do not ship it, and report it with the build report")


def _copy_npu_artifacts(staging: Path, entries: dict[str, dict[str, Any]], component: str,
                        folders: dict[tuple[str, str], Path]) -> dict[str, dict[str, Any]]:
    """Copy one component's compiled files to qnn/<chipset>/ in the bundle; returns the manifest entries."""
    manifest_entries = {}
    for chip_name, compiled in entries.items():
        destination = staging / "qnn" / chip_name
        destination.mkdir(parents=True, exist_ok=True)
        offline = dict(compiled["offline"])
        for name in [offline["file"], *offline["context_binaries"]]:
            shutil.copyfile(folders[component, chip_name] / name, destination / name)
        offline["file"] = f"qnn/{chip_name}/{offline['file']}"
        offline["context_binaries"] = [f"qnn/{chip_name}/{name}" for name in offline["context_binaries"]]
        entry = {"offline": offline, **({"emulated": compiled["emulated"]} if "emulated" in compiled else {})}
        if "aihub" in compiled:
            shutil.copyfile(folders[component, f"{chip_name}/aihub"] / compiled["aihub"]["file"],
                            destination / compiled["aihub"]["file"])
            entry["aihub"] = {**compiled["aihub"], "file": f"qnn/{chip_name}/{compiled['aihub']['file']}"}
        manifest_entries[chip_name] = entry
    return manifest_entries


def _target_entry(name: str, options: BuildOptions, npu: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What the target is and how a runtime picks the file to load."""
    if name != "snapdragon":
        return {"name": name}
    chips = [chipsets.chipset(chip) for chip in options.chipsets or (None,)]
    versions = {entry["offline"]["qnn_sdk_version"] for entries in npu.values() for entry in entries.values()}
    sdk = min(versions) if versions else ""
    return {"name": name,
            "chipsets": [{key: getattr(chip, key) for key in ("name", "marketing_name", "soc", "hexagon_arch",
                                                               "qnn_soc_model", "aihub_device")} for chip in chips],
            "qnn_sdk_version": sdk,
            "min_runtime": {"onnxruntime-qnn": tool_versions()["onnxruntime-qnn"],
                            "qnn_sdk": ".".join(sdk.lstrip("v").split(".")[:2])},
            "loading": "On a phone whose SoC matches target.chipsets[].soc, load components.<name>.compiled.<chipset>."
                       "offline.file with the QNN execution provider (HTP backend, QNN SDK >= min_runtime.qnn_sdk); "
                       "anywhere else load components.<name>.file with the CPU execution provider."}


def _export(source: ModelSource, component: str, options: BuildOptions, folder: Path,
            channels_last_group_norm: bool) -> dict[str, Any]:
    path = onnx_export.export_component(source, component, options.height, options.width, folder,
                                        channels_last_group_norm)
    return {"parity": onnx_export.check_parity(path, folder / onnx_export.PARITY_FILE, "fp32", component).as_dict()}


def _simplify(exported: Path, component: str, folder: Path) -> dict[str, Any]:
    path, info = onnx_export.simplify(exported / f"{component}.onnx", folder)
    parity = onnx_export.check_parity(path, exported / onnx_export.PARITY_FILE, "fp32", component)
    return {**info, "parity": parity.as_dict()}


def _to_fp16(simplified: Path, exported: Path, component: str, folder: Path) -> dict[str, Any]:
    path = onnx_export.to_fp16(simplified / f"{component}.onnx", folder)
    return {"precision": "fp16", "parity": onnx_export.check_parity(path, exported / onnx_export.PARITY_FILE, "fp16", component).as_dict()}


def _calibrate(float_models: dict[str, Path], plan: SamplingPlan, source: ModelSource, calibration_prompts: list[str],
               evaluation_prompts: list[str], folder: Path) -> dict[str, Any]:
    pipeline = calibration.RecordingPipeline(float_models, plan, source.tokenizer)
    calibration.record(pipeline, calibration_prompts, CALIBRATION_SEED).save(folder, "calibration")
    calibration.record(pipeline, evaluation_prompts, CALIBRATION_SEED + 1000).save(folder, "evaluation")
    return {"calibration_prompts": calibration_prompts, "evaluation_prompts": evaluation_prompts,
            "unet_timesteps": [step.timestep for step in plan.steps]}


def _quantize(float_model: Path, recordings: Path, exported: Path, component: str, precision: str,
              settings: QuantizeSettings, folder: Path) -> dict[str, Any]:
    calibration_set = calibration.Recording.load(recordings, "calibration").samples[component]
    evaluation_set = calibration.Recording.load(recordings, "evaluation").samples[component]
    info = quantize_component(float_model, calibration_set, evaluation_set, folder, precision, settings)
    parity = onnx_export.check_parity(folder / float_model.name, exported / onnx_export.PARITY_FILE, "w8a16", component)
    return {"parity": parity.as_dict(), **info}


def _end_to_end(float_models: dict[str, Path], finals: dict[str, Path], plan: SamplingPlan, source: ModelSource,
                options: BuildOptions, folder: Path) -> dict[str, Any]:
    reference = Text2ImagePipeline(float_models, plan, source.tokenizer)
    reduced = Text2ImagePipeline({c: path / f"{c}.onnx" for c, path in finals.items()}, plan, source.tokenizer)
    _, evaluation_prompts = calibration.split_prompts(calibration.read_prompts(options.calibration_prompts),
                                                      options.calibration_size, max(options.evaluation_size, 2))
    result = fidelity.compare(reference, reduced, evaluation_prompts, CALIBRATION_SEED + 2000, options.fidelity_images,
                              folder / FIDELITY_IMAGE)
    return result.as_dict()
