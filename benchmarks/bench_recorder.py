"""The recorder's cost per control tick: three 480x640 cameras at 30 Hz, with and without it.

A sim arm with three cameras runs `run_loop` under a `LocalEngine`, once plain and once
recording (lossy, the default). What the control thread pays is `record_tick` (timed around
each call) and any growth of the tick itself; the encoding runs on the recorder's thread and
shows up only as frames dropped when it cannot keep up with the machine.

A slow hand-over (over `SLOW_MS`) is put down to its cause where Linux counts the control
thread's context switches: a voluntary one means it waited (for the interpreter lock: the
writer thread held it), an involuntary one that the OS gave its core to another thread (an
encoder thread, or another process on a shared machine).
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.timing import percentile
from policylink.client import ClientConfig, LocalEngine, RobotLayout, run_loop
from policylink.client.loop import TickRecord
from policylink.episodes import Recorder, Recording
from policylink.episodes.recorder import EpisodeRecording
from policylink.policy.registry import PolicyConfig
from policylink.sim import CameraConfig, SimArm
from policylink.sim.expert import build
from policylink.sim.task import ReachTrackConfig

FPS = 30.0
CAMERAS = (
    CameraConfig("top"),
    CameraConfig("wrist", view="wrist"),
    CameraConfig("side"),
)
SLOW_MS = 0.5
# Linux only: the calling thread's own context switches.
_THREAD_USAGE = getattr(resource, "RUSAGE_THREAD", None)


def _switches() -> tuple[int, int]:
    if _THREAD_USAGE is None:
        return 0, 0
    usage = resource.getrusage(_THREAD_USAGE)
    return usage.ru_nvcsw, usage.ru_nivcsw


class _Timed:
    """Times each hand-over to the recorder, as the control thread sees it."""

    def __init__(self, episode: EpisodeRecording) -> None:
        self.episode = episode
        self.samples_ms: list[float] = []
        self.slow = {"calls": 0, "waited": 0, "preempted": 0}

    def record_tick(self, record: TickRecord) -> None:
        voluntary, involuntary = _switches()
        began = time.perf_counter()
        self.episode.record_tick(record)
        took_ms = (time.perf_counter() - began) * 1e3
        self.samples_ms.append(took_ms)
        if took_ms > SLOW_MS:
            after = _switches()
            self.slow["calls"] += 1
            self.slow["waited"] += after[0] > voluntary
            self.slow["preempted"] += after[1] > involuntary


def _loop(seconds: float, folder: Path | None) -> dict[str, Any]:
    robot = SimArm(ReachTrackConfig(fps=FPS, track_s=1e6), cameras=CAMERAS)
    layout = RobotLayout.of(robot)
    cameras = [{"name": c.name, "height": c.height, "width": c.width} for c in CAMERAS]
    policy = build(PolicyConfig(kind="sim_expert", params={"cameras": cameras, "fps": FPS}))
    engine = LocalEngine(policy, ClientConfig(fps=FPS), layout)
    if folder is None:
        stats = run_loop(robot, engine, FPS, duration_s=seconds)
        return {
            "ticks": stats.ticks,
            "skipped": stats.skipped_ticks,
            "max_tick_ms": stats.max_tick_s * 1e3,
        }
    recorder = Recorder(folder, layout, fps=FPS)
    with recorder.episode() as episode:
        timed = _Timed(episode)
        stats = run_loop(robot, engine, FPS, duration_s=seconds, recorder=timed)
    began = time.perf_counter()
    recorder.close()
    meta = Recording.open(folder).episodes[0].meta
    return {
        "ticks": stats.ticks,
        "skipped": stats.skipped_ticks,
        "max_tick_ms": stats.max_tick_s * 1e3,
        "record_tick_p50_ms": percentile(timed.samples_ms, 50),
        "record_tick_p99_ms": percentile(timed.samples_ms, 99),
        "record_tick_max_ms": max(timed.samples_ms),
        "record_tick_slow": timed.slow,
        "frames_written": meta["frames"],
        "frames_dropped": meta["frames_dropped"],
        "close_s": time.perf_counter() - began,
    }


def run(quick: bool = False) -> dict[str, Any]:
    seconds = 3.0 if quick else 20.0
    plain = _loop(seconds, None)
    with tempfile.TemporaryDirectory(prefix="policylink-bench-recorder-") as scratch:
        recorded = _loop(seconds, Path(scratch))
    period_ms = 1e3 / FPS
    print(f"3 cameras 480x640 at {FPS:g} Hz for {seconds:g} s (tick period {period_ms:.1f} ms)")
    print(
        f"  record_tick p50 {recorded['record_tick_p50_ms'] * 1e3:.1f} us, "
        f"p99 {recorded['record_tick_p99_ms'] * 1e3:.1f} us, "
        f"max {recorded['record_tick_max_ms'] * 1e3:.1f} us; "
        f"p99 / period = {recorded['record_tick_p99_ms'] / period_ms:.5f}"
    )
    slow = recorded["record_tick_slow"]
    print(
        f"  record_tick over {SLOW_MS} ms: {slow['calls']} of {recorded['ticks']} calls; "
        f"{slow['waited']} waited (a voluntary switch: the interpreter lock), "
        f"{slow['preempted']} preempted (an involuntary one: the OS ran another thread)"
    )
    print(
        f"  max tick: plain {plain['max_tick_ms']:.2f} ms, recording {recorded['max_tick_ms']:.2f}"
        f" ms; overrun ticks: plain {plain['skipped']}, recording {recorded['skipped']}"
    )
    print(
        f"  frames written {recorded['frames_written']}, dropped {recorded['frames_dropped']} "
        f"(the writer thread's share of this machine's cores)"
    )
    return {
        "fps": FPS,
        "cameras": [c.name for c in CAMERAS],
        "seconds": seconds,
        "plain": plain,
        "recording": recorded,
    }
