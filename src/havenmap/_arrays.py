"""Small vectorised array helpers shared by the network, the routing core and the analyses."""

from __future__ import annotations

import numpy as np

__all__ = ["first_of_runs", "pointer_sum", "ragged_index"]


def ragged_index(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenate ``arange(s, s + c)`` for every (s, c) without a Python loop."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    return np.arange(total) + np.repeat(np.asarray(starts, np.int64) - (ends - counts), counts)


def first_of_runs(*keys: np.ndarray) -> np.ndarray:
    """Boolean mask of the first element of every run of equal key tuples (keys already grouped)."""
    n = len(keys[0])
    first = np.ones(n, dtype=bool)
    if n > 1:
        differs = np.zeros(n - 1, dtype=bool)
        for k in keys:
            differs |= k[1:] != k[:-1]
        first[1:] = differs
    return first


def pointer_sum(nxt: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Sum of ``step`` along ``nxt`` pointers up to the root (a root points to itself, with step 0).

    Pointer jumping: every pass doubles the distance each pointer spans, so a forest of depth
    D takes ``log2(D)`` vectorised passes instead of D sequential ones.
    """
    acc = np.asarray(step, dtype=np.float64).copy()
    ptr = np.asarray(nxt, dtype=np.int64).copy()
    while True:
        nxt_ptr = ptr[ptr]
        if np.array_equal(nxt_ptr, ptr):
            return acc
        acc += acc[ptr]
        ptr = nxt_ptr
