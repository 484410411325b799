"""Simulated robots for load tests: real `RemoteEngine`s over Zenoh, in a process of their own.

Each robot is what a deployment runs: a `RemoteEngine` with its own Zenoh link and worker
thread, driven by a control loop at its own rate that offers an observation and takes an
action every tick. One ticking thread drives every robot of the process from a due-time heap:
the engines cannot tell it from a thread per robot, and on a 2-core machine it saves a thread
wake-up per robot per tick that would otherwise be charged to the robots, not the server.

A stall is a tick at which `get_action()` returned the fallback after the robot's first chunk
had arrived: its buffer ran dry. A step (`FleetProcess.open_window(count, …)`) first grows or
shrinks the fleet to `count` robots (robot i always runs at `plan.rates[i % len(rates)]`, so
a fleet of any size has the same mix), then reports what happened from then on: stalls,
robots that never got a chunk, every request's round trip (from before the observation is
encoded to the decoded chunk, timed by a wrapper around the robot's real link), how late
ticks ran and the CPU this process used, which says whether the robots, rather than the
server, ran out of machine.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import multiprocessing
import resource
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from policylink.wire.messages import Observation
from tests.support.steady_robots import TimedLink

# A step grows the fleet (a handshake per robot) and measures; past this it is hung.
STEP_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class FleetPlan:
    """What every robot of one fleet shares: where the server is, rates, and how it buffers."""

    endpoint: str
    model_id: str
    state_dim: int
    buffer_time_s: float
    rates: tuple[float, ...] = (30.0,)
    # Robots attach as Zenoh clients of the server: as peers, each would also link to every
    # other robot the server gossips about, a mesh no real fleet on separate machines builds.
    zenoh_mode: str = "client"


@dataclass(eq=False)
class Robot:
    """One engine and its control loop's counters, which only the ticking thread writes."""

    engine: Any
    link: TimedLink
    fps: float
    obs: Observation
    ticks: int = 0
    stalls: int = 0
    served: bool = False
    active: bool = True

    def tick(self) -> None:
        self.ticks += 1
        self.engine.notify_observation(self.obs)
        if self.engine.get_action() is not None:
            self.served = True
        elif self.served:
            self.stalls += 1


