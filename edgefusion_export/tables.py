"""Tables for people: the values a person types or copies (chipset names, file names) are never cut, whatever
the terminal's width; the other columns wrap."""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from rich.console import Console
from rich.measure import Measurement
from rich.table import Column, Table
from rich.text import Text

UNBOUNDED = 10_000  # columns: a width no table needs


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], copyable: Sequence[str] = (), **options: Any) -> Table:
    """A rich Table of `rows` (cells may hold rich markup) whose `copyable` columns keep their full width."""
    rows = [list(row) for row in rows]
    columns = []
    for index, header in enumerate(headers):
        cells = [Text.from_markup(text).plain for text in [header, *(row[index] for row in rows)]]
        if header in copyable:
            columns.append(Column(header, no_wrap=True, min_width=max(map(len, cells))))
        else:
            columns.append(Column(header, overflow="fold"))
    result = Table(*columns, **options)
    for row in rows:
        result.add_row(*row)
    return result


def show(console: Console, rendered: Table) -> None:
    """Print a table, wider than the terminal when its columns' minimum widths need it (the terminal then wraps
    the lines) rather than cropped."""
    needed = Measurement.get(console, console.options.update(width=UNBOUNDED), rendered).minimum
    width = console.width
    console.width = max(width, needed)
    try:
        console.print(rendered)
    finally:
        console.width = width
