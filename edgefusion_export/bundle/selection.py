"""What ships: the part of a bundle an app needs (compiled NPU models for some chipsets, the portable ONNX, or both).

One function serves `compile --ship` and `package --chipset/--ship`: it trims the manifest and names the files
the trimmed manifest still uses; the writer then checksums exactly those.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any, Iterable

from ..errors import UserError
from ..files import staged_directory
from .manifest import Bundle, load_bundle, used_files, write_manifest

SHIP_CHOICES = ("both", "compiled", "portable")


def select(manifest: dict[str, Any], available: Iterable[str], ship: str = "both",
           chipsets: tuple[str, ...] = ()) -> tuple[dict[str, Any], list[str]]:
    """The manifest for what ships (`ship`, and only `chipsets` when given) and the files of `available` it needs."""
    chips = [chip["name"] for chip in manifest["target"].get("chipsets", [])]
    unknown = [name for name in chipsets if name not in chips]
    if unknown:
        raise UserError(f"this bundle has no NPU models for {', '.join(unknown)}; it was compiled for "
                        f"{', '.join(chips) or 'no chipset'}")
    keep_chips = list(chipsets) or chips
    selected = copy.deepcopy({key: value for key, value in manifest.items() if key not in ("files", "schema_version")})
    if ship == "compiled" and not chips:
        raise UserError("--ship compiled needs a bundle with compiled NPU models (--target snapdragon)")
    selected["target"] = {**selected["target"], **({"chipsets": [c for c in selected["target"]["chipsets"] if c["name"] in keep_chips]} if chips else {})}
    for component in selected["components"].values():
        if ship == "compiled":
            component.pop("file")
        if "compiled" in component:
            component["compiled"] = {name: entry for name, entry in component["compiled"].items()
                                     if ship != "portable" and name in keep_chips}
            if not component["compiled"]:
                component.pop("compiled")
    if ship == "portable" and chips:
        selected["target"] = {key: value for key, value in selected["target"].items() if key == "name"}
    model_files = set(used_files(manifest))
    model_prefixes = [component["file"] for component in manifest["components"].values() if "file" in component]
    used = set(used_files(selected))
    portable = [component["file"] for component in selected["components"].values() if "file" in component]
    names = [name for name in available
             if name in used or any(name.startswith(file) for file in portable)  # a model file that ships
             or not (name in model_files or name.startswith("qnn/") or any(name.startswith(f) for f in model_prefixes))]
    return selected, names


def write_selection(bundle: Bundle, target: Path, ship: str = "both", chipsets: tuple[str, ...] = ()) -> Path:
    """Write what ships of a verified bundle to `target` (replaced atomically) with its own manifest; verify it."""
    manifest, names = select(bundle.manifest, bundle.manifest["files"], ship, chipsets)
    with staged_directory(target) as staging:
        for name in names:
            destination = staging / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(bundle.path(name), destination)
        write_manifest(staging, manifest)
    load_bundle(target)
    return target
