"""`policylink eval`: control quality against latency, for three ways of driving a robot.

One `policylink serve` process serves the built-in expert for the whole sweep; for every point
(every combination of round-trip time, jitter and loss) and every engine, the demo's fleet drives
the same robots through the same episodes (robot i's episodes are seeded by i, so engines are
compared on identical target paths). The network is the demo's (`demo.links`): where the kernel
allows it, the server runs in a namespace behind a real link and every point gets a fresh
impairment proxy with its round trip, jitter and loss, so its counters are the point's own;
elsewhere the robot-side wrapper adds them. Each point names the link it ran over. Engines:

    async_rtc     RemoteEngine, RTC: the unexecuted prefix guides the next chunk (replace merge)
    async_append  RemoteEngine without RTC: each chunk is appended behind what is left
    sync          SyncEngine: the control loop blocks for a round trip whenever it runs dry

Per point, the real-time metrics vla-evaluation-harness defines: success rate, completion time,
stale-action ratio (control periods in which no fresh action was commanded, so the arm held),
effective control rate (fresh actions per second) and round-trip p50/p95/p99. Periods are the
simulation's own (it follows the wall clock), so a loop that blocks loses them as a real arm
would.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from policylink.client.links.impairment import NetworkImpairment
from policylink.demo.fleet import Fleet, FleetConfig, PhaseRecord
from policylink.demo.links import LINKS, RobotNetwork, real_link_wanted
from policylink.demo.server_process import MODEL_ID, ServerProcess, demo_manifest
from policylink.demo.summary import compare
from policylink.net.impairment_proxy import ProxyStats
from policylink.sim import CameraConfig
from policylink.sim.task import ReachTrackConfig


@dataclass(frozen=True)
class EngineVariant:
    name: str
    engine: str  # a fleet engine kind: "async" or "sync"
    rtc: bool
    description: str


ENGINE_VARIANTS = {
    variant.name: variant
    for variant in (
        EngineVariant("async_rtc", "async", True, "async, RTC (replace merge)"),
        EngineVariant("async_append", "async", False, "async, no RTC (append merge)"),
        EngineVariant("sync", "sync", True, "blocking (SyncEngine)"),
    )
}
BASELINE = "sync"
CANDIDATE = "async_rtc"
# The acceptance: RTC completes at least this much faster than blocking at equal
# success, and loses at most this many success points between 0 ms and 200 ms.
GOAL_SPEEDUP = 2.0
GOAL_SUCCESS_DROP_POINTS = 5.0
GOAL_RTT_MS = 200.0
POLL_S = 0.5


@dataclass(frozen=True)
class EvalConfig:
    rtt_ms: tuple[float, ...] = (0.0, 100.0, 200.0, 300.0)
    jitter_ms: tuple[float, ...] = (0.0,)
    loss: tuple[float, ...] = (0.0,)
    engines: tuple[str, ...] = tuple(ENGINE_VARIANTS)
    robots: int = 4
    episodes: int = 3
    policy_size: str = "small"
    fps: float = 30.0
    image_height: int = 480
    image_width: int = 640
    track_s: float = 3.0
    max_episode_s: float = 30.0
    buffer_time_s: float = 0.8
    # Where the impairments apply (`demo.links`): real, wrapper, or auto (real where allowed).
    link: str = "auto"

    def __post_init__(self) -> None:
        if self.link not in LINKS:
            raise ValueError(f"link {self.link!r}: use one of {', '.join(LINKS)}")
        unknown = [name for name in self.engines if name not in ENGINE_VARIANTS]
        if unknown or not self.engines:
            raise ValueError(
                f"engines {list(self.engines)}: use some of {', '.join(ENGINE_VARIANTS)}"
            )
        for name in ("rtt_ms", "jitter_ms", "loss"):
            if not getattr(self, name):
                raise ValueError(f"{name} needs at least one value")
        for loss in self.loss:
            NetworkImpairment(loss=loss)  # raises naming the bad value
        if any(value < 0 for value in (*self.rtt_ms, *self.jitter_ms)):
            raise ValueError(
                f"rtt_ms and jitter_ms must be >= 0, got {self.rtt_ms}, {self.jitter_ms}"
            )
        if self.robots < 1 or self.episodes < 1:
            raise ValueError(
                f"robots and episodes must be >= 1, got {self.robots}, {self.episodes}"
            )

    def impairments(self) -> list[NetworkImpairment]:
        return [
            NetworkImpairment(rtt, jitter, loss)
            for rtt, jitter, loss in itertools.product(self.rtt_ms, self.jitter_ms, self.loss)
        ]


@dataclass
class PointResult:
    """One engine at one network condition."""

    engine: str
    rtt_ms: float
    jitter_ms: float
    loss: float
    # `real` (namespace, veth, impairment proxy), `wrapper` (robot side) or `loopback`, and
    # the path in words.
    link: str
    network: str
    robots: int
    episodes: int
    succeeded: int
    success_rate: float
    completion_s_mean: float | None
    completion_s_p50: float | None
    stale_action_ratio: float
    effective_control_hz: float
    rtt_p50_ms: float | None
    rtt_p95_ms: float | None
    rtt_p99_ms: float | None
    requests: int
    timeouts: int
    dropped_by_link: int
    wall_s: float
    errors: list[str] = field(default_factory=list)
    # Mean completion of the episodes this engine and the blocking engine both solved at this
    # point, and how many times faster than blocking that is.
    paired_episodes: int = 0
    speedup_vs_sync: float | None = None
    # The counters of the impairment proxy this point's robots crossed (real links only).
    proxy: dict[str, int] | None = None


@dataclass
class EvalResult:
    settings: dict[str, Any]
    points: list[PointResult]
    goal: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "points": [asdict(point) for point in self.points],
            "goal": self.goal,
        }


Progress = Callable[[str], None]


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def point_result(
    variant: EngineVariant, impairment: NetworkImpairment, network: RobotNetwork, phase: PhaseRecord
) -> PointResult:
    episodes = [episode for robot in phase.robots for episode in robot.episodes]
    completions = [e.completion_s for e in episodes if e.completion_s is not None]
    steps = sum(e.steps for e in episodes)
    stale = sum(e.steps_without_action for e in episodes)
    seconds = sum(e.duration_s for e in episodes)
    rtts = [rtt for robot in phase.robots for rtt in robot.rtt_ms]
    succeeded = sum(e.success for e in episodes)
    return PointResult(
        engine=variant.name,
        rtt_ms=impairment.rtt_ms,
        jitter_ms=impairment.jitter_ms,
        loss=impairment.loss,
        link=network.kind,
        network=network.describe(),
        robots=len(phase.robots),
        episodes=len(episodes),
        succeeded=succeeded,
        success_rate=succeeded / len(episodes) if episodes else 0.0,
        completion_s_mean=float(np.mean(completions)) if completions else None,
        completion_s_p50=_percentile(completions, 50),
        stale_action_ratio=stale / steps if steps else 0.0,
        effective_control_hz=(steps - stale) / seconds if seconds else 0.0,
        rtt_p50_ms=_percentile(rtts, 50),
        rtt_p95_ms=_percentile(rtts, 95),
        rtt_p99_ms=_percentile(rtts, 99),
        requests=sum(robot.requests for robot in phase.robots),
        timeouts=sum(robot.timeouts for robot in phase.robots),
        dropped_by_link=sum(robot.dropped_by_link for robot in phase.robots),
        wall_s=phase.wall_s,
        errors=[f"{robot.robot}: {robot.error}" for robot in phase.robots if robot.error],
    )


class Sweep:
    """Runs an `EvalConfig` against one server process it owns (started in `run`), behind the
    network `config.link` asks for (`ValueError` at once when this machine cannot build it)."""

    def __init__(self, config: EvalConfig, run_dir: Path, progress: Progress | None = None) -> None:
        self.config = config
        self.run_dir = run_dir
        self.progress = progress or (lambda _line: None)
        self.camera = CameraConfig("top", config.image_height, config.image_width)
        self.path = ""
        impaired = any(impairment.active for impairment in config.impairments())
        self.real, self.link_note = real_link_wanted(config.link, impaired, None)

    def run(self, port: int) -> EvalResult:
        config = self.config
        impairments = config.impairments()
        total = len(impairments) * len(config.engines)
        points: list[PointResult] = []
        network = RobotNetwork(impairments[0], port, real=self.real)
        with network:
            self.progress(f"network: {network.describe()} ({network.kind}{self.link_note})")
            self.path = network.describe_path()
            manifest = demo_manifest(
                port,
                config.policy_size,
                [{"name": "top", "height": config.image_height, "width": config.image_width}],
                config.fps,
                config.robots,
                host=network.server_host,
            )
            self.progress(f"starting the policy server ({config.policy_size} backbone)")
            with ServerProcess(manifest, self.run_dir, network.server_prefix()):
                for impairment in impairments:
                    phases: dict[str, PhaseRecord] = {}
                    for variant_name in config.engines:
                        if points:  # a fresh proxy per point: its counters are the point's own
                            _attach_proxy(points[-1], network.impair(impairment))
                        variant = ENGINE_VARIANTS[variant_name]
                        label = (
                            f"[{len(points) + 1}/{total}] {variant.name} at {impairment.describe()}"
                        )
                        phase = self._phase(network, variant, label)
                        phases[variant.name] = phase
                        point = point_result(variant, impairment, network, phase)
                        points.append(point)
                        self.progress(
                            f"{label}: {point.succeeded}/{point.episodes} succeeded, completion "
                            f"{_seconds(point.completion_s_mean)}, "
                            f"stale {point.stale_action_ratio:.0%} ({point.link} link)"
                        )
                    _pair_with_baseline(points[-len(config.engines) :], phases)
        _attach_proxy(points[-1], network.stats)
        return EvalResult(self._settings(), points, goal_summary(points))

    def _phase(self, network: RobotNetwork, variant: EngineVariant, label: str) -> PhaseRecord:
        config = self.config
        fleet = Fleet(
            FleetConfig(
                endpoint=network.robot_endpoint,
                model_id=MODEL_ID,
                robots=config.robots,
                episodes=config.episodes,
                task=ReachTrackConfig(
                    fps=config.fps, track_s=config.track_s, max_episode_s=config.max_episode_s
                ),
                cameras=(self.camera,),
                buffer_time_s=config.buffer_time_s,
                rtc=variant.rtc,
                impairment=network.wrapper,
                network=network.describe(),
            ),
            variant.engine,
        )
        fleet.start()
        wanted, reported = config.robots * config.episodes, 0
        try:
            while fleet.running:
                time.sleep(POLL_S)
                done = sum(row.episodes_done for row in fleet.live())
                if done != reported:
                    reported = done
                    self.progress(f"{label}: {done}/{wanted} episodes")
        except KeyboardInterrupt:
            fleet.stop()
            fleet.join()
            raise
        return fleet.join()

    def _settings(self) -> dict[str, Any]:
        config = asdict(self.config)
        config["engine_descriptions"] = {
            name: ENGINE_VARIANTS[name].description for name in self.config.engines
        }
        config["link_note"] = self.link_note.removeprefix("; ")
        config["path"] = self.path
        return config


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _attach_proxy(point: PointResult, stats: ProxyStats | None) -> None:
    if stats is not None:
        point.proxy = asdict(stats)


def _pair_with_baseline(points: list[PointResult], phases: dict[str, PhaseRecord]) -> None:
    """Completion speed-up against blocking on the episodes both solved (see demo.summary)."""
    baseline = phases.get(BASELINE)
    if baseline is None:
        return
    for point in points:
        comparison = compare(phases[point.engine], baseline)
        point.paired_episodes = comparison.paired_episodes
        point.speedup_vs_sync = comparison.speedup


def goal_summary(points: list[PointResult]) -> dict[str, Any]:
    """The issue's goal, per round-trip time without jitter or loss: RTC's speed-up against
    blocking where both succeed equally often, and RTC's success drop from 0 ms to 200 ms."""
    clean = {(p.engine, p.rtt_ms): p for p in points if p.jitter_ms == 0.0 and p.loss == 0.0}
    by_rtt: dict[str, Any] = {}
    for (engine, rtt), candidate in sorted(clean.items(), key=lambda item: item[0][1]):
        baseline = clean.get((BASELINE, rtt))
        if engine != CANDIDATE or baseline is None:
            continue
        by_rtt[f"{rtt:g}"] = {
            "speedup_vs_sync": candidate.speedup_vs_sync,
            "success_async_rtc": candidate.success_rate,
            "success_sync": baseline.success_rate,
            "equal_success": abs(candidate.success_rate - baseline.success_rate) < 1e-9,
        }
    zero, at_goal = clean.get((CANDIDATE, 0.0)), clean.get((CANDIDATE, GOAL_RTT_MS))
    drop = (
        None
        if zero is None or at_goal is None
        else 100.0 * (zero.success_rate - at_goal.success_rate)
    )
    # The speed-up is judged where both engines succeed equally often; where blocking solves
    # fewer episodes RTC already wins on success, and it must never solve fewer.
    speedup_met = bool(by_rtt) and all(
        entry["success_async_rtc"] >= entry["success_sync"]
        and (not entry["equal_success"] or (entry["speedup_vs_sync"] or 0.0) >= GOAL_SPEEDUP)
        for entry in by_rtt.values()
    )
    return {
        "speedup_goal": GOAL_SPEEDUP,
        "by_rtt_ms": by_rtt,
        "success_drop_points_0_to_200_ms": drop,
        "speedup_met": speedup_met,
        "success_drop_met": drop is not None and drop <= GOAL_SUCCESS_DROP_POINTS,
    }
