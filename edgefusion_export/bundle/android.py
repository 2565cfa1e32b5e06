"""Install a verified bundle into the Android demo app's assets."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import UserError
from ..files import staged_directory
from .manifest import load_bundle

ASSETS = Path("app/src/main/assets/bundle")


def install_into_app(bundle_folder: Path, app_folder: Path) -> Path:
    """Copy the bundle to `app_folder/app/src/main/assets/bundle`, replacing any previous one atomically."""
    if not (app_folder / "settings.gradle.kts").is_file() or not (app_folder / "app").is_dir():
        raise UserError(f"{app_folder} is not the EdgeFusion Android app (no settings.gradle.kts and app/); "
                        "pass the android_app folder of this repository")
    bundle = load_bundle(bundle_folder)
    target = app_folder / ASSETS
    with staged_directory(target) as staging:
        for name in [*bundle.manifest["files"], "manifest.json"]:
            destination = staging / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(bundle.path(name), destination)
    load_bundle(target)
    return target
