"""The Snapdragon target: per chipset, each final component compiled for the Hexagon NPU (offline with
onnxruntime-qnn, and in Qualcomm AI Hub with --aihub), then run in HTP emulation against the CPU (--verify-npu)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..graphs import layer_costs
from ..stages import Pass, StageCache
from . import aihub, snapdragon
from .base import FinalModels, TargetBuild, TargetOptions
from .chipsets import Chipset, chipset

LOADING = ("On a phone whose SoC matches target.chipsets[].soc, load components.<name>.compiled.<chipset>.offline.file "
           "with the QNN execution provider (HTP backend, QNN SDK >= min_runtime.qnn_sdk); anywhere else load "
           "components.<name>.file with the CPU execution provider.")
CHIPSET_FIELDS = ("name", "marketing_name", "soc", "hexagon_arch", "qnn_soc_model", "aihub_device")


class SnapdragonTarget:
    name = "snapdragon"
    description = "Qualcomm Snapdragon phones: Hexagon NPU context binaries per chipset, plus the portable ONNX"
    default_precision = "edgefusion"

    def check(self, options: TargetOptions) -> None:
        for name in options.chipsets:
            chipset(name)

    def start(self, component: str, model: Path, options: TargetOptions, cache: StageCache) -> None:
        """QNN's graph preparation is single-threaded and the largest part of a build: begin it as soon as a
        component is final, on the core the chain leaves idle."""
        for chip in chipsets(options):
            cache.start(qnn_pass(model, component, chip, options))

    def compile(self, final: FinalModels, options: TargetOptions, cache: StageCache) -> TargetBuild:
        chips = chipsets(options)
        verify = should_verify(options, final, cache)
        hub = Hub(final) if options.aihub else None
        build = TargetBuild(compiled={component: {} for component in final.models},
                            report={component: {} for component in final.models})
        for chip in chips:
            for component in final.models:
                folder, offline = cache.run(qnn_pass(final.models[component], component, chip, options))
                prefix = f"qnn/{chip.name}"
                build.files.update({f"{prefix}/{name}": folder / name for name in [offline.file, *offline.context_binaries]})
                report = {"offline": offline.as_dict()}
                offline_entry = {key: value for key, value in offline.as_dict().items() if key != "seconds"}  # timings: report
                entry = {"offline": {**offline_entry, "file": f"{prefix}/{offline.file}",
                                     "context_binaries": [f"{prefix}/{name}" for name in offline.context_binaries]}}
                if verify:
                    _, verification = cache.run(verify_pass(final, component, chip, folder / offline.file))
                    check_verification(component, chip, verification.sqnr_vs_cpu_db, options.min_npu_sqnr)
                    report["emulated"] = entry["emulated"] = verification.as_dict()
                if hub is not None:
                    hub_folder, job = cache.run(hub.compile_pass(final, component, chip))
                    build.files[f"{prefix}/{job.file}"] = hub_folder / job.file
                    report["aihub"] = job.as_dict()
                    entry["aihub"] = {**job.as_dict(), "file": f"{prefix}/{job.file}"}
                build.compiled[component][chip.name], build.report[component][chip.name] = entry, report
        build.manifest = manifest_entry(self.name, chips, build.report)
        return build


def chipsets(options: TargetOptions) -> list[Chipset]:
    return [chipset(name) for name in options.chipsets or (None,)]


def qnn_pass(model: Path, component: str, chip: Chipset, options: TargetOptions) -> Pass[snapdragon.NpuCompilation]:
    inputs = {"model": model, "chip": chip, "allow_cpu_fallback": options.allow_cpu_fallback,
              "mode": snapdragon.finalization_mode(model, options.qnn_optimization)}
    return Pass(f"qnn {component} {chip.name}", inputs, lambda folder, model, chip, allow_cpu_fallback, mode:
                snapdragon.compile_for_chipset(model, chip, folder, allow_cpu_fallback, mode), snapdragon.NpuCompilation)


def verify_pass(final: FinalModels, component: str, chip: Chipset, compiled: Path) -> Pass[snapdragon.NpuVerification]:
    inputs = {"compiled": compiled, "portable": final.models[component], "float_model": final.float_models[component],
              "samples": final.held_out[component], "target": chip.htp_target}
    return Pass(f"verify-npu {component} {chip.name}", inputs, lambda _, **checked: snapdragon.verify_in_emulation(**checked),
                snapdragon.NpuVerification)


class Hub:
    """The AI Hub client and job ledger, created on first use."""

    def __init__(self, final: FinalModels) -> None:
        self.ledger = aihub.JobLedger(final.cache_dir / "aihub-jobs.json")
        self.hub = self.client = None

    def compile_pass(self, final: FinalModels, component: str, chip: Chipset) -> Pass[aihub.AihubCompilation]:
        return Pass(f"aihub {component} {chip.name}", {"model": final.models[component], "chip": chip,
                                                      "options": aihub.COMPILE_OPTIONS}, self.compile, aihub.AihubCompilation)

    def compile(self, folder: Path, model: Path, chip: Chipset, options: str) -> aihub.AihubCompilation:
        """A compile job in AI Hub (the client, a service, is not an input: the job's result depends on the model,
        the device and the options)."""
        self.hub = self.hub or aihub.load_hub()
        self.client = self.client or aihub.make_client(self.hub)
        return aihub.compile_on_aihub(self.hub, self.client, model, model.stem, chip, self.ledger, folder, options)


def should_verify(options: TargetOptions, final: FinalModels, cache: StageCache) -> bool:
    """--verify-npu as asked, or by default when one chipset's emulation should take AUTO_VERIFY_SECONDS at most."""
    if options.verify_npu is not None:
        return options.verify_npu
    seconds = sum(snapdragon.emulation_seconds(sum(cost.macs for cost in layer_costs(model, final.precisions[c], 0)),
                                               final.precisions[c], len(final.held_out[c]))
                  for c, model in final.models.items())
    if seconds > snapdragon.AUTO_VERIFY_SECONDS:
        cache.console.print(f"  NPU verification skipped: about {seconds / 60:.0f} min of HTP emulation per chipset; "
                            "pass --verify-npu to run it")
    return seconds <= snapdragon.AUTO_VERIFY_SECONDS


def check_verification(component: str, chip: Chipset, sqnr_db: float, minimum: float) -> None:
    if not sqnr_db >= minimum:
        raise UserError(f"the compiled {component} for {chip.marketing_name} computes other numbers than the CPU "
                        f"in HTP emulation ({sqnr_db:.1f} dB < --min-npu-sqnr {minimum:g}); do not ship it, and "
                        "report it with the build report")


def manifest_entry(name: str, chips: list[Chipset], report: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What the target is and how a runtime picks the file to load."""
    versions = {entry["offline"]["qnn_sdk_version"] for entries in report.values() for entry in entries.values()}
    sdk = min(versions) if versions else ""
    return {"name": name,
            "chipsets": [{key: getattr(chip, key) for key in CHIPSET_FIELDS} for chip in chips],
            "qnn_sdk_version": sdk,
            "min_runtime": {"onnxruntime-qnn": metadata.version("onnxruntime-qnn"),
                            "qnn_sdk": ".".join(sdk.lstrip("v").split(".")[:2])},
            "loading": LOADING}