class Ticker:
    """The one thread that runs every robot's control loop, each tick at its own due time.

    A tick that runs late is not skipped: the next one stays due on the robot's own schedule,
    so every robot gets its rate's ticks and a client short of CPU shows up as lateness.
    """

    def __init__(self) -> None:
        # Guards _heap, the (due ns, tiebreak, robot) entries; a robot taken out of the fleet
        # is marked inactive and its entry dropped when it comes due.
        self._lock = threading.Lock()
        self._heap: list[tuple[int, int, Robot]] = []
        self._order = itertools.count()
        # Tick lateness in ms since the last `take_lateness`; appended by the thread only.
        self._lateness: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleet-ticker", daemon=True)
        self._thread.start()

    def add(self, robot: Robot) -> None:
        with self._lock:
            heapq.heappush(self._heap, (time.monotonic_ns(), next(self._order), robot))

    def take_lateness(self) -> list[float]:
        taken, self._lateness = self._lateness, []
        return taken

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                due = self._heap[0][0] if self._heap else time.monotonic_ns() + 10_000_000
            late_ns = time.monotonic_ns() - due
            if late_ns < 0:
                self._stop.wait(-late_ns / 1e9)
                continue
            with self._lock:
                _, _, robot = heapq.heappop(self._heap)
                if robot.active:
                    next_due = due + round(1e9 / robot.fps)
                    heapq.heappush(self._heap, (next_due, next(self._order), robot))
            if robot.active:
                self._lateness.append(late_ns / 1e6)
                robot.tick()


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class RobotFleet:
    """The robots of one process: the child's side of `FleetProcess`."""

    def __init__(self, plan: FleetPlan) -> None:
        self.plan = plan
        self.robots: list[Robot] = []
        self.ticker = Ticker()

    def resize(self, count: int) -> None:
        """Start robots (each handshakes before it joins the loop) or stop the newest ones."""
        while len(self.robots) > count:
            robot = self.robots.pop()
            robot.active = False
            robot.engine.stop()
        while len(self.robots) < count:
            robot = self._start_robot(len(self.robots))
            self.robots.append(robot)
            self.ticker.add(robot)

    def _start_robot(self, index: int) -> Robot:
        from policylink.client import ClientConfig, RemoteEngine, RobotLayout
        from policylink.client.links.zenoh import ZenohLink

        plan, dim = self.plan, self.plan.state_dim
        fps = plan.rates[index % len(plan.rates)]
        config = ClientConfig(
            endpoint=plan.endpoint,
            zenoh_mode=plan.zenoh_mode,
            client_id=f"robot-{index}",
            model_id=plan.model_id,
            fps=fps,
            buffer_time_s=plan.buffer_time_s,
        )
        layout = RobotLayout(
            tuple(f"joint_{i}" for i in range(dim)), tuple(f"state_{i}" for i in range(dim))
        )
        link = TimedLink(ZenohLink.from_config(config))
        engine = RemoteEngine(config, layout, link=link)
        engine.start()
        state = np.random.default_rng(index).standard_normal(dim).astype(np.float32)
        return Robot(engine, link, fps, Observation(state=state))

    def step(
        self, count: int, settle_s: float, seconds: float, opened: Connection
    ) -> dict[str, Any]:
        """Resize to `count`, settle, then measure for `seconds` (telling `opened` when the
        window opens). Stalls count from the step's start, resizing and settling included:
        robots joining or leaving is part of what the fleet must ride out."""
        stalls_before = {robot: robot.stalls for robot in self.robots}
        self.resize(count)
        time.sleep(settle_s)
        robots = list(self.robots)
        window_ns = time.monotonic_ns()
        trips_before = [len(r.link.round_trips) for r in robots]
        self.ticker.take_lateness()
        cpu_before = _cpu_s()
        opened.send("window open")
        time.sleep(seconds)
        cpu = _cpu_s() - cpu_before
        lateness = self.ticker.take_lateness()
        round_trips = [
            rtt
            for robot, before in zip(robots, trips_before, strict=True)
            for arrived, rtt in robot.link.round_trips[before:]
            if arrived >= window_ns
        ]
        stalls = [r.stalls - stalls_before.get(r, 0) for r in robots]
        return {
            "robots": len(robots),
            "stall_ticks": sum(stalls),
            "robots_stalled": sum(s > 0 for s in stalls),
            "stalled_at_hz": sorted({r.fps for r, s in zip(robots, stalls, strict=True) if s}),
            "never_served": sum(not r.served for r in robots),
            "round_trips_ms": round_trips,
            "tick_late_p99_ms": float(np.percentile(lateness, 99)) if lateness else 0.0,
            "client_cpu_cores": cpu / seconds,
        }

    def close(self) -> None:
        self.ticker.stop()
        self.resize(0)


def _fleet_main(plan: FleetPlan, commands: Connection) -> None:
    """Child process: resize and measure on command, until told to stop (None)."""
    fleet = RobotFleet(plan)
    try:
        while (command := commands.recv()) is not None:
            count, settle_s, seconds = command
            commands.send(fleet.step(count, settle_s, seconds, commands))
    finally:
        fleet.close()


class FleetProcess:
    """Parent side: a robot process, resized step by step, stopped on exit.

    A step is `open_window(count, settle_s, seconds)`, which returns once the measured window
    has opened (so the caller can mark the server's side of the same window), then
    `results()`, which waits for the window to close.
    """

    def __init__(self, plan: FleetPlan) -> None:
        context = multiprocessing.get_context("spawn")
        self._commands, child = context.Pipe()
        self._process = context.Process(
            target=_fleet_main, args=(plan, child), name="bench-robots", daemon=True
        )

    def __enter__(self) -> FleetProcess:
        self._process.start()
        return self

    def open_window(self, count: int, settle_s: float, seconds: float) -> None:
        self._commands.send((count, settle_s, seconds))
        self._receive("open its window")

    def results(self) -> dict[str, Any]:
        return self._receive("finish its window")

    def _receive(self, what: str) -> Any:
        if not self._commands.poll(STEP_TIMEOUT_S):
            raise RuntimeError(f"the robot process did not {what} within {STEP_TIMEOUT_S:g} s")
        return self._commands.recv()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):  # the child is already gone
            self._commands.send(None)
        self._process.join(120)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
