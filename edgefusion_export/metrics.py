"""Fidelity metrics shared by the parity gates, the quantizer and the tests."""

from __future__ import annotations

import numpy as np


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio of `test` against `reference`, in dB (inf when equal)."""
    reference = reference.astype(np.float64)
    noise = np.sum((reference - test.astype(np.float64)) ** 2)
    if noise == 0:
        return float("inf")
    return float(10 * np.log10(np.sum(reference**2) / noise))


def cosine_similarity(reference: np.ndarray, test: np.ndarray) -> float:
    a, b = reference.astype(np.float64).ravel(), test.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def psnr_db(reference: np.ndarray, test: np.ndarray, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio of two images with values in [0, peak], in dB."""
    mse = np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2)
    if mse == 0:
        return float("inf")
    return float(10 * np.log10(peak**2 / mse))
