"""Image output: PNG written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UserError


def save_png(pixels: np.ndarray, path: Path) -> None:
    """Save an [H, W, 3] uint8 array as PNG through a temporary file and a rename."""
    if not path.parent.exists():
        raise UserError(f"folder {path.parent} does not exist; create it or choose another output path")
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        Image.fromarray(pixels).save(temporary, format="PNG")
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
