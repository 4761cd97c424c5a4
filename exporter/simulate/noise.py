"""Deterministic noise as a pure function of (key, time step): counter-based hashing, not a sequential RNG.

A live fleet evaluates one instant; a history evaluates millions of instants at once. Both must see the same value
for the same workload at the same time, so noise cannot come from a generator whose state depends on how many draws
came before. Each value here is a hash (splitmix64's finaliser) of a per-workload key and an integer time step.
"""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_INV_2_53 = 1.0 / float(1 << 53)


def stable_key(*parts: object) -> int:
    """A 64-bit key from any printable parts, stable across processes (unlike ``hash``)."""
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def mix(x: npt.ArrayLike) -> U64:
    """splitmix64's finaliser: a bijective scramble of 64-bit integers."""
    z = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z ^ (z >> np.uint64(30))
        z = z * _M1
        z = z ^ (z >> np.uint64(27))
        z = z * _M2
        return z ^ (z >> np.uint64(31))


def hash2(key: npt.ArrayLike, counter: npt.ArrayLike) -> U64:
    """A hash of a key and a (possibly negative) integer counter, broadcasting like numpy."""
    k = np.asarray(key, dtype=np.uint64)
    c = np.asarray(counter, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        return mix(k * _GOLDEN + mix(c + _GOLDEN))


def uniform(key: npt.ArrayLike, counter: npt.ArrayLike) -> F64:
    """Uniform in [0, 1) per (key, counter)."""
    return (hash2(key, counter) >> np.uint64(11)).astype(np.float64) * _INV_2_53


def normal(key: npt.ArrayLike, counter: npt.ArrayLike) -> F64:
    """Standard normal per (key, counter), by Box-Muller from two independent uniforms."""
    u1 = uniform(key, counter)
    u2 = uniform(mix(np.asarray(key, dtype=np.uint64) ^ np.uint64(0x5DEECE66D)), counter)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def smooth(key: npt.ArrayLike, t: npt.ArrayLike, scale_s: float) -> F64:
    """Value noise in [-1, 1] that drifts smoothly over about ``scale_s`` seconds (cosine-interpolated knots)."""
    x = np.asarray(t, dtype=np.float64) / scale_s
    knot = np.floor(x)
    frac = x - knot
    k = knot.astype(np.int64)
    a = uniform(key, k)
    b = uniform(key, k + 1)
    w = 0.5 - 0.5 * np.cos(np.pi * frac)
    return (a + (b - a) * w) * 2.0 - 1.0
