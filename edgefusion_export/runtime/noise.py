"""Portable seeded Gaussian noise, defined so that any language reproduces it bit for bit.

Element i of stream s for seed n: two SplitMix64 outputs of the counter
`key(n, s) + 2i` and `key(n, s) + 2i + 1` give uniforms u1 in (0, 1], u2 in [0, 1) (53-bit);
the sample is sqrt(-2 ln u1) cos(2 pi u2) (Box-Muller), rounded to float32.
Stream 0 is the initial latent; stream k >= 1 is the noise re-injected after step k.
"""

from __future__ import annotations

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
MASK = (1 << 64) - 1


def splitmix64(counter: np.ndarray) -> np.ndarray:
    """SplitMix64's output function applied to `counter * GOLDEN` (uint64, wrapping)."""
    with np.errstate(over="ignore"):
        z = counter * GOLDEN
        z = (z ^ (z >> np.uint64(30))) * MIX1
        z = (z ^ (z >> np.uint64(27))) * MIX2
    return z ^ (z >> np.uint64(31))


def stream_key(seed: int, stream: int) -> int:
    """Start counter of one stream: a SplitMix64 hash of (seed, stream)."""
    value = (seed & MASK) ^ ((stream * 0xD1B54A32D192ED03) & MASK)
    return int(splitmix64(np.array([value], dtype=np.uint64))[0])


def gaussian_noise(seed: int, stream: int, shape: list[int] | tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 noise of `shape` for (seed, stream)."""
    count = int(np.prod(shape))
    with np.errstate(over="ignore"):
        counters = np.uint64(stream_key(seed, stream)) + np.arange(2 * count, dtype=np.uint64)
    bits = splitmix64(counters) >> np.uint64(11)
    uniforms = bits.astype(np.float64) * (1.0 / (1 << 53))
    u1 = 1.0 - uniforms[0::2]
    u2 = uniforms[1::2]
    samples = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    return samples.astype(np.float32).reshape(shape)
