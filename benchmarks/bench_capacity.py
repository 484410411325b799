"""How many robots one server keeps fed, per scheduler: round-robin, batch and deadline.

A fleet is only as good as its worst robot: the measure is robots served with zero stalls.
Robots are real `RemoteEngine`s over Zenoh (`benchmarks.robot_fleet`, one process) playing
25-step chunks at 30 Hz with `buffer_time_s` 0.5 s, the engine's default and what a deployment
on a LAN sets, so each asks for a chunk every third of a second. A stall is a control tick at
which `get_action()` fell back after the robot's first chunk had arrived. The server is a
`policylink serve` child (`benchmarks.audited_server`), state-only observations so decoding
stays cheap (the point is the device), `max_batch_size` 16, one torch thread.

For each scheduler the fleet grows (4, 8, 16, … robots; each step settles for a second and is
then measured for a few) until a robot stalls, then the count is bisected between the last
clean step and the first stalled one (the fleet shrinks as robots leave a real one). Stalls
count from the start of each step, robots joining included. Reported per scheduler: robots
served with zero stalls, request round trip p50/p99 at that count, the batch-size histogram
and device busy fraction (from the server's audit log over the same window), and the CPU of
the robot process, the server process and the whole machine (anything else running on it
included), which tells whether the robots ran out of CPU before the server ran out of device.

Policies, each run under every scheduler in the same run so the ratios compare like with like:

- GPU-like: `benchmarks.gpu_like_policy`, a forward of `a + b·N` ms from published OpenVLA-class
  7B on H100: batch 1 18 ms, batch 8 24 ms (a ≈ 17.1 ms, b ≈ 0.86 ms per row). It sleeps
  rather than computes, so the result projects to that GPU rather than to this CPU.
- The built-in transformer, preset `large`, on this CPU: batch 8 costs about 4.4x batch 1
  (measured with `policylink capacity`), far from the 8x that would make batching worthless.
- GPU-like with robots at mixed rates (10, 30 and 50 Hz in turn). A 25-step chunk lasts only
  0.5 s at 50 Hz, so those robots ask again as soon as a chunk lands, with less playback left
  than the others: the case the deadline scheduler (earliest run-out first) is for.

Then the classic case: 4 robots against a 50 ms forward, replanning continuously (a new
request as soon as a chunk lands, as real-time-chunking deployments run), so round-robin has
all four queued behind each other; request latency p50 per scheduler against round-robin's.

Last, one client at a time against the GPU-like policy (18 ms at batch 1): policylink's OpenPI
endpoint with the stock openpi-client, and the native Zenoh path, against the minimal inline
OpenPI server the tests use (`tests/openpi/stock_server.py`) serving the same policy in its own
process, with the same observation.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.audited_server import AuditedServer
from benchmarks.gpu_like_policy import VERIFIED
from benchmarks.robot_fleet import FleetPlan, FleetProcess
from benchmarks.round_trips import one_in_flight
from benchmarks.timing import percentile
from policylink.net.ports import free_port

MODEL_ID = "bench-capacity"
STATE_DIM = 14
CHUNK = 25
FPS = 30.0
BUFFER_S = 0.5
MIXED_RATES = (10.0, 30.0, 50.0)
MAX_BATCH = 16
MAX_ROBOTS = 256
TRANSFORMER_PRESET = "large"
SLOW_FORWARD_MS = 50.0
SLOW_ROBOTS = 4
SCHEDULERS = ("round_robin", "batch", "deadline")
ROUND_TRIP_WARMUP = 10
TASK = "pick up the cup"


@dataclass(frozen=True)
class Pace:
    """How long and how far each measurement runs; `quick` trades resolution for time."""

    first_count: int
    max_count: int
    bisect: bool
    settle_s: float
    window_s: float
    slow_window_s: float
    round_trip_requests: int


FULL = Pace(4, MAX_ROBOTS, True, 1.0, 4.0, 6.0, 200)
QUICK = Pace(8, 32, False, 0.5, 1.5, 2.0, 30)


@dataclass(frozen=True)
class Case:
    """One policy and one mix of robot rates, swept under each of `schedulers`."""

    name: str
    slug: str
    policy: dict[str, Any]
    rates: tuple[float, ...]
    schedulers: tuple[str, ...]


def gpu_like(**params: float) -> dict[str, Any]:
    return {
        "kind": "python",
        "factory": "benchmarks.gpu_like_policy:build",
        "params": {"state_dim": STATE_DIM, "chunk_size": CHUNK, **params},
    }


CASES = (
    Case("GPU-like (7B VLA, H100)", "gpu", gpu_like(), (FPS,), SCHEDULERS),
    Case(
        f"transformer {TRANSFORMER_PRESET} (this CPU)",
        "cpu",
        {
            "kind": "transformer",
            "preset": TRANSFORMER_PRESET,
            "params": {"state_dim": STATE_DIM, "chunk_size": CHUNK},
        },
        (FPS,),
        SCHEDULERS,
    ),
    Case("GPU-like, 10/30/50 Hz mixed", "mixed", gpu_like(), MIXED_RATES, ("batch", "deadline")),
)


def manifest(policy: dict[str, Any], scheduler: str, *, openpi: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "policy": policy,
        "model_id": MODEL_ID,
        "scheduler": scheduler,
        "max_batch_size": MAX_BATCH,
        "max_sessions": MAX_ROBOTS,
        "torch_threads": 1,
        "warmup_inferences": 3,
        "zenoh": {"listen": [f"tcp/127.0.0.1:{free_port()}"]},
    }
    if openpi:
        data["openpi"] = {"enabled": True, "port": 0, "key_map": "libero"}
    return data


def machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, sum(ticks)


def measure(
    fleet: FleetProcess, server: AuditedServer, count: int, pace: Pace, window_s: float
) -> dict[str, Any]:
    """One step: resize the fleet, settle, and measure robots and server over one window."""
    fleet.open_window(count, pace.settle_s, window_s)
    mark, (busy_before, total_before) = server.mark(), machine_cpu_s()
    robots = fleet.results()
    device = server.since(mark)
    busy, total = machine_cpu_s()
    trips = robots.pop("round_trips_ms")
    return {
        **robots,
        **device,
        "requests_per_s": len(trips) / window_s,
        "rtt_p50_ms": percentile(trips, 50),
        "rtt_p99_ms": percentile(trips, 99),
        "machine_busy": (busy - busy_before) / max(1.0, total - total_before),
        "clean": robots["robots_stalled"] == 0 and robots["never_served"] == 0,
    }


def next_count(clean: int, stalled: int | None, pace: Pace) -> int | None:
    """Double while clean; then bisect between the last clean and the first stalled count
    until they are within an eighth of each other (or 2 robots)."""
    if stalled is None:
        doubled = min(max(clean * 2, pace.first_count), pace.max_count)
        return doubled if doubled > clean else None
    middle = (clean + stalled) // 2
    if not pace.bisect or stalled - clean <= max(2, stalled // 8) or middle <= clean:
        return None
    return middle


def capacity(case: Case, scheduler: str, workdir: Path, pace: Pace) -> dict[str, Any]:
    data = manifest(case.policy, scheduler)
    with AuditedServer(data, workdir, f"{case.slug}-{scheduler}", VERIFIED) as server:
        plan = FleetPlan(server.endpoint, MODEL_ID, STATE_DIM, BUFFER_S, case.rates)
        steps: list[dict[str, Any]] = []
        clean, stalled = 0, None
        with FleetProcess(plan) as fleet:
            count = next_count(clean, stalled, pace)
            while count is not None:
                step = measure(fleet, server, count, pace, pace.window_s)
                steps.append(step)
                print(f"  {scheduler:<11} {count:>4} robots: {status_line(step)}", flush=True)
                if step["clean"]:
                    clean = count
                else:
                    stalled = count
                count = next_count(clean, stalled, pace)
    at = next((s for s in steps if s["robots"] == clean), None)
    return {
        "robots_served": clean,
        "first_stalled_at": stalled,
        "ceiling_reached": stalled is None,
        "at_capacity": at,
        "steps": steps,
    }


def status_line(step: dict[str, Any]) -> str:
    verdict = (
        "clean"
        if step["clean"]
        else f"{step['robots_stalled']} stalled, {step['never_served']} never served"
    )
    return (
        f"{verdict}; RTT p50 {step['rtt_p50_ms']:.0f} ms p99 {step['rtt_p99_ms']:.0f} ms; "
        f"device busy {step['device_busy']:.0%}; mean batch {step['mean_batch_size']:.1f}; "
        f"CPU robots {step['client_cpu_cores']:.2f} server {step['server_cpu_cores']:.2f} "
        f"machine {step['machine_busy']:.0%}"
    )


def slow_policy_latency(scheduler: str, workdir: Path, pace: Pace) -> dict[str, Any]:
    """4 robots replanning continuously against a flat 50 ms forward."""
    policy = gpu_like(fixed_ms=SLOW_FORWARD_MS, per_row_ms=0.0)
    with AuditedServer(manifest(policy, scheduler), workdir, f"slow-{scheduler}", VERIFIED) as s:
        # A buffer as long as the chunk: a robot asks again the moment a chunk lands.
        plan = FleetPlan(s.endpoint, MODEL_ID, STATE_DIM, CHUNK / FPS)
        with FleetProcess(plan) as fleet:
            return measure(fleet, s, SLOW_ROBOTS, pace, pace.slow_window_s)


def _stock_server_main(params: dict[str, Any], conn: Connection) -> None:
    """Child process: the tests' minimal inline OpenPI server, serving the GPU-like policy."""
    from benchmarks.gpu_like_policy import GpuLikePolicy
    from policylink.policy.base import ChunkBatch
    from tests.openpi.stock_server import StockServer

    policy = GpuLikePolicy(params)

    def infer(obs: dict[str, Any]) -> dict[str, Any]:
        sample = {"state": obs["observation/state"], "images": {}, "task": obs.get("prompt", "")}
        return {"actions": policy.predict_chunk(ChunkBatch([sample]))[0]}

    server = StockServer(infer).start()
    try:
        conn.send(server.url)
        conn.recv()
    finally:
        server.stop()


