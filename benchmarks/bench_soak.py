"""A long run of real robots against one server: does anything grow, leak or drift?

The server is a `policylink serve` child (the built-in transformer, one small camera, health port
on) so its resident memory is its own. The robots are real `RemoteEngine`s with their own control
loops (`tests.support.steady_robots`), in processes of their own: one process holds a single
robot (its RSS is "a robot's"), a churn group of a quarter of the fleet is SIGKILLed halfway
through every period and replaced by robots with new ids (its sessions must be collected by the
server, not left open), and the rest run steady in processes of up to six.

Each period (a minute in a real soak) records: the server's and the single robot's RSS, the
server's open sessions, what its counters did (requests served, superseded, errors, drops,
sessions closed by reason), the robots' round-trip percentiles, and how long the server took
to collect the killed robots' sessions. At the end every robot process is killed at once and
the server must be left with no open session.

Verdicts, over the periods after warm-up: server RSS growth (last against first) and the slope
of a least-squares fit to every RSS sample, leaked sessions, and how flat p99 stayed (the worst
period's p99 against the median period's).

    python -m benchmarks soak --robots 16 --minutes 60
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.proc_stats import rss_mib
from benchmarks.timing import percentile
from policylink import wire
from policylink.net.ports import free_port
from tests.support.server_process import ServerProcess
from tests.support.servers import loopback_manifest_data
from tests.support.steady_robots import RobotPlan, SteadyRobotsProcess

STATE_DIM, CHUNK_SIZE, FPS, BUFFER_TIME_S = 6, 20, 30.0, 0.2
CAMERA = wire.CameraSpec("front", 96, 96)
STEADY_PER_PROCESS = 6
RSS_SAMPLE_S = 2.0
# Killed robots' liveliness tokens vanish with their TCP links; the server closes their sessions
# after its liveliness grace (1 s). The idle sweep (30 s) is the backstop this deadline covers.
COLLECT_DEADLINE_S = 45.0
COUNTERS = {
    "requests_ok": ("policylink_requests_total", {"outcome": "ok"}),
    "superseded": ("policylink_superseded_total", {}),
    "errors": ("policylink_errors_total", {}),
    "dropped": ("policylink_dropped_total", {}),
    "sessions_opened": ("policylink_sessions_opened_total", {}),
    "closed_liveliness": ("policylink_sessions_closed_total", {"reason": "liveliness"}),
    "closed_idle": ("policylink_sessions_closed_total", {"reason": "idle"}),
    "closed_by_client": ("policylink_sessions_closed_total", {"reason": "client"}),
}


@dataclass(frozen=True)
class SoakPlan:
    """How many robots, how many periods of how long, and how many are warm-up."""

    robots: int = 16
    # Ten minutes unless asked (`make bench` runs every benchmark); the acceptance run is
    # `--minutes 60`.
    periods: int = 10
    period_s: float = 60.0
    warmup_periods: int = 2


QUICK = SoakPlan(robots=8, periods=4, period_s=15.0, warmup_periods=1)


def parse_options(argv: list[str]) -> dict[str, Any]:
    """`--robots N --minutes M`: the options `python -m benchmarks soak` passes through."""
    if not argv:
        return {}
    parser = argparse.ArgumentParser(prog="python -m benchmarks soak")
    parser.add_argument("--robots", type=int, default=16, help="robots in the fleet (>= 4)")
    parser.add_argument("--minutes", type=int, default=10, help="periods of one minute")
    args = parser.parse_args(argv)
    if args.robots < 4:
        parser.error(f"--robots {args.robots}: a soak needs at least 4 (one watched, churn)")
    if args.minutes < 3:
        parser.error(f"--minutes {args.minutes}: at least 3 (2 of them are warm-up)")
    return {"plan": SoakPlan(robots=args.robots, periods=args.minutes)}


def manifest(robots: int) -> dict[str, Any]:
    params = {
        "state_dim": STATE_DIM,
        "chunk_size": CHUNK_SIZE,
        "trained_fps": FPS,
        "cameras": [{"name": CAMERA.name, "height": CAMERA.height, "width": CAMERA.width}],
    }
    return loopback_manifest_data(
        {
            "policy": {"kind": "transformer", "preset": "tiny", "params": params},
            # A churn group's replacements may open before the killed sessions are collected.
            "max_sessions": 2 * robots,
            "torch_threads": 1,
            "health_port": free_port(),
        }
    )


class ServerGauges:
    """The server's /metrics, read as (name, labels) → value."""

    def __init__(self, health_port: int) -> None:
        self.url = f"http://127.0.0.1:{health_port}/metrics"

    def read(self) -> dict[str, float]:
        with urllib.request.urlopen(self.url, timeout=10) as answer:
            text = answer.read().decode()
        values = {"sessions_active": 0.0, **dict.fromkeys(COUNTERS, 0.0)}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "policylink_sessions_active":
                    values["sessions_active"] = sample.value
                for key, (name, labels) in COUNTERS.items():
                    if sample.name == name and labels.items() <= sample.labels.items():
                        values[key] += sample.value
        return values

    def wait_sessions(self, count: int, timeout_s: float) -> float:
        """Seconds until exactly `count` sessions are open; raises past `timeout_s`."""
        start = time.monotonic()
        while (now := self.read()["sessions_active"]) != count:
            if time.monotonic() - start > timeout_s:
                raise AssertionError(
                    f"the server still has {now:g} sessions open, not {count}, "
                    f"{timeout_s:g} s after robots vanished"
                )
            time.sleep(0.1)
        return time.monotonic() - start


