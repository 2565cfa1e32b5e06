"""One profile format for every backend: per-layer rows mapped to the model's structure, totals, and outputs
(JSON with a documented schema, CSV, a self-contained HTML report with charts, a terminal table), plus the
regression gate CI uses."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from ..errors import UserError
from ..components import COMPONENTS
from ..files import write_text_atomic

SCHEMA_VERSION = "1.0"
SCHEMA_FILE = Path(__file__).with_name("profile.schema.json")


def block_of(component: str, node_name: str) -> str:
    """The model block a node belongs to, e.g. `down_blocks.1.attentions.0` or `encoder.layers.3`."""
    scope = node_name.rpartition("/")[0]
    parts = scope.split(".")[1:] if "." in scope else []  # drop the wrapper attribute (unet., vae., ...)
    if not parts:
        return "other"
    if parts[0] in ("down_blocks", "up_blocks"):
        return ".".join(parts[:4])
    if parts[0] == "mid_block":
        return ".".join(parts[:3])
    if parts[0] in ("encoder", "decoder"):  # text encoder layers, VAE decoder blocks
        if len(parts) > 1 and parts[1] == "layers":
            return ".".join(parts[:3])
        if len(parts) > 1 and parts[1] in ("up_blocks", "down_blocks"):
            return ".".join(parts[:5])
        if len(parts) > 1 and parts[1] == "mid_block":
            return ".".join(parts[:4])
        return ".".join(parts[:2])
    return parts[0]


def graph_blocks(model_path: Path, component: str) -> dict[str, str]:
    """Block of every node of a graph; nodes without a module scope (Q/DQ, casts) take their neighbour's."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    blocks = {node.name: block_of(component, node.name) for node in model.graph.node}
    by_tensor: dict[str, str] = {}
    for _ in range(2):  # producers first, then consumers for nodes at the graph inputs
        for node in model.graph.node:
            if blocks[node.name] == "other":
                neighbours = [by_tensor.get(name) for name in [*node.input, *node.output]]
                blocks[node.name] = next((block for block in neighbours if block and block != "other"), "other")
            for name in [*node.input, *node.output]:
                if blocks[node.name] != "other":
                    by_tensor.setdefault(name, blocks[node.name])
    return blocks


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

    def finish(self, totals: dict[str, float] | None = None) -> "Profile":
        """Fill component totals from the rows (or from `totals`, when a backend measures them directly)."""
        for component in sorted({row.component for row in self.rows} | set(totals or {})):
            total = (totals or {}).get(component, sum(row.time_ms for row in self.rows if row.component == component))
            summary = self.components.get(component) or ComponentSummary(0.0, COMPONENTS[component].calls_per_image(self.num_steps))
            summary.total_ms = round(total, 4)
            self.components[component] = summary
        return self

    @property
    def per_image_ms(self) -> float:
        return round(sum(s.total_ms * s.calls_per_image for s in self.components.values()), 3)

    def totals_by(self, key: str, component: str | None = None) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for row in self.rows:
            if component is None or row.component == component:
                label = f"{row.component}:{getattr(row, key)}" if component is None and key == "block" else getattr(row, key)
                totals[label] += row.time_ms
        return dict(sorted(totals.items(), key=lambda item: -item[1]))

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "backend": self.backend, "device": self.device, "bundle": self.bundle,
                "num_steps": self.num_steps, "per_image_ms": self.per_image_ms,
                "components": {name: asdict(summary) for name, summary in self.components.items()},
                "blocks": {component: self.totals_by("block", component) for component in self.components},
                "rows": [asdict(row) for row in self.rows], "notes": self.notes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Profile":
        profile = cls(data["backend"], data["device"], data["bundle"], data["num_steps"], [Row(**row) for row in data["rows"]],
                      notes=data.get("notes", []))
        profile.components = {name: ComponentSummary(**summary) for name, summary in data["components"].items()}
        return profile


def load_profile(path: Path) -> Profile:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise UserError(f"baseline profile {path} does not exist; write one with 'profile ... -o DIR' first")
    except (json.JSONDecodeError, jsonschema.ValidationError) as error:
        raise UserError(f"{path} is not a profile.json ({str(error).splitlines()[0][:150]}); use the file 'profile' wrote")
    return Profile.from_json(data)