def openpi_round_trips(url: str, requests: int) -> list[float]:
    """The stock openpi-client, as LIBERO/DROID eval scripts drive it: one infer at a time."""
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    state = np.random.default_rng(0).standard_normal(STATE_DIM).astype(np.float32)
    obs = {"observation/state": state, "prompt": TASK}
    policy = WebsocketClientPolicy(url)
    samples = []
    try:
        for index in range(ROUND_TRIP_WARMUP + requests):
            started = time.perf_counter()
            policy.infer(obs)
            if index >= ROUND_TRIP_WARMUP:
                samples.append((time.perf_counter() - started) * 1e3)
    finally:
        policy._ws.close()
    return samples


def native_round_trips(endpoint: str, requests: int) -> list[float]:
    from policylink.client.links.zenoh import ZenohLink
    from policylink.net.zenoh_settings import ZenohSettings
    from policylink.wire import Observation, SessionOpen

    link = ZenohLink(ZenohSettings(mode="client", connect=[endpoint]), "bench-native")
    request = SessionOpen(link.client_id, [f"joint_{i}" for i in range(STATE_DIM)], STATE_DIM)
    state = np.random.default_rng(0).standard_normal(STATE_DIM).astype(np.float32)
    obs = Observation(state=state, task=TASK)
    return one_in_flight(link, request, obs, requests, ROUND_TRIP_WARMUP)[0]


