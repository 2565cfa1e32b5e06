"""The regression gate CI uses: a profile against a baseline, per component and per block."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError
from .model import Profile


@dataclass
class Regression:
    what: str
    baseline: float | str
    current: float | str
    change: str


def compare(current: Profile, baseline: Profile, max_regression: float) -> list[Regression]:
    """Components and blocks slower than the baseline by more than `max_regression`, and layers that left the NPU."""
    if current.size and baseline.size and current.size != baseline.size:
        raise UserError(f"the baseline profiles {baseline.size} graphs and this profile {current.size}; compare "
                        f"profiles of one size (profile --size {baseline.size})")
    problems = []
    for name, summary in current.components.items():
        if name in baseline.components:
            before = baseline.components[name].total_ms
            if before > 0 and summary.total_ms > before * (1 + max_regression):
                problems.append(Regression(name, before, summary.total_ms, f"+{summary.total_ms / before - 1:.1%}"))
        before_blocks = baseline.totals_by("block", name)
        for block, now in current.totals_by("block", name).items():
            before = before_blocks.get(block, 0.0)
            if before > 0 and now > before * (1 + max_regression):
                problems.append(Regression(f"{name}:{block}", round(before, 4), round(now, 4), f"+{now / before - 1:.1%}"))
    units = {(row.component, row.name): row.compute_unit for row in baseline.rows}
    for row in current.rows:
        previous = units.get((row.component, row.name))
        if previous == "NPU" and row.compute_unit != "NPU":
            problems.append(Regression(f"{row.component}:{row.name}", previous, row.compute_unit, "moved off the NPU"))
    return problems
