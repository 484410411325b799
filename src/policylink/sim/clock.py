"""A clock that moves only when told to, so simulated episodes run as fast as the CPU allows."""

from __future__ import annotations


class ManualClock:
    """Callable like `time.monotonic`; `advance` moves it forward."""

    def __init__(self, start_s: float = 0.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock cannot go back; got {seconds} s")
        self.now_s += seconds