def single_client_round_trips(workdir: Path, pace: Pace) -> dict[str, dict[str, float]]:
    """Each path's round trips, p50 against the inline server's; for policylink's paths also
    the server's own median time in the mailbox and outside the forward (its audit log)."""
    policy, requests = gpu_like(), pace.round_trip_requests
    context = multiprocessing.get_context("spawn")
    conn, child = context.Pipe()
    stock = context.Process(
        target=_stock_server_main, args=(policy["params"], child), name="bench-stock-openpi"
    )
    stock.start()
    try:
        rows = {"minimal inline OpenPI server": summary(openpi_round_trips(conn.recv(), requests))}
    finally:
        conn.send("stop")
        stock.join(30)
    data = manifest(policy, "batch", openpi=True)
    with AuditedServer(data, workdir, "round-trips", VERIFIED) as server:
        paths: dict[str, Callable[[], list[float]]] = {
            "policylink OpenPI endpoint": lambda: openpi_round_trips(server.openpi_url, requests),
            "policylink native Zenoh": lambda: native_round_trips(server.endpoint, requests),
        }
        for name, round_trips in paths.items():
            mark = server.mark()
            row = summary(round_trips())
            seen = server.since(mark)
            row["server_queue_wait_p50_ms"] = seen["queue_wait_p50_ms"]
            row["server_overhead_p50_ms"] = seen["overhead_p50_ms"]
            rows[name] = row
    inline_p50 = rows["minimal inline OpenPI server"]["p50_ms"]
    for row in rows.values():
        row["vs_inline_server"] = row["p50_ms"] / inline_p50
    return rows


