"""Install a verified bundle into the Android demo app's assets."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .manifest import load_bundle
from .selection import write_selection

ASSETS = Path("app/src/main/assets/bundle")


def install_into_app(bundle_folder: Path, app_folder: Path, ship: str = "both", chipsets: tuple[str, ...] = ()) -> Path:
    """Copy what the phone needs of the bundle (`ship`, `chipsets`: see bundle.selection) to
    `app_folder/app/src/main/assets/bundle`, replacing any previous one atomically."""
    if not (app_folder / "settings.gradle.kts").is_file() or not (app_folder / "app").is_dir():
        raise UserError(f"{app_folder} is not the EdgeFusion Android app (no settings.gradle.kts and app/); "
                        "pass the android_app folder of this repository")
    return write_selection(load_bundle(bundle_folder), app_folder / ASSETS, ship, chipsets)
