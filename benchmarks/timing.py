"""Timing samples in milliseconds, and their percentiles."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def timed_ms(step: Callable[[], object], repeats: int) -> list[float]:
    """Milliseconds of each of `repeats` back-to-back calls of `step` (warm-up is the caller's)."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def percentile(values: list[float], q: float) -> float:
    """NaN, not an exception, when a case produced no samples: its row still prints."""
    return float(np.percentile(values, q)) if values else float("nan")