def summary(round_trips_ms: list[float]) -> dict[str, float]:
    return {
        "requests": len(round_trips_ms),
        "p50_ms": percentile(round_trips_ms, 50),
        "p99_ms": percentile(round_trips_ms, 99),
    }


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


@dataclass(frozen=True)
class Target:
    """One target of the issue: a measured ratio, its goal, and which side of it passes.

    `met` is None where this run cannot tell: a lower bound short of the goal, or a ratio
    whose denominator's sweep reached the robot ceiling too (a quick run's usual fate).
    """

    name: str
    measured: float
    goal: float
    at_most: bool = False
    lower_bound: bool = False
    undetermined: bool = False

    def row(self) -> dict[str, Any]:
        met: bool | None
        if self.undetermined:
            met = None
        elif self.at_most:
            met = self.measured <= self.goal
        else:
            met = True if self.measured >= self.goal else (None if self.lower_bound else False)
        return {
            "target": self.name,
            "measured": self.measured,
            "lower_bound": self.lower_bound,
            "goal": f"{'<=' if self.at_most else '>='} {self.goal:g}x",
            "met": met,
        }


def targets(
    sweeps: dict[str, dict[str, Any]],
    slow: dict[str, dict[str, Any]],
    trips: dict[str, dict[str, float]],
) -> list[dict[str, Any]]:
    """The issue's targets against this run. A sweep that reached the robot ceiling without a
    stall only bounds its scheduler's capacity from below: over a sweep that stalled, its
    ratio is a lower bound; over another bound, nothing."""
    gpu, cpu, mixed = (sweeps[case.name] for case in CASES)

    def robots(name: str, sweep: dict[str, Any], top: str, bottom: str, goal: float) -> Target:
        served = ratio(sweep[top]["robots_served"], sweep[bottom]["robots_served"])
        bottom_unknown = sweep[bottom]["ceiling_reached"]
        bounded = sweep[top]["ceiling_reached"] and not bottom_unknown
        return Target(name, served, goal, lower_bound=bounded, undetermined=bottom_unknown)

    slow_ratio = ratio(slow["batch"]["rtt_p50_ms"], slow["round_robin"]["rtt_p50_ms"])
    openpi_ratio = trips["policylink OpenPI endpoint"]["vs_inline_server"]
    found = [
        robots("GPU-like: batch / round-robin robots", gpu, "batch", "round_robin", 2.5),
        robots("CPU transformer: batch / round-robin robots", cpu, "batch", "round_robin", 1.5),
        robots("mixed rates: deadline / batch robots", mixed, "deadline", "batch", 1.0),
        Target("4 x 50 ms: batch / round-robin p50 latency", slow_ratio, 0.5, at_most=True),
        Target("one OpenPI client: RTT / inline server's", openpi_ratio, 1.0, at_most=True),
    ]
    return [target.row() for target in found]


