"""The Snapdragon target: per chipset, each final component compiled for the Hexagon NPU (offline with
onnxruntime-qnn, and in Qualcomm AI Hub with --aihub), then run in HTP emulation against the CPU (--verify-npu)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..stages import Pass, StageCache, duration
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
        verification = plan_verification(options, final, cache)
        hub = Hub(final) if options.aihub else None
        build = TargetBuild(compiled={component: {} for component in final.models},
                            report={component: {} for component in final.models})
        for chip in chips:
            for component in final.models:
                folder, offline = cache.run(qnn_pass(final.models[component], component, chip, options))
                prefix = "/".join(filter(None, ("qnn", chip.name, final.folders[component])))
                build.files.update({f"{prefix}/{name}": folder / name for name in [offline.file, *offline.context_binaries]})
                report = {"offline": offline.as_dict()}
                offline_entry = {key: value for key, value in offline.as_dict().items() if key != "seconds"}  # timings: report
                entry = {"offline": {**offline_entry, "file": f"{prefix}/{offline.file}",
                                     "context_binaries": [f"{prefix}/{name}" for name in offline.context_binaries]}}
                if component in verification.components:
                    expected = verification.seconds[component] / len(final.held_out[component])
                    checks = [cache.run(verify_pass(final, component, chip, folder / offline.file, index, expected))[1]
                              for index in range(len(final.held_out[component]))]
                    for check in checks:
                        check_verification(component, chip, check, options.min_npu_sqnr)
                    entry["emulated"] = emulated_entry(final, component, checks)
                    report["emulated"] = {"seconds": round(sum(check.seconds for check in checks), 1),
                                          "predicted_seconds": round(verification.seconds[component], 1)}
                else:
                    entry["emulated"] = {"skipped": verification.skipped[component]}
                if hub is not None:
                    hub_folder, job = cache.run(hub.compile_pass(final, component, chip))
                    build.files[f"{prefix}/{job.file}"] = hub_folder / job.file
                    report["aihub"] = job.as_dict()
                    entry["aihub"] = {**job.as_dict(), "file": f"{prefix}/{job.file}"}
                build.compiled[component][chip.name], build.report[component][chip.name] = entry, report
        build.manifest = manifest_entry(self.name, chips, build.report)
        return build

    def share(self, graphs: dict[str, dict[str, Path]], options: TargetOptions, cache: StageCache) -> TargetBuild:
        """One context binary per component and chipset holding every size's graph. The x86_64 HTP emulator cannot
        load a context of several graphs (it crashes in libQnnHtp.so), so the emulated check ran on each graph's
        single-graph binary, compiled from the same model with the same options (`compile`)."""
        build = TargetBuild()
        for chip in chipsets(options):
            prefix = f"qnn/{chip.name}"
            for component, models in graphs.items():
                folder, shared = cache.run(qnn_shared_pass(models, component, chip, options))
                for graph, compilation in shared.compilations().items():
                    build.files.update({f"{prefix}/{name}": folder / name
                                        for name in [compilation.file, *compilation.context_binaries]})
                    offline = {key: value for key, value in compilation.as_dict().items() if key != "seconds"}
                    build.compiled.setdefault(graph, {})[chip.name] = {"offline": {
                        **offline, "file": f"{prefix}/{compilation.file}",
                        "context_binaries": [f"{prefix}/{name}" for name in compilation.context_binaries]}}
                    build.report.setdefault(graph, {})[chip.name] = {"shared_offline": compilation.as_dict()}
        return build


def chipsets(options: TargetOptions) -> list[Chipset]:
    return [chipset(name) for name in options.chipsets or (None,)]


def qnn_pass(model: Path, component: str, chip: Chipset, options: TargetOptions) -> Pass[snapdragon.NpuCompilation]:
    inputs = {"model": model, "chip": chip, "allow_cpu_fallback": options.allow_cpu_fallback,
              "mode": snapdragon.finalization_mode(model, options.qnn_optimization)}
    return Pass(f"qnn {component} {chip.name}", inputs, lambda folder, model, chip, allow_cpu_fallback, mode:
                snapdragon.compile_for_chipset(model, chip, folder, allow_cpu_fallback, mode), snapdragon.NpuCompilation)


def qnn_shared_pass(models: dict[str, Path], component: str, chip: Chipset,
                    options: TargetOptions) -> Pass[snapdragon.SharedNpuCompilation]:
    modes = {snapdragon.finalization_mode(model, options.qnn_optimization) for model in models.values()}
    inputs = {"models": models, "chip": chip, "allow_cpu_fallback": options.allow_cpu_fallback,
              "mode": min(modes)}  # the largest size's mode when it needs a lighter one (1 for a large float decoder)
    return Pass(f"qnn-shared {component} {chip.name}", inputs, snapdragon.compile_shared, snapdragon.SharedNpuCompilation)


def verify_pass(final: FinalModels, component: str, chip: Chipset, compiled: Path, index: int,
                expected_s: float) -> Pass[snapdragon.NpuVerification]:
    """One held-out call of one component on one chipset: its own cached result, so a stopped check resumes."""
    sample = final.held_out[component][index]
    label = snapdragon.sample_label(sample, index)
    inputs = {"compiled": compiled, "portable": final.models[component], "float_model": final.float_models[component],
              "sample": sample, "label": label, "target": chip.htp_target}
    return Pass(f"verify-npu {component} {chip.name} {label}", inputs,
                lambda _, **checked: snapdragon.verify_in_emulation(**checked), snapdragon.NpuVerification,
                expected_s=expected_s)


def predicted_seconds(final: FinalModels, component: str) -> float:
    """Expected HTP emulation time of one chipset's check of `component`: its held-out calls, each loading the model."""
    return len(final.held_out[component]) * snapdragon.emulation_seconds(final.models[component], final.precisions[component], 1)


