"""Counter-based random numbers: a pure function of (seed, step, stream, index).

The joint methods must make the *same* random choice in every process and in every resumed
run without communicating and without global state (the reference code drew from numpy's
global generator on every rank and hoped the seeds stayed in sync). A counter-based generator
(Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011) gives exactly that:
the number for a key is a hash of the key, so any process can recompute it at any time.

We hash with SplitMix64's finaliser (Steele, Lea & Flood, OOPSLA 2014), chained over the key
fields. It is vectorised: any argument may be a numpy array (e.g. one seed per row of a batch).
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)

# Named streams so that different uses of the same (seed, step) never share numbers.
STREAM_CHOICE = 0  # ALRIGHT's choice of objective
STREAM_BATCH = {"sft": 1, "dpo": 2}  # minibatch sampling per objective


def _as_u64(x: int | np.ndarray) -> np.ndarray:
    if isinstance(x, (int, np.integer)):  # the common scalar case, without array overhead
        if x < 0:
            raise ValueError("seeds, steps, streams and indices must be non-negative integers")
        return np.uint64(x)
    arr = np.asarray(x)
    if arr.dtype.kind == "i" and (arr < 0).any():
        raise ValueError("seeds, steps, streams and indices must be non-negative integers")
    return arr.astype(np.uint64, copy=False)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, in place on the uint64 array ``z`` (returned)."""
    t = z >> np.uint64(30)
    z ^= t
    z *= _C1
    np.right_shift(z, np.uint64(27), out=t)
    z ^= t
    z *= _C2
    np.right_shift(z, np.uint64(31), out=t)
    z ^= t
    return z


def hash64(
    seed: int | np.ndarray, step: int | np.ndarray, stream: int = 0, index: int | np.ndarray = 0
) -> np.ndarray:
    """64-bit hash of the key (seed, step, stream, index); broadcasts over array arguments.

    z = mix(mix(mix(seed·γ + stream) + step·γ) + index·γ + γ), γ the golden-ratio constant.
    Arithmetic is modulo 2⁶⁴ (overflow is the point of the hash, so its warning is silenced).
    The first round depends on (seed, stream) only, so it runs on the seeds' shape before
    broadcasting: a block of B steps for S seeds (``seed`` (S,), ``step`` (B, 1)) costs two
    rounds on B·S numbers, computed in place.
    """
    with np.errstate(over="ignore"):
        z = _mix(np.atleast_1d(_as_u64(seed) * _GOLDEN + _as_u64(stream)))
        z = _mix(z + _as_u64(step) * _GOLDEN)
        offset = _as_u64(index) * _GOLDEN + _GOLDEN  # (a + b) + c = a + (b + c) mod 2⁶⁴
        out = _mix(z + offset if np.ndim(offset) else z.__iadd__(offset))
    return out if np.ndim(seed) or np.ndim(step) or np.ndim(index) else out[0]


def uniform(
    seed: int | np.ndarray, step: int | np.ndarray, stream: int = 0, index: int | np.ndarray = 0
) -> np.ndarray:
    """Uniform numbers in [0, 1) from the top 53 bits of :func:`hash64` of the key."""
    bits = hash64(seed, step, stream, index) >> np.uint64(11)
    return bits.astype(np.float64) * 2.0**-53