def run(quick: bool = False) -> dict[str, Any]:
    pace = QUICK if quick else FULL
    began = time.monotonic()
    sweeps: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as scratch:
        workdir = Path(scratch)
        for case in CASES:
            print(f"{case.name}: robots at {'/'.join(f'{r:g}' for r in case.rates)} Hz", flush=True)
            sweeps[case.name] = {s: capacity(case, s, workdir, pace) for s in case.schedulers}
        print(f"{SLOW_ROBOTS} robots, {SLOW_FORWARD_MS:g} ms forward", flush=True)
        slow = {s: slow_policy_latency(s, workdir, pace) for s in SCHEDULERS}
        print("single-client round trips", flush=True)
        trips = single_client_round_trips(workdir, pace)
    checks = targets(sweeps, slow, trips)
    headroom = robot_headroom(sweeps)
    print_capacity(sweeps, headroom)
    print_slow(slow)
    print_round_trips(trips)
    print_targets(checks)
    elapsed = time.monotonic() - began
    print(f"(benchmark ran {elapsed:.0f} s)")
    return {
        "setup": {
            "chunk_size": CHUNK,
            "buffer_time_s": BUFFER_S,
            "fps": FPS,
            "mixed_rates_hz": MIXED_RATES,
            "max_batch_size": MAX_BATCH,
            "max_robots": pace.max_count,
            "gpu_like": "published OpenVLA-class 7B on H100: batch 1 18 ms, batch 8 24 ms",
            "transformer_preset": TRANSFORMER_PRESET,
            "window_s": pace.window_s,
        },
        "capacity": sweeps,
        "slow_policy": slow,
        "round_trips": trips,
        "robot_headroom": headroom,
        "targets": checks,
        "elapsed_s": elapsed,
    }


