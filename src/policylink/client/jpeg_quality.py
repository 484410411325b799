"""JPEG quality that follows the uplink: lower when it saturates, back up when it recovers.

A robot on Wi-Fi that keeps sending 90-quality frames into a saturated uplink gets its chunks
later and later: every observation queues behind the previous one's bytes. Quality is the one
knob that cuts those bytes without touching what the policy is asked, so this controller turns it
down, within `[minimum, maximum]`, while round trips are inflated, and back up once they are not.

The signal is each request's *network* time: its round trip less the server's queue wait and
forward, which the chunk reports as durations. A loaded server therefore never lowers quality;
only time spent on the wire does. Inflation is measured against the quietest network time of the
recent past (the path's floor, as delay-based congestion control does) and must exceed both a
factor and an absolute margin, so a LAN's sub-millisecond jitter is not mistaken for congestion.

Decrease is multiplicative and increase additive (AIMD): a saturated link is relieved within a
few requests, and recovery probes upward gently. After every change the controller waits
`hold_requests` replies, so it judges the effect of the quality it chose rather than the queue
left by the one before.

Pure: no clock, no network, no thread. `observe` is called with each reply, `quality` read before
each encode; the caller serialises the two.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class QualityBounds:
    """The range the controller may choose from and how it reads the round trips."""

    maximum: int = 90
    minimum: int = 50
    # Network time this many times the floor, and this much above it, means a saturated uplink.
    rise_factor: float = 2.0
    rise_margin_ms: float = 15.0
    decrease_factor: float = 0.75
    increase_step: int = 5
    hold_requests: int = 4
    # Replies over which the floor (the quietest network time) is taken: minutes of requests,
    # so a cap that lasts keeps counting as congestion instead of becoming the new floor (a
    # shorter window let quality climb back under a steady cap within ~10 s).
    floor_window: int = 2000

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.maximum <= 100:
            raise ValueError(
                f"jpeg_quality_min ({self.minimum}) must be 1..jpeg_quality ({self.maximum}); "
                "set them equal to keep quality fixed"
            )
        if self.rise_factor <= 1.0:
            raise ValueError(f"the rise factor must be above 1, got {self.rise_factor}")
        if not 0.0 < self.decrease_factor < 1.0:
            raise ValueError(f"the decrease factor must be in (0, 1), got {self.decrease_factor}")

    @property
    def adaptive(self) -> bool:
        return self.minimum < self.maximum


class QualityController:
    def __init__(self, bounds: QualityBounds) -> None:
        self.bounds = bounds
        self.quality = bounds.maximum
        self.decreases = 0
        self.increases = 0
        self._network_ms: deque[float] = deque(maxlen=bounds.floor_window)
        self._since_change = 0

    @property
    def floor_ms(self) -> float | None:
        return min(self._network_ms) if self._network_ms else None

    def observe(self, network_ms: float) -> int:
        """One reply's network time in; the quality for the next request out."""
        b = self.bounds
        self._network_ms.append(max(0.0, network_ms))
        self._since_change += 1
        if not b.adaptive or self._since_change < b.hold_requests:
            return self.quality
        floor = min(self._network_ms)
        recent = sorted(list(self._network_ms)[-b.hold_requests :])
        typical = recent[len(recent) // 2]
        saturated = typical > floor * b.rise_factor and typical > floor + b.rise_margin_ms
        calm = typical <= floor * (1 + (b.rise_factor - 1) / 2) or typical <= floor + (
            b.rise_margin_ms / 2
        )
        if saturated and self.quality > b.minimum:
            self.quality = max(b.minimum, int(self.quality * b.decrease_factor))
            self.decreases += 1
            self._since_change = 0
        elif calm and self.quality < b.maximum:
            self.quality = min(b.maximum, self.quality + b.increase_step)
            self.increases += 1
            self._since_change = 0
        return self.quality
