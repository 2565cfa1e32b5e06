"""Images: float RGB to 8 bits, and PNG written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UserError
from ..files import atomic_path


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A float image with values in [0, 1] as 8-bit values (rounded, clipped)."""
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def save_png(pixels: np.ndarray, path: Path) -> None:
    """Save an [H, W, 3] uint8 array as PNG through a temporary file and a rename."""
    if not path.parent.exists():
        raise UserError(f"folder {path.parent} does not exist; create it or choose another output path")
    with atomic_path(path, ".png") as temporary:
        Image.fromarray(pixels).save(temporary, format="PNG")
