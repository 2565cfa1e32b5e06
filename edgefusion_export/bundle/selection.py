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
    if ship == "compiled" and not chips:
        raise UserError("--ship compiled needs a bundle with compiled NPU models (--target snapdragon)")
    if ship == "portable" and not all("file" in component for component in manifest["components"].values()):
        raise UserError("--ship portable needs a bundle with the portable ONNX; this one ships compiled NPU models only")
    keep = set(chipsets or chips) if ship != "portable" else set()
    selected = copy.deepcopy({key: value for key, value in manifest.items() if key not in ("files", "schema_version")})
    if chips:
        selected["target"]["chipsets"] = [chip for chip in selected["target"]["chipsets"] if chip["name"] in keep]
    for component in selected["components"].values():
        if ship == "compiled":
            component.pop("file", None)
            component.pop("shared_weights", None)
        compiled = {name: entry for name, entry in component.pop("compiled", {}).items() if name in keep}
        component.update({"compiled": compiled} if compiled else {})
    if chips and not keep:
        selected["target"] = {"name": selected["target"]["name"]}
    model_files, model_prefixes = _model_files(manifest)
    shipped_files, shipped_prefixes = _model_files(selected)

    def ships(name: str) -> bool:
        if name in model_files or name.startswith(("qnn/", *model_prefixes)):
            return name in shipped_files or name.startswith(tuple(shipped_prefixes))
        return True  # records such as fidelity.png ship as they are

    return selected, [name for name in available if ships(name)]


def _model_files(manifest: dict[str, Any]) -> tuple[set[str], list[str]]:
    """The files a manifest uses, and its portable models' names (their external data files start with them)."""
    return set(used_files(manifest)), [c["file"] for c in manifest["components"].values() if "file" in c]


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
