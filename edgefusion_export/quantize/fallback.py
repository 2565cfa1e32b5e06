"""w8a16-mixed's search: keep the layers that contribute most to the quantization error in float.

The layers are ranked by their own error contribution (`qdq.layer_sensitivity`); the worst 1, 2, 4, ... are kept
in float until the held-out SQNR reaches the target or the float budget is spent, and the best attempt wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import qdq

Attempt = Callable[[list[tuple[str, float]]], tuple[qdq.Fidelity, Path]]  # layers kept float -> fidelity, model


@dataclass
class Search:
    fidelity: qdq.Fidelity
    path: Path
    kept: list[tuple[str, float]] = field(default_factory=list)
    attempts: list[dict[str, float]] = field(default_factory=list)


def keep_sensitive_layers_float(attempt: Attempt, plain: Search, ranking: list[tuple[str, float]], sizes: dict[str, int],
                                min_sqnr_db: float, max_float_fraction: float) -> Search:
    """Starting from the plain W8A16 attempt, the best attempt with the worst layers kept in float."""
    best = plain
    budget = max_float_fraction * sum(sizes.values())
    count = 1
    while best.fidelity.sqnr_db < min_sqnr_db and count <= len(ranking):
        kept = ranking[:count]
        if sum(sizes[name] for name, _ in kept) > budget:
            break
        fidelity, path = attempt(kept)
        best.attempts.append({"kept_float": count, "sqnr_db": round(fidelity.sqnr_db, 2)})
        if fidelity.sqnr_db > best.fidelity.sqnr_db:
            best = Search(fidelity, path, kept, best.attempts)
        count *= 2
    return best
