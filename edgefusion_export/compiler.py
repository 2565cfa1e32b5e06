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

from rich.console import Console

from . import __version__
from .bundle.manifest import write_manifest
from .errors import UserError
from .export import onnx_export
from .export.wrappers import COMPONENTS, component_io
from .files import staged_directory, write_text_atomic
from .memory import PeakMemory, resident_bytes
from .runtime.scheduler import lcm_sampling_plan
from .sources.loader import ModelSource
from .targets import TARGETS

PRECISIONS = ("fp32", "fp16")
TOOLS = ("torch", "diffusers", "transformers", "onnx", "onnxruntime", "onnxsim")
NOISE_SCHEME = "splitmix64-box-muller-v1"
CACHE_FORMAT = 5  # bump when a pass changes its output, so cached artifacts are rebuilt


@dataclass(frozen=True)
class BuildOptions:
    target: str = "cpu"
    precision: str | None = None  # None: the target's default
    steps: int = 2
    guidance_scale: float = 8.5
    height: int = 512
    width: int = 512
    force: bool = False

    @property
    def resolved_precision(self) -> str:
        return self.precision or TARGETS[self.target].default_precision

    def validate(self) -> None:
        if self.target not in TARGETS:
            raise UserError(f"unknown target {self.target!r}; choose one of: {', '.join(TARGETS)}")
        if self.resolved_precision not in PRECISIONS:
            raise UserError(f"unknown precision {self.resolved_precision!r}; choose one of: {', '.join(PRECISIONS)}")
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
        self.console.print(f"  [bold]{stage:<24}[/bold] {status:>9} {peak_mb / 1024:5.1f} GB  {_summary(info)}")


def _summary(info: dict[str, Any]) -> str:
    parity = info.get("parity")
    text = f"parity {parity['sqnr_db']:.1f} dB" if parity else ""
    if "nodes_before" in info:
        text = f"nodes {info['nodes_before']} -> {info['nodes_after']}  {text}"
    return text


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
    for note in target.notes:
        console.print(f"  [yellow]note:[/yellow] {note}")

    finals: dict[str, Path] = {}
    parity: dict[str, dict[str, float]] = {}
    base_key = {"format": CACHE_FORMAT, "source": source.fingerprint, "height": options.height, "width": options.width,
                "opset": onnx_export.OPSET, "tools": tool_versions()}
    for component in COMPONENTS:
        key = {**base_key, "component": component}
        exported, _ = cache.run(f"export {component}", key, lambda folder, c=component: _export(source, c, options, folder))
        final, info = cache.run(f"simplify {component}", {**key, "pass": "onnxsim"},
                                lambda folder, c=component, e=exported: _simplify(e, c, folder))
        if precision != "fp32":
            final, info = cache.run(f"{precision} {component}", {**key, "precision": precision},
                                    lambda folder, c=component, s=final, e=exported: _to_fp16(s, e, c, folder))
        finals[component] = final
        parity[component] = info["parity"]

    plan = lcm_sampling_plan(source.scheduler_config, options.steps, options.guidance_scale,
                             source.guidance_embedding_dim, component_io(source, "unet", options.height, options.width)[0][0].shape,
                             float(source.vae_config.get("scaling_factor", 0.18215)))
    report = {"options": {**asdict(options), "precision": precision}, "source": source.description,
              "stages": [asdict(record) for record in cache.records], "parity": parity,
              "total_seconds": round(time.perf_counter() - started, 1)}
    with staged_directory(output) as staging:
        components = {}
        for component, folder in finals.items():
            inputs, outputs = component_io(source, component, options.height, options.width)
            for artifact in folder.iterdir():
                if artifact.name.startswith(f"{component}.onnx"):
                    shutil.copyfile(artifact, staging / artifact.name)
            components[component] = {"file": f"{component}.onnx", "precision": precision,
                                     "inputs": [asdict(spec) for spec in inputs],
                                     "outputs": [asdict(spec) for spec in outputs], "parity": parity[component]}
        vocab_file, merges_file = source.tokenizer.save(staging / "tokenizer")
        report["sizes_mb"] = {path.name: round(path.stat().st_size / 2**20, 2) for path in sorted(staging.iterdir()) if path.is_file()}
        write_text_atomic(staging / "build_report.json", json.dumps(report, indent=2) + "\n")
        write_manifest(staging, {
            "model": {"description": source.description, "fingerprint": source.fingerprint,
                      "height": options.height, "width": options.width},
            "target": {"name": target.name, "notes": target.notes},
            "components": components,
            "sampling": {"scheduler": "lcm", "num_steps": options.steps, **plan.to_json(), "noise": NOISE_SCHEME},
            "tokenizer": {"type": "clip-bpe", "vocab_file": "tokenizer/vocab.json", "merges_file": "tokenizer/merges.txt",
                          "max_length": source.tokenizer.max_length, "bos_id": source.tokenizer.bos_id,
                          "eos_id": source.tokenizer.eos_id, "pad_id": source.tokenizer.pad_id},
            "provenance": {"source_fingerprint": source.fingerprint, "tool_versions": tool_versions(),
                           "command_line": command_line, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        })
    console.print(f"[green]bundle written[/green] {output}  ({report['total_seconds']} s, "
                  f"{sum(report['sizes_mb'].values()):.1f} MB)")
    return report


def _export(source: ModelSource, component: str, options: BuildOptions, folder: Path) -> dict[str, Any]:
    path = onnx_export.export_component(source, component, options.height, options.width, folder)
    return {"parity": onnx_export.check_parity(path, folder / onnx_export.PARITY_FILE, "fp32", component).as_dict()}


def _simplify(exported: Path, component: str, folder: Path) -> dict[str, Any]:
    path, info = onnx_export.simplify(exported / f"{component}.onnx", folder)
    parity = onnx_export.check_parity(path, exported / onnx_export.PARITY_FILE, "fp32", component)
    return {**info, "parity": parity.as_dict()}


def _to_fp16(simplified: Path, exported: Path, component: str, folder: Path) -> dict[str, Any]:
    path = onnx_export.to_fp16(simplified / f"{component}.onnx", folder)
    return {"parity": onnx_export.check_parity(path, exported / onnx_export.PARITY_FILE, "fp16", component).as_dict()}
