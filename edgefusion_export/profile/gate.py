"""The regression gate CI uses: a profile against a baseline, per component and per block; an estimate of any
graph against a previous `estimate --json`, in total and per op type."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError, first_line
from .model import Profile


@dataclass
class Regression:
    what: str
    baseline: float | str
    current: float | str
    change: str


def slower(what: str, before: float, now: float, max_regression: float) -> Regression | None:
    """A regression if `now` is slower than `before` by more than `max_regression`."""
    if before > 0 and now > before * (1 + max_regression):
        return Regression(what, round(before, 5), round(now, 5), f"+{now / before - 1:.1%}")
    return None


def compare(current: Profile, baseline: Profile, max_regression: float) -> list[Regression]:
    """Components and blocks slower than the baseline by more than `max_regression`, and layers that left the NPU."""
    if current.size and baseline.size and current.size != baseline.size:
        raise UserError(f"the baseline profiles {baseline.size} graphs and this profile {current.size}; compare "
                        f"profiles of one size (profile --size {baseline.size})")
    problems = []
    for name, summary in current.components.items():
        if name in baseline.components:
            problems.append(slower(name, baseline.components[name].total_ms, summary.total_ms, max_regression))
        before_blocks = baseline.totals_by("block", name)
        for block, now in current.totals_by("block", name).items():
            problems.append(slower(f"{name}:{block}", before_blocks.get(block, 0.0), now, max_regression))
    units = {(row.component, row.name): row.compute_unit for row in baseline.rows}
    for row in current.rows:
        previous = units.get((row.component, row.name))
        if previous == "NPU" and row.compute_unit != "NPU":
            problems.append(Regression(f"{row.component}:{row.name}", previous, row.compute_unit, "moved off the NPU"))
    return [problem for problem in problems if problem]


ESTIMATE_KEYS = {"model": str, "chipset": str, "precision": str, "total_ms": (int, float)}


def load_estimates(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The objects `estimate --json` printed, one per line, by model and chipset."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"baseline {path} does not exist; write one with 'estimate ... --json > {path.name}' first")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"baseline {path} cannot be read as text ({first_line(error, 80)}); pass the file "
                        "'estimate --json' wrote")
    estimates = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            estimate = json.loads(line)
        except json.JSONDecodeError as error:
            estimate = first_line(error)
        if not isinstance(estimate, dict) or any(not isinstance(estimate.get(key), kind) for key, kind in ESTIMATE_KEYS.items()):
            raise UserError(f"{path} line {number} is not an object 'estimate --json' printed ({str(estimate)[:80]}); "
                            "pass the file that command wrote")
        estimates[estimate["model"], estimate["chipset"]] = estimate
    if not estimates:
        raise UserError(f"{path} holds no estimate; write one with 'estimate ... --json > {path.name}'")
    return estimates


def compare_estimates(current: dict[str, Any], baseline: dict[str, Any], max_regression: float) -> list[Regression]:
    """A graph's estimate slower than its baseline by more than `max_regression`, in total or per op type, op types it
    can no longer cost, and layers that onnxruntime's QNN provider would run on the CPU."""
    model = current["model"]
    if current["precision"] != baseline["precision"]:
        raise UserError(f"the baseline estimates {model} at precision {baseline['precision']} and this run at "
                        f"{current['precision']}; pass --precision {baseline['precision']}, or write a new baseline")
    what = f"{model} on {current['chipset']}"
    problems = [slower(what, baseline["total_ms"], current["total_ms"], max_regression)]
    before_ops = baseline.get("by_op_type", {})
    problems += [slower(f"{what} ({op_type})", before_ops.get(op_type, 0.0), now, max_regression)
                 for op_type, now in current["by_op_type"].items()]
    for field, meaning in (("not_costed", "layers no longer costed"), ("on_cpu", "layers on the CPU")):
        before = baseline.get(field, {})
        problems += [Regression(f"{what} ({op_type})", before.get(op_type, 0), count, meaning)
                     for op_type, count in current[field].items() if count > before.get(op_type, 0)]
    return [problem for problem in problems if problem]