class Fleet:
    """The robot processes of a soak; the churn group is killed and replaced on demand."""

    def __init__(self, plan: RobotPlan, robots: int, stack: contextlib.ExitStack) -> None:
        self.plan, self.stack = plan, stack
        self.churn_size = max(1, robots // 4)
        steady = robots - 1 - self.churn_size
        self.watched = self._start(["watched-0"])
        ids = [f"steady-{i}" for i in range(steady)]
        self.steady = [
            self._start(ids[first : first + STEADY_PER_PROCESS])
            for first in range(0, steady, STEADY_PER_PROCESS)
        ]
        self._generation = itertools.count()
        self.churn = self._start_churn()

    def _start(self, client_ids: list[str]) -> SteadyRobotsProcess:
        return self.stack.enter_context(SteadyRobotsProcess(self.plan, client_ids))

    def _start_churn(self) -> SteadyRobotsProcess:
        generation = next(self._generation)
        return self._start([f"churn-{generation}-{i}" for i in range(self.churn_size)])

    @property
    def alive(self) -> list[SteadyRobotsProcess]:
        return [self.watched, *self.steady, self.churn]

    def take_round_trips_ms(self) -> list[float]:
        groups = [group.take_round_trips_ms() for group in self.alive]
        return [rtt for robots in groups for robot in robots for rtt in robot]

    def kill_churn(self) -> None:
        self.churn.kill()

    def replace_churn(self) -> None:
        self.churn = self._start_churn()

    def robot_problems(self) -> dict[str, int]:
        """Totals over the robots alive now: what a robot would have noticed."""
        summaries = [robot for group in self.alive for robot in group.summary()]
        keys = ("stalls", "error_replies", "timeouts", "reconnects", "chunks_dropped_stale")
        totals = {key: sum(robot[key] for robot in summaries) for key in keys}
        totals["not_streaming"] = sum(robot["state"] != "streaming" for robot in summaries)
        return totals


def _fit_slope_per_min(series: list[tuple[float, float]]) -> float:
    if len(series) < 2:
        return 0.0
    seconds, values = np.array(series).T
    return float(np.polyfit(seconds / 60.0, values, 1)[0])


def verdicts(record: dict[str, Any], warmup_periods: int) -> dict[str, Any]:
    """What the acceptance reads: growth and slope after warm-up, leaks, p99 flatness."""
    periods = record["periods"][warmup_periods:]
    warm_from_s = periods[0]["start_s"] if periods else 0.0
    series = [(at, mib) for at, mib in record["server_rss_series"] if at >= warm_from_s]
    first, last = periods[0]["server_rss_mib"], periods[-1]["server_rss_mib"]
    p99s = [p["round_trip_ms"]["p99"] for p in periods]
    robot = [(at, mib) for at, mib in record["robot_rss_series"] if at >= warm_from_s]
    return {
        "server_rss_growth_pct": 100.0 * (last - first) / first,
        "server_rss_slope_mib_per_min": _fit_slope_per_min(series),
        "robot_rss_slope_mib_per_min": _fit_slope_per_min(robot),
        "leaked_sessions": record["leaked_sessions_after_churn"] + record["leaked_sessions_at_end"],
        "p99_worst_over_median": max(p99s) / float(np.median(p99s)),
        "p99_slope_ms_per_min": _fit_slope_per_min(
            [(p["start_s"], p["round_trip_ms"]["p99"]) for p in periods]
        ),
        "collect_s_max": max(p["churn_collected_s"] for p in record["periods"]),
    }


def soak(plan: SoakPlan, workdir: Path, progress: bool = True) -> dict[str, Any]:
    """Runs the soak and returns its record (per period, series, verdicts)."""
    data = manifest(plan.robots)
    robot_plan = RobotPlan(
        endpoint=data["zenoh"]["listen"][0],
        state_dim=STATE_DIM,
        cameras=(CAMERA,),
        fps=FPS,
        buffer_time_s=BUFFER_TIME_S,
    )
    server = ServerProcess(data, workdir).wait_serving()
    gauges = ServerGauges(data["health_port"])
    record: dict[str, Any] = {
        "plan": plan.__dict__,
        "periods": [],
        "server_rss_series": [],
        "robot_rss_series": [],
        "leaked_sessions_after_churn": 0,
    }
    try:
        with contextlib.ExitStack() as stack:
            fleet = Fleet(robot_plan, plan.robots, stack)
            gauges.wait_sessions(plan.robots, COLLECT_DEADLINE_S)
            began = time.monotonic()
            fleet.take_round_trips_ms()
            for index in range(plan.periods):
                period = _run_period(plan, fleet, gauges, server.process.pid, began, record)
                record["periods"].append(period)
                if progress:
                    print(_progress_line(index, plan, period), flush=True)
            # Every robot vanishes at once: the server must collect every session.
            for group in fleet.alive:
                group.kill()
            try:
                record["collect_all_s"] = gauges.wait_sessions(0, COLLECT_DEADLINE_S)
                record["leaked_sessions_at_end"] = 0
            except AssertionError:
                record["leaked_sessions_at_end"] = int(gauges.read()["sessions_active"])
        record["server_alive_at_end"] = server.process.poll() is None
    finally:
        server.stop()
    record["server_exit_code"] = server.process.returncode
    record["verdicts"] = verdicts(record, plan.warmup_periods)
    return record


def _run_period(
    plan: SoakPlan,
    fleet: Fleet,
    gauges: ServerGauges,
    server_pid: int,
    began: float,
    record: dict[str, Any],
) -> dict[str, Any]:
    start = time.monotonic()
    before = gauges.read()
    churned = False
    collected_s = float("nan")
    for due in _sample_times(start, plan.period_s):
        time.sleep(max(0.0, due - time.monotonic()))
        at = round(time.monotonic() - began, 1)
        record["server_rss_series"].append((at, rss_mib(server_pid)))
        record["robot_rss_series"].append((at, rss_mib(fleet.watched.pid)))
        if not churned and time.monotonic() - start >= plan.period_s / 2:
            churned = True
            fleet.kill_churn()
            try:
                collected_s = gauges.wait_sessions(
                    plan.robots - fleet.churn_size, COLLECT_DEADLINE_S
                )
            except AssertionError:
                record["leaked_sessions_after_churn"] += int(
                    gauges.read()["sessions_active"] - (plan.robots - fleet.churn_size)
                )
            fleet.replace_churn()
    after = gauges.read()
    trips = fleet.take_round_trips_ms()
    return {
        "start_s": round(start - began, 1),
        "server_rss_mib": rss_mib(server_pid),
        "robot_rss_mib": rss_mib(fleet.watched.pid),
        "sessions_active": after["sessions_active"],
        "churn_collected_s": collected_s,
        "server": {key: after[key] - before[key] for key in COUNTERS},
        "round_trip_ms": {
            "count": len(trips),
            **{f"p{q}": percentile(trips, q) for q in (50, 90, 99)},
            "max": max(trips, default=float("nan")),
        },
        "robots": fleet.robot_problems(),
    }


def _sample_times(start: float, period_s: float) -> Iterator[float]:
    steps = max(1, round(period_s / RSS_SAMPLE_S))
    return (start + period_s * (i + 1) / steps for i in range(steps))


def _progress_line(index: int, plan: SoakPlan, period: dict[str, Any]) -> str:
    trips = period["round_trip_ms"]
    return (
        f"period {index + 1}/{plan.periods}: server {period['server_rss_mib']:.1f} MiB, "
        f"robot {period['robot_rss_mib']:.1f} MiB, {period['sessions_active']:g} sessions, "
        f"{period['server']['requests_ok']:g} served, p50 {trips['p50']:.1f} ms, "
        f"p99 {trips['p99']:.1f} ms, churn collected in {period['churn_collected_s']:.2f} s"
    )


def run(quick: bool = False, plan: SoakPlan | None = None) -> dict[str, Any]:
    chosen = plan or (QUICK if quick else SoakPlan())
    with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
        record = soak(chosen, Path(workdir))
    for name, value in record["verdicts"].items():
        print(f"{name}: {value:.3g}" if isinstance(value, float) else f"{name}: {value}")
    return record
