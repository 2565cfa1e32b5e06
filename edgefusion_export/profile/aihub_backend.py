"""`aihub`: per-layer profiles measured on a real phone through Qualcomm AI Hub profile jobs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

from ..bundle.manifest import Bundle
from ..components import COMPONENTS
from ..errors import UserError
from ..files import sha256_file
from ..targets.aihub import JobLedger, network, run_job, upload_copy
from .blocks import block_of
from .model import ComponentSummary, Profile, Row

PROFILE_OPTIONS = "--max_profiler_iterations 10"


def _number(mapping: dict, key: str) -> float | None:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def _range_high(mapping: dict, key: str) -> float | None:
    """The upper end of a `[low, high]` byte range (qai-hub 0.56's `*_memory_peak_range` fields)."""
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return float(value[1]) if isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[1], (int, float)) else None


def inference_ms(payload: dict[str, Any]) -> float | None:
    """The profile's inference time (the minimum over runs), in milliseconds."""
    time_us = _number(payload.get("execution_summary") or {}, "estimated_inference_time")
    return None if time_us is None else time_us / 1000


def layer_rows(component: str, payload: dict[str, Any]) -> list[Row]:
    """One row per layer of the profile; a repeated name gets `#2`, `#3`... and an empty one `layer_<index>`."""
    rows, seen = [], Counter()
    for index, layer in enumerate(payload.get("execution_detail") or []):
        if not isinstance(layer, dict):
            continue
        name = layer.get("name") or f"layer_{index}"
        seen[name] += 1
        name = name if seen[name] == 1 else f"{name}#{seen[name]}"  # rows stay tellable apart
        time_us = _number(layer, "execution_time")
        rows.append(Row(component, name, layer.get("type") or "?", block_of(component, name),
                        (layer.get("compute_unit") or "unknown").upper(), round((time_us or 0.0) / 1000, 5)))
    return rows


def parse_profile(component: str, payload: dict[str, Any], num_steps: int) -> tuple[list[Row], ComponentSummary]:
    """Rows and totals from AI Hub's profile format (qai-hub 0.56: times in microseconds, the inference time the
    minimum over runs, memory as [low, high] byte ranges, layer names that may repeat or be empty); every field
    may be missing or null."""
    summary = payload.get("execution_summary") or {}
    rows = layer_rows(component, payload)
    total_ms = inference_ms(payload)
    if total_ms is None:
        total_ms = sum(row.time_ms for row in rows)
    elif not rows:
        rows.append(Row(component, "(whole model)", "model", "other", "NPU", round(total_ms, 5)))
    load_us = _number(summary, "warm_load_time") or _number(summary, "first_load_time")
    peak = _range_high(summary, "inference_memory_peak_range") or _number(summary, "estimated_inference_peak_memory")
    return rows, ComponentSummary(round(total_ms, 4), COMPONENTS[component].calls_per_image(num_steps),
                                  None if load_us is None else round(load_us / 1000, 2),
                                  None if peak is None else round(peak / 2**20, 2))


def profile_on_device(hub: ModuleType, client: Any, ledger: JobLedger, model: Path, label: str, device: str,
                      options: str, timeout_s: int) -> tuple[Any, dict[str, Any]]:
    """Profile `model` on an AI Hub `device` (resuming the ledger's job for it) and return the job and its profile."""
    purpose = f"profile/{label}/{device}/{sha256_file(model)[:16]}"
    job = run_job(client, ledger, purpose, lambda: client.submit_profile_job(
        model=str(model), device=hub.Device(device), name=f"edgefusion profile {label}", options=options), timeout_s)
    with network(f"download of the profile of job {job.job_id}"):
        payload = job.download_profile()
    if not isinstance(payload, dict) or not payload:  # the client returns {} for a job that failed on the device
        raise UserError(f"AI Hub job {job.job_id} returned no profile, so it failed on the device ({job.url}); "
                        "see the job's page, and re-run to retry")
    return job, payload


def _profiled_model(bundle: Bundle, graph: str, chipset_name: str, scratch: Path) -> tuple[Path, str]:
    """The AI Hub-compiled context binary when the bundle has one, else the portable ONNX."""
    compiled = bundle.manifest["components"][graph].get("compiled", {}).get(chipset_name, {})
    if "aihub" in compiled:
        return bundle.path(compiled["aihub"]["file"]), PROFILE_OPTIONS
    return upload_copy(bundle.component_path(graph), scratch), f"{PROFILE_OPTIONS} --compute_unit npu"


def profile_bundle(hub: ModuleType, client: Any, bundle: Bundle, device: str, chipset_name: str, ledger: JobLedger,
                   scratch: Path, timeout_s: int, size: str | None = None) -> Profile:
    steps = bundle.manifest["sampling"]["num_steps"]
    profile = Profile("aihub", device, str(bundle.folder), steps, [], size=bundle.size(size))
    for component, graph in bundle.graphs(size).items():
        model, options = _profiled_model(bundle, graph, chipset_name, scratch)
        job, payload = profile_on_device(hub, client, ledger, model, component, device, options, timeout_s)
        rows, summary = parse_profile(component, payload, steps)
        summary.job_id = job.job_id
        profile.rows += rows
        profile.components[component] = summary
    return profile
