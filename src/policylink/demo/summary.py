"""The numbers a phase comes down to, and how two phases compare.

Completion time is averaged over the episodes *both* phases solved, pairing each robot's
episode k with the same episode in the other phase (same seed, same target path), so a phase
is never flattered by having failed its hardest episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policylink.demo.fleet import PhaseRecord


@dataclass(frozen=True)
class PhaseSummary:
    engine: str
    impairment: str
    episodes: int
    succeeded: int
    mean_completion_s: float | None
    mean_tracking_error_mm: float | None
    ticks: int  # control periods: ticks run plus ticks skipped after an overrun
    waiting_ticks: int
    skipped_ticks: int
    requests: int
    timeouts: int
    # Observation bytes per request, as the robots' links encoded them (None: nothing counted).
    bytes_per_request: float | None
    rtt_p50_ms: float | None
    rtt_p95_ms: float | None
    startup_ms: float | None
    wall_s: float
    errors: tuple[str, ...]

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.episodes if self.episodes else 0.0


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _bytes_per_request(phase: PhaseRecord) -> float | None:
    sent = sum(robot.bytes_sent for robot in phase.robots)
    requests = sum(robot.requests for robot in phase.robots)
    return sent / requests if sent and requests else None


def summarize(phase: PhaseRecord, fps: float) -> PhaseSummary:
    episodes = [e for robot in phase.robots for e in robot.episodes]
    rtts = [rtt for robot in phase.robots for rtt in robot.rtt_ms]
    errors = [e.mean_tracking_error_m for e in episodes if e.mean_tracking_error_m is not None]
    return PhaseSummary(
        engine=phase.engine,
        impairment=phase.impairment,
        episodes=len(episodes),
        succeeded=sum(e.success for e in episodes),
        mean_completion_s=_mean([e.completion_s for e in episodes if e.completion_s is not None]),
        mean_tracking_error_mm=None if not errors else 1e3 * float(np.mean(errors)),
        ticks=sum(robot.ticks + robot.skipped_ticks for robot in phase.robots),
        waiting_ticks=sum(robot.waiting_ticks(fps) for robot in phase.robots),
        skipped_ticks=sum(robot.skipped_ticks for robot in phase.robots),
        requests=sum(robot.requests for robot in phase.robots),
        timeouts=sum(robot.timeouts for robot in phase.robots),
        bytes_per_request=_bytes_per_request(phase),
        rtt_p50_ms=_percentile(rtts, 50),
        rtt_p95_ms=_percentile(rtts, 95),
        startup_ms=_mean([ms for robot in phase.robots for ms in robot.startup_ms]),
        wall_s=phase.wall_s,
        errors=tuple(f"{robot.robot}: {robot.error}" for robot in phase.robots if robot.error),
    )


@dataclass(frozen=True)
class Comparison:
    """`baseline` (blocking) against `candidate` (async) on the episodes both solved."""

    paired_episodes: int
    candidate_completion_s: float | None
    baseline_completion_s: float | None

    @property
    def speedup(self) -> float | None:
        if not self.candidate_completion_s or self.baseline_completion_s is None:
            return None
        return self.baseline_completion_s / self.candidate_completion_s


def compare(candidate: PhaseRecord, baseline: PhaseRecord) -> Comparison:
    pairs = []
    for ours, theirs in zip(candidate.robots, baseline.robots, strict=True):
        for a, b in zip(ours.episodes, theirs.episodes, strict=False):
            if a.completion_s is not None and b.completion_s is not None:
                pairs.append((a.completion_s, b.completion_s))
    return Comparison(
        paired_episodes=len(pairs),
        candidate_completion_s=_mean([a for a, _ in pairs]),
        baseline_completion_s=_mean([b for _, b in pairs]),
    )
