"""A profile as files (JSON with a documented schema, CSV, a self-contained HTML report with charts) and as a
terminal table."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import jsonschema
from rich.markup import escape

from ..files import write_text_atomic
from ..tables import show, table
from .model import SCHEMA_FILE, Profile

if TYPE_CHECKING:
    from rich.console import Console

    from .estimate import GraphEstimate


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
device <b>{escape(profile.device)}</b> &middot; {profile.num_steps} UNet steps per image{f" &middot; {profile.size}" if profile.size else ""}</p>
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
    rows = []
    for name, summary in profile.components.items():
        slowest = next(iter(profile.totals_by("block", name).items()), ("-", 0.0))
        rows.append([name, f"{summary.total_ms:.2f}", str(summary.calls_per_image),
                     f"{summary.total_ms * summary.calls_per_image:.2f}", f"{slowest[0]} ({slowest[1]:.2f} ms)"])
    rows.append(["[bold]per image[/bold]", "", "", f"[bold]{profile.per_image_ms:.2f}[/bold]", ""])
    show(console, table(["component", "ms per call", "calls", "ms per image", "slowest block"], rows,
                        copyable=["component"], title=f"{profile.backend} on {profile.device}" + (f", {profile.size}" if profile.size else "")))
    for note in profile.notes:
        console.print(note)


def milliseconds(value: float) -> str:
    """Two decimals, or three significant digits under a millisecond (a small graph is not '0.01')."""
    return f"{value:.2f}" if value >= 1 else f"{value:.3g}"


def print_breakdown(graph: GraphEstimate, top: int, console: Console) -> None:
    """Where an estimate's time goes: its `top` op types on one line, then its `top` slowest layers."""
    total = graph.total_ms or 1.0
    shares = [f"{op_type} {milliseconds(ms)} ms ({ms / total:.0%})" for op_type, ms in list(graph.by_op_type().items())[:top]]
    console.print(f"  by op type: {', '.join(shares)}", markup=False, soft_wrap=True)
    rows = [[milliseconds(row.time_ms), f"{row.time_ms / total:.1%}", escape(row.op_type), escape(row.name)]
            for row in graph.slowest_layers(top)]
    show(console, table(["ms", "share", "op", "layer"], rows, copyable=["layer"], title=f"{top} slowest layers"))
