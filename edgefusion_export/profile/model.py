"""One profile format for every backend: per-layer rows mapped to the model's structure, and component totals."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from ..components import COMPONENTS
from ..errors import UserError, first_line

SCHEMA_VERSION = "1.1"  # 1.1: the profiled image size
SCHEMA_FILE = Path(__file__).with_name("profile.schema.json")


@dataclass
class Row:
    component: str
    name: str
    op_type: str
    block: str
    compute_unit: str
    time_ms: float
    macs: int | None = None
    bytes_moved: int | None = None


def totals_by(rows: Iterable[Row], label: Callable[[Row], str]) -> dict[str, float]:
    """Milliseconds of `rows` summed by `label`, slowest first."""
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        totals[label(row)] += row.time_ms
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


@dataclass
class ComponentSummary:
    total_ms: float
    calls_per_image: int
    load_ms: float | None = None
    peak_memory_mb: float | None = None
    job_id: str | None = None


@dataclass
class Profile:
    backend: str
    device: str
    bundle: str
    num_steps: int
    rows: list[Row]
    components: dict[str, ComponentSummary] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    size: str | None = None  # the bundle's image size (WIDTHxHEIGHT) whose graphs were profiled

    def finish(self) -> "Profile":
        """Fill component totals from the rows."""
        for component in sorted({row.component for row in self.rows}):
            total = sum(row.time_ms for row in self.rows if row.component == component)
            summary = self.components.get(component) or ComponentSummary(0.0, COMPONENTS[component].calls_per_image(self.num_steps))
            summary.total_ms = round(total, 4)
            self.components[component] = summary
        return self

    @property
    def per_image_ms(self) -> float:
        return round(sum(s.total_ms * s.calls_per_image for s in self.components.values()), 3)

    def totals_by(self, key: str, component: str | None = None) -> dict[str, float]:
        rows = [row for row in self.rows if component is None or row.component == component]
        if component is None and key == "block":
            return totals_by(rows, lambda row: f"{row.component}:{row.block}")
        return totals_by(rows, lambda row: getattr(row, key))

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "backend": self.backend, "device": self.device, "bundle": self.bundle,
                "num_steps": self.num_steps, "per_image_ms": self.per_image_ms,
                "components": {name: asdict(summary) for name, summary in self.components.items()},
                "blocks": {component: self.totals_by("block", component) for component in self.components},
                "rows": [asdict(row) for row in self.rows], "notes": self.notes,
                **({"size": self.size} if self.size else {})}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Profile":
        profile = cls(data["backend"], data["device"], data["bundle"], data["num_steps"], [Row(**row) for row in data["rows"]],
                      notes=data.get("notes", []), size=data.get("size"))
        profile.components = {name: ComponentSummary(**summary) for name, summary in data["components"].items()}
        return profile


def load_profile(path: Path) -> Profile:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise UserError(f"baseline profile {path} does not exist; write one with 'profile ... -o DIR' first")
    except (json.JSONDecodeError, jsonschema.ValidationError) as error:
        raise UserError(f"{path} is not a profile.json ({first_line(error, 150)}); use the file 'profile' wrote")
    return Profile.from_json(data)