def emulated_entry(final: FinalModels, component: str, checks: list[snapdragon.NpuVerification]) -> dict[str, Any]:
    """The manifest's record of a check: the worst call, every call, and the image size it ran at."""
    return {"sqnr_vs_cpu_db": min(check.sqnr_vs_cpu_db for check in checks),
            "sqnr_vs_float_db": min(check.sqnr_vs_float_db for check in checks), "samples": len(checks),
            "calls": [{"sample": check.sample, "sqnr_vs_cpu_db": check.sqnr_vs_cpu_db,
                       "sqnr_vs_float_db": check.sqnr_vs_float_db} for check in checks],
            **({"size": final.sizes[component]} if final.sizes[component] else {})}


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


@dataclass(frozen=True)
class VerificationPlan:
    """The components a build checks in HTP emulation, and why it leaves out each of the others."""

    components: frozenset[str]
    skipped: dict[str, str]  # component -> why it is not checked
    seconds: dict[str, float]  # each component's predicted check per chipset


def plan_verification(options: TargetOptions, final: FinalModels, cache: StageCache) -> VerificationPlan:
    """--verify-npu: `all`, the `quantized` components (where every size-dependent QNN defect so far appeared),
    `off`, or `auto`: the quantized ones and every other whose check per chipset is predicted under
    AUTO_VERIFY_SECONDS."""
    seconds = {component: predicted_seconds(final, component) for component in final.models}
    quantized = {c for c, model in final.models.items() if snapdragon.is_quantized(model)}
    quick = {c for c in final.models if seconds[c] <= snapdragon.AUTO_VERIFY_SECONDS}
    mode = options.verify_npu
    chosen = {"all": set(final.models), "off": set(), "quantized": quantized, "auto": quantized | quick}[mode]

    def reason(component: str) -> str:
        if mode == "off":
            return "--verify-npu off"
        if mode == "quantized":
            return "not quantized: --verify-npu quantized checks the quantized components, --verify-npu all adds it"
        return (f"not quantized, and its check takes about {duration(seconds[component])} per chipset: --verify-npu "
                f"auto checks those predicted under {duration(snapdragon.AUTO_VERIFY_SECONDS)}, --verify-npu all adds it")

    others = [c for c in final.models if c not in chosen]
    if chosen:
        cache.console.print(f"  NPU verification of {', '.join(c for c in final.models if c in chosen)}: about "
                            f"{duration(sum(seconds[c] for c in chosen))} of HTP emulation per chipset")
    if others:
        cache.console.print(f"  not verified in emulation: {', '.join(others)} (--verify-npu {mode}; about "
                            f"{duration(sum(seconds[c] for c in others))} more per chipset, --verify-npu all adds it)")
    return VerificationPlan(frozenset(chosen), {c: reason(c) for c in others}, seconds)


def check_verification(component: str, chip: Chipset, check: snapdragon.NpuVerification, minimum: float) -> None:
    if not check.sqnr_vs_cpu_db >= minimum:
        raise UserError(f"the compiled {component} for {chip.marketing_name} computes other numbers than the CPU "
                        f"in HTP emulation at {check.sample} ({check.sqnr_vs_cpu_db:.1f} dB < --min-npu-sqnr "
                        f"{minimum:g}); do not ship it, and report it with the build report")


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