def robot_headroom(sweeps: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The most the robots' side ever used, over every step: if the robot process had run
    short of CPU, its ticks would have run late and the server would have been flattered."""
    steps = [
        step
        for by_scheduler in sweeps.values()
        for sweep in by_scheduler.values()
        for step in sweep["steps"]
    ]
    return {
        "max_robot_cpu_cores": max(step["client_cpu_cores"] for step in steps),
        "max_tick_late_p99_ms": max(step["tick_late_p99_ms"] for step in steps),
        "max_machine_busy": max(step["machine_busy"] for step in steps),
    }


def print_capacity(sweeps: dict[str, dict[str, Any]], headroom: dict[str, float]) -> None:
    print()
    print("Robots served with zero stalls (chunk 25 steps, buffer_time_s 0.5 s)")
    print(
        f"{'case':<30} {'scheduler':<11} {'robots':>7} {'stalled':>8} {'RTT p50':>8} "
        f"{'p99':>6} {'busy':>5} {'batch':>6} {'req/s':>6} {'CPU robots':>11} {'server':>7} "
        f"{'machine':>8}"
    )
    for case, by_scheduler in sweeps.items():
        base = by_scheduler.get("round_robin")
        for scheduler, sweep in by_scheduler.items():
            at = sweep["at_capacity"] or {}
            served = f"{'>=' if sweep['ceiling_reached'] else ''}{sweep['robots_served']}"
            stalled = sweep["first_stalled_at"]
            print(
                f"{case:<30} {scheduler:<11} {served:>7} {stalled or '-':>8} "
                f"{at.get('rtt_p50_ms', float('nan')):>6.0f}ms "
                f"{at.get('rtt_p99_ms', float('nan')):>4.0f}ms "
                f"{at.get('device_busy', 0.0):>5.0%} {at.get('mean_batch_size', 0.0):>6.1f} "
                f"{at.get('requests_per_s', 0.0):>6.0f} {at.get('client_cpu_cores', 0.0):>11.2f} "
                f"{at.get('server_cpu_cores', 0.0):>7.2f} {at.get('machine_busy', 0.0):>8.0%}"
                + versus_round_robin(sweep, base)
            )
            forwards = at.get("forwards_by_batch_size", {})
            histogram = " ".join(f"{size}:{count}" for size, count in forwards.items())
            print(f"{'':<30} {'':<11} forwards by batch size: {histogram or '-'}")
    print(
        f"robot process over every step: at most {headroom['max_robot_cpu_cores']:.2f} cores, "
        f"tick lateness p99 at most {headroom['max_tick_late_p99_ms']:.1f} ms (one tick at "
        f"{max(MIXED_RATES):g} Hz is {1e3 / max(MIXED_RATES):.0f} ms); machine at most "
        f"{headroom['max_machine_busy']:.0%} busy (all processes, both cores)"
    )


def versus_round_robin(sweep: dict[str, Any], base: dict[str, Any] | None) -> str:
    """ "  2.5x rr": robots served against round-robin's, a lower bound where this sweep hit
    the ceiling, nothing where round-robin's did (or was not run)."""
    if base is None or base["ceiling_reached"] or not base["robots_served"]:
        return ""
    at_least = ">=" if sweep["ceiling_reached"] else ""
    return f"  {at_least}{sweep['robots_served'] / base['robots_served']:.1f}x rr"


def print_slow(slow: dict[str, dict[str, Any]]) -> None:
    print()
    print(f"{SLOW_ROBOTS} robots, {SLOW_FORWARD_MS:g} ms forward, replanning continuously")
    print(f"{'scheduler':<11} {'p50':>8} {'p99':>8} {'vs rr p50':>10} {'mean batch':>11} stalled")
    base = slow["round_robin"]["rtt_p50_ms"]
    for scheduler, row in slow.items():
        print(
            f"{scheduler:<11} {row['rtt_p50_ms']:>6.1f}ms {row['rtt_p99_ms']:>6.1f}ms "
            f"{row['rtt_p50_ms'] / base:>9.2f}x {row['mean_batch_size']:>11.2f} "
            f"{row['robots_stalled']}"
        )


def print_round_trips(trips: dict[str, dict[str, float]]) -> None:
    print()
    print("One client, one request in flight, GPU-like policy (18 ms forward)")
    print(
        f"{'path':<30} {'p50':>8} {'p99':>8} {'p50 vs inline':>14} "
        f"{'server: mailbox':>16} {'outside forward':>16}"
    )
    for name, row in trips.items():
        waited, outside = row.get("server_queue_wait_p50_ms"), row.get("server_overhead_p50_ms")
        print(
            f"{name:<30} {row['p50_ms']:>6.2f}ms {row['p99_ms']:>6.2f}ms "
            f"{row['vs_inline_server']:>13.3f}x "
            f"{'-' if waited is None else f'{waited:.3f}ms':>16} "
            f"{'-' if outside is None else f'{outside:.3f}ms':>16}"
        )


def print_targets(checks: list[dict[str, Any]]) -> None:
    print()
    print(f"{'target':<48} {'measured':>9} {'goal':>8}  met")
    verdicts = {True: "yes", False: "NO", None: "undetermined (robot ceiling)"}
    for check in checks:
        measured = f"{'>=' if check['lower_bound'] else ''}{check['measured']:.2f}x"
        print(f"{check['target']:<48} {measured:>9} {check['goal']:>8}  {verdicts[check['met']]}")
