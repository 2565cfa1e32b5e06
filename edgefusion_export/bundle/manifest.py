"""The bundle: a folder of ONNX files, tokenizer files and `manifest.json`, validated on write and on load."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema

from ..errors import UserError, first_line
from ..files import sha256_file, write_text_atomic

SCHEMA_VERSION = "2.0"  # 2: image sizes, each with its own graphs of the size-dependent components
MANIFEST = "manifest.json"
REPORT = "build_report.json"  # a record of the build (timings, memory), not a runtime input: not checksummed
SCHEMA_FILE = Path(__file__).with_name("manifest.schema.json")


@lru_cache(maxsize=1)
def manifest_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def validate_manifest(manifest: dict[str, Any], where: Path) -> None:
    """Raise a one-line error when `manifest` breaks the schema or names a file outside the bundle."""
    version = str(manifest.get("schema_version", "?"))
    major, ours = version.split(".")[0], SCHEMA_VERSION.split(".")[0]
    if major != ours:
        fix = ("upgrade edgefusion-export to read it" if major.isdigit() and int(major) > int(ours)
               else "rebuild the bundle with this version of edgefusion-export")
        raise UserError(f"{where} has manifest schema version {version!r}, this tool reads {SCHEMA_VERSION}; {fix}")
    try:
        jsonschema.validate(manifest, manifest_schema())
    except jsonschema.ValidationError as error:
        location = "/".join(str(part) for part in error.absolute_path) or "(top level)"
        raise UserError(f"{where} is not a valid bundle manifest at {location}: {first_line(error, 200)}; "
                        "rebuild the bundle")
    for size, entry in manifest["sizes"].items():
        for component, graph in entry["graphs"].items():
            found = manifest["components"].get(graph)
            if found is None or found["component"] != component or found["size"] not in (size, None):
                raise UserError(f"{where} names graph {graph!r} for {component} at {size}, which is not a {component} "
                                f"graph of that size in 'components'; rebuild the bundle")
    for name in referenced_files(manifest):
        confined_path(where.parent, name)
        if name not in manifest["files"]:
            raise UserError(f"{where} uses {name} without a checksum in 'files'; rebuild the bundle")


def referenced_files(manifest: dict[str, Any]) -> list[str]:
    """Every path the manifest points at."""
    return list(manifest["files"]) + used_files(manifest)


def used_files(manifest: dict[str, Any]) -> list[str]:
    """The files the manifest's components and tokenizer use (external weight data aside)."""
    names = [manifest["tokenizer"]["vocab_file"], manifest["tokenizer"]["merges_file"]]
    for component in manifest["components"].values():
        names += [component["file"]] if "file" in component else []
        names += [component["shared_weights"]] if "shared_weights" in component else []
        for compiled in component.get("compiled", {}).values():
            names += [compiled["offline"]["file"], *compiled["offline"]["context_binaries"]]
            names += [compiled["aihub"]["file"]] if "aihub" in compiled else []
    return names


def confined_path(folder: Path, name: str) -> Path:
    """`folder/name`, refusing names that would leave the folder."""
    relative = PurePosixPath(name)
    resolved = (folder / relative).resolve()
    if relative.is_absolute() or ".." in relative.parts or "\\" in name or not resolved.is_relative_to(folder.resolve()):
        raise UserError(f"bundle manifest names a file outside the bundle ({name!r}); refusing to load it")
    return resolved


def file_entries(folder: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file under `folder` except the manifest and the build report."""
    entries = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() not in (MANIFEST, REPORT)):
        entries[path.relative_to(folder).as_posix()] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return entries


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """Fill in the file checksums, validate, and write `manifest.json` atomically."""
    manifest = {"schema_version": SCHEMA_VERSION, **manifest, "files": file_entries(folder)}
    path = folder / MANIFEST
    validate_manifest(manifest, path)
    write_text_atomic(path, json.dumps(manifest, indent=2) + "\n")
    return path


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk."""

    folder: Path  # absolute: every path the bundle hands out is inside it, whatever the working directory
    manifest: dict[str, Any]

    def path(self, name: str) -> Path:
        return confined_path(self.folder, name)

    @property
    def sizes(self) -> list[str]:
        """The image sizes (WIDTHxHEIGHT) the bundle generates, its default first."""
        return list(self.manifest["sizes"])

    def size(self, size: str | None) -> str:
        """`size` (WIDTHxHEIGHT) or the bundle's first, or a one-line error naming the sizes it has."""
        size = size or self.sizes[0]
        if size not in self.manifest["sizes"]:
            raise UserError(f"this bundle has no {size} graphs; it generates {', '.join(self.sizes)} "
                            f"(rebuild it with --size {size} to add it)")
        return size

    def size_entry(self, size: str | None) -> dict[str, Any]:
        """The manifest's entry of `size` (default: the bundle's first)."""
        return self.manifest["sizes"][self.size(size)]

    def graphs(self, size: str | None) -> dict[str, str]:
        """Component -> the graph (a key of the manifest's components) that runs it at `size`."""
        return self.size_entry(size)["graphs"]

    def component_path(self, graph: str) -> Path:
        """The portable ONNX of `graph` (a component's name, or name@WIDTHxHEIGHT for another size's graph)."""
        entry = self.manifest["components"][graph]
        if "file" not in entry:
            raise UserError(f"this bundle ships {graph} as compiled NPU models only, without the portable ONNX; "
                            "run it with 'generate --backend npu-emulator', or rebuild it with --ship both")
        return self.path(entry["file"])


def load_bundle(folder: Path, verify: bool = True) -> Bundle:
    """Read, validate and (by default) checksum-verify a bundle before anything in it is used."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise UserError(f"{folder} is not a bundle (no {MANIFEST}); build one with 'edgefusion-export compile'")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{manifest_path} is not valid JSON ({error}); rebuild the bundle")
    if not isinstance(manifest, dict):
        raise UserError(f"{manifest_path} is not a bundle manifest; rebuild the bundle")
    validate_manifest(manifest, manifest_path)
    bundle = Bundle(folder.resolve(), manifest)
    if verify:
        for name, entry in manifest["files"].items():
            path = bundle.path(name)
            if not path.is_file():
                raise UserError(f"bundle file {name} is missing from {folder}; copy the whole bundle folder again")
            if path.stat().st_size != entry["size"] or sha256_file(path) != entry["sha256"]:
                raise UserError(f"bundle file {name} does not match its checksum (altered or corrupt); "
                                "copy the bundle again or rebuild it")
        _check_external_data(bundle)
    return bundle


def _check_external_data(bundle: Bundle) -> None:
    """ONNX external-data locations must be files of the bundle, not arbitrary paths."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors

    for component, entry in bundle.manifest["components"].items():
        if "file" not in entry:
            continue
        path = bundle.component_path(component)
        model = onnx.load(str(path), load_external_data=False)
        for tensor in _get_all_tensors(model):
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                location = (PurePosixPath(bundle.manifest["components"][component]["file"]).parent
                            / ExternalDataInfo(tensor).location).as_posix()
                confined_path(bundle.folder, location)
                if location not in bundle.manifest["files"]:
                    raise UserError(f"{path.name} reads weights from {location}, which the manifest does not list; "
                                    "rebuild the bundle")