def write_outputs(profile: Profile, folder: Path) -> dict[str, Path]:
    """profile.json, profile.csv and profile.html in `folder`, each written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    data = profile.to_json()
    jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    paths = {"json": folder / "profile.json", "csv": folder / "profile.csv", "html": folder / "profile.html"}
    write_text_atomic(paths["json"], json.dumps(data, indent=2) + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(asdict(profile.rows[0]).keys()) if profile.rows else ["component"])
    writer.writeheader()
    writer.writerows(asdict(row) for row in profile.rows)
    write_text_atomic(paths["csv"], buffer.getvalue())
    write_text_atomic(paths["html"], render_html(profile))
    return paths


def _bar_chart(title: str, totals: dict[str, float], limit: int = 20) -> str:
    """A horizontal bar chart as an inline base64 PNG (no network, no scripts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = list(totals.items())[:limit][::-1]
    figure, axis = plt.subplots(figsize=(9, 0.32 * len(items) + 1.2))
    axis.barh([label for label, _ in items], [value for _, value in items], color="#3b7dd8")
    axis.set_xlabel("ms")
    axis.set_title(title)
    axis.tick_params(axis="y", labelsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{encoded}"></figure>'


def render_html(profile: Profile, top: int = 25) -> str:
    escape = html.escape
    summary_rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{s.total_ms:.3f}</td><td>{s.calls_per_image}</td>"
        f"<td>{s.total_ms * s.calls_per_image:.3f}</td><td>{'' if s.load_ms is None else f'{s.load_ms:.1f}'}</td>"
        f"<td>{'' if s.peak_memory_mb is None else f'{s.peak_memory_mb:.1f}'}</td></tr>"
        for name, s in profile.components.items())
    charts = [_bar_chart(f"{component}: time by block (ms per call)", profile.totals_by("block", component))
              for component in profile.components]
    charts += [_bar_chart("time by op type (ms per call, all components)", profile.totals_by("op_type")),
               _bar_chart("time by compute unit (ms per call)", profile.totals_by("compute_unit"))]
    slowest = sorted(profile.rows, key=lambda row: -row.time_ms)[:top]
    layer_rows = "".join(f"<tr><td>{escape(r.component)}</td><td>{escape(r.block)}</td><td>{escape(r.name)}</td>"
                         f"<td>{escape(r.op_type)}</td><td>{escape(r.compute_unit)}</td><td>{r.time_ms:.4f}</td></tr>"
                         for r in slowest)
    notes = "".join(f"<li>{escape(note)}</li>" for note in profile.notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>EdgeFusion profile: {escape(profile.bundle)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}}th{{background:#eef}}
figure{{margin:1em 0}}img{{max-width:100%}}.big{{font-size:1.6em;font-weight:600}}</style></head>
<body><h1>EdgeFusion profile</h1>
<p>Bundle <code>{escape(profile.bundle)}</code> &middot; backend <b>{escape(profile.backend)}</b> &middot;
device <b>{escape(profile.device)}</b> &middot; {profile.num_steps} UNet steps per image</p>
<p class="big">{profile.per_image_ms:.1f} ms per image</p>
<table><tr><th>component</th><th>ms per call</th><th>calls per image</th><th>ms per image</th><th>load ms</th>
<th>peak MB</th></tr>{summary_rows}</table>
<ul>{notes}</ul>
{''.join(charts)}
<h2>Top {top} layers</h2>
<table><tr><th>component</th><th>block</th><th>layer</th><th>op</th><th>unit</th><th>ms</th></tr>{layer_rows}</table>
</body></html>
"""


def print_summary(profile: Profile, console) -> None:
    from rich.table import Table

    table = Table("component", "ms per call", "calls", "ms per image", "slowest block", title=f"{profile.backend} on {profile.device}")
    for name, summary in profile.components.items():
        blocks = profile.totals_by("block", name)
        slowest = next(iter(blocks.items()), ("-", 0.0))
        table.add_row(name, f"{summary.total_ms:.2f}", str(summary.calls_per_image),
                      f"{summary.total_ms * summary.calls_per_image:.2f}", f"{slowest[0]} ({slowest[1]:.2f} ms)")
    table.add_row("[bold]per image[/bold]", "", "", f"[bold]{profile.per_image_ms:.2f}[/bold]", "")
    console.print(table)


@dataclass
class Regression:
    what: str
    baseline: float | str
    current: float | str
    change: str


def compare(current: Profile, baseline: Profile, max_regression: float) -> list[Regression]:
    """Components and blocks slower than the baseline by more than `max_regression`, and layers that left the NPU."""
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
