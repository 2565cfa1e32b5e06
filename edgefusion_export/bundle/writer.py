"""Writing a bundle: artifacts copied into a staging folder, the build report and the checksummed manifest added,
then the folder moved into place at once (a failed write leaves the previous bundle as it was)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

from ..files import staged_directory, write_text_atomic
from .manifest import REPORT, confined_path, write_manifest


def write_bundle(output: Path, files: dict[str, Path], manifest: dict[str, Any], report: dict[str, Any],
                 write_extra: Callable[[Path], None]) -> dict[str, Any]:
    """Copy `files` (bundle path -> artifact), let `write_extra` add its own files into the staging folder, then
    write the build report (with every file's size) and the manifest; returns the report."""
    with staged_directory(output) as staging:
        for name, artifact in files.items():
            destination = confined_path(staging, name)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(artifact, destination)
        write_extra(staging)
        report["sizes_mb"] = {path.relative_to(staging).as_posix(): round(path.stat().st_size / 2**20, 2)
                              for path in sorted(staging.rglob("*")) if path.is_file()}
        write_text_atomic(staging / REPORT, json.dumps(report, indent=2, default=str) + "\n")
        write_manifest(staging, manifest)
    return report
