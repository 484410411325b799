"""Robots as a deployment runs them, and an audit of every action they executed.

Each robot is a real `RemoteEngine` with its own Zenoh link (a client of a router) and worker
thread. One control thread ticks every robot at `FPS` on a fixed schedule (a late tick is run
late, never skipped): it offers `state = [robot, tick]` and takes one action, timing each
`get_action()` call on its own. What the robots executed is then audited against the
marked policy's rows `[marker, robot, obs_tick, row]` (`tests.scaleout.policies`):

- wrong model: the marker names a replica of another revision than the robot's;
- wrong robot: the row was computed from another robot's observation;
- too old: the observation behind it is older than the engine's `max_action_age_s`;
- stale session: it came from a replica the robot had already moved away from (a late chunk
  of a lost session, merged after the new one's);
- stall: a tick at which `get_action()` returned the fallback after the robot's first action.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from policylink.client import ClientConfig, EngineState, RemoteEngine, RobotLayout
from policylink.client.links.zenoh import ZenohLink
from policylink.wire import Observation
from tests.scaleout.cluster import LEASE_MS, MODEL_ID
from tests.scaleout.policies import ACTION_NAMES, STATE_NAMES
from tests.support.action_audit import ActionAudit

FPS = 30.0
# The loop offers tick n's observation, then takes tick n's action from what is buffered, so a
# chunk computed from that observation acts from tick n + 1 on: an action exactly on time (real-
# time chunking trimmed just the steps its round trip took) executes at obs_tick + row + 1.
ON_TIME_TICKS = 1
LAYOUT = RobotLayout(ACTION_NAMES, STATE_NAMES)
# What every robot of these tests runs with: half a second of buffered playback (the
# engine's default), hold as the fallback, and a quick retry while no replica takes it.
ROBOT_CONFIG: dict[str, Any] = {
    "zenoh_mode": "client",
    "model_id": MODEL_ID,
    "fps": FPS,
    "buffer_time_s": 0.5,
    "fallback": "hold",
    "lease_ms": LEASE_MS,
    "handshake_timeout_s": 2.0,
    "connect_timeout_s": 30.0,
    "reconnect_initial_backoff_s": 0.05,
    "reconnect_max_backoff_s": 0.5,
}


@dataclass(frozen=True)
class Executed:
    """One action a robot executed: at which tick, and what its row says about its origin."""

    tick: int
    marker: int
    robot: int
    obs_tick: int
    row: int


def robot_config(endpoint: str, index: int, revision: str = "", **config: Any) -> ClientConfig:
    """Robot `index` (client id `robot-<index>`) of these tests, dialling `endpoint`."""
    options = {**ROBOT_CONFIG, **config}
    return ClientConfig(endpoint=endpoint, client_id=f"robot-{index}", revision=revision, **options)


class MarkedRobot:
    """One engine and what its control loop saw; only the control thread writes the records
    (list appends are atomic, so a test may read them while the loop runs)."""

    def __init__(
        self, index: int, config: ClientConfig, link_type: type[ZenohLink] = ZenohLink
    ) -> None:
        self.index = index
        self.config = config
        self.link = link_type.from_config(config)
        self.engine = RemoteEngine(config, LAYOUT, link=self.link)
        self.executed: list[Executed] = []
        self.stall_ticks: list[int] = []
        self.get_action_s: list[float] = []

    @property
    def replica(self) -> str | None:
        """The replica the robot's session is open on (the link's placement)."""
        return self.link.replica

    def tick(self, tick: int) -> None:
        self.engine.notify_observation(Observation(state=np.array([self.index, tick], np.float32)))
        began = time.perf_counter()
        action = self.engine.get_action()
        self.get_action_s.append(time.perf_counter() - began)
        if action is None:
            if self.executed:
                self.stall_ticks.append(tick)
            return
        self.executed.append(Executed(tick, *(int(value) for value in action)))

    def markers_since(self, tick: int) -> set[int]:
        return {e.marker for e in self.executed if e.tick >= tick}


@dataclass(frozen=True)
class Replacement:
    """Seconds from the loss of a robot's replica (the signal sent to it) until the robot
    noticed, until its session was open on another replica, and until it executed its first
    action from there."""

    noticed_s: float
    reopened_s: float
    first_action_s: float


@dataclass
class Audit(ActionAudit):
    """A fleet's audit (`ActionAudit`), summed over its robots, with how long they stalled."""

    stall_ticks: int = 0
    robots_stalled: int = 0
    # The most ticks any action executed after the tick it was computed for (0: all on time).
    late_ticks_max: int = 0


class Fleet:
    """Robots started one by one (each places itself as it starts), then ticked together by
    one named control thread until `stop()`, which also stops every engine."""

    def __init__(self) -> None:
        self.robots: list[MarkedRobot] = []
        # Monotonic instant of every tick, by tick number; appended by the control thread.
        self.tick_at_s: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scaleout-control-loop", daemon=True)

    def start_robot(self, endpoint: str, revision: str = "", **config: Any) -> MarkedRobot:
        """A started robot (its session open: placed), not yet ticked if the loop runs."""
        if self._thread.is_alive():
            raise RuntimeError("start every robot before the control loop")
        index = len(self.robots)
        robot = MarkedRobot(index, robot_config(endpoint, index, revision, **config))
        self.robots.append(robot)
        robot.engine.start()
        return robot

    def start_together(self, endpoints: Sequence[str]) -> list[MarkedRobot]:
        """One robot per endpoint given, all starting at the same moment (a fleet powering
        up): each reads the replicas' statuses before the others' sessions show in them."""
        if self._thread.is_alive():
            raise RuntimeError("start every robot before the control loop")
        first = len(self.robots)
        robots = [
            MarkedRobot(first + i, robot_config(endpoint, first + i))
            for i, endpoint in enumerate(endpoints)
        ]
        self.robots += robots
        errors: list[Exception] = []

        def start(robot: MarkedRobot) -> None:
            try:
                robot.engine.start()
            except Exception as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=start, args=(robot,), name=f"start-robot-{robot.index}")
            for robot in robots
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        if errors:
            raise errors[0]
        return robots

    def start_loop(self) -> None:
        self._thread.start()

    @property
    def tick(self) -> int:
        """The number of the next tick."""
        return len(self.tick_at_s)

    def tick_at(self, at_s: float) -> int:
        """The first tick at or after the monotonic instant `at_s`."""
        return next((i for i, t in enumerate(self.tick_at_s) if t >= at_s), self.tick)

    def run_ticks(self, ticks: int, timeout_s: float = 60.0) -> None:
        """Wait (the loop runs meanwhile) until `ticks` more ticks have run."""
        self.run_until(lambda: True, ticks, timeout_s, f"{ticks} ticks")

    def run_until(
        self, condition: Callable[[], object], min_ticks: int, timeout_s: float, what: str
    ) -> None:
        """Wait until at least `min_ticks` more ticks ran and `condition()` holds."""
        target = self.tick + min_ticks
        deadline = time.monotonic() + timeout_s
        while not (self.tick >= target and condition()):
            if not self._thread.is_alive():
                raise AssertionError(f"the control loop died while waiting for {what}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        for robot in self.robots:
            robot.engine.stop()

    def moved_off(self, robots: list[MarkedRobot], marker: int, since_s: float) -> bool:
        """Whether every one of `robots` executed, since `since_s`, an action from a replica
        other than the one that marks its rows with `marker`."""
        tick = self.tick_at(since_s)
        return all(robot.markers_since(tick) - {marker} for robot in robots)

    def placement(self) -> Counter[str | None]:
        """How many robots each replica holds, from the robots' own links."""
        return Counter(robot.replica for robot in self.robots)

    def audit(self, revision_of: Callable[[int], str | None]) -> Audit:
        """Every executed action checked (see the module docstring). `revision_of` maps a
        marker to its replica's revision; a robot's own is the one of its first action."""
        result = Audit()
        durations: list[float] = []
        max_age_s = max(robot.config.max_action_age_s for robot in self.robots)
        for robot in self.robots:
            durations += robot.get_action_s
            result.stall_ticks += len(robot.stall_ticks)
            result.robots_stalled += bool(robot.stall_ticks)
            expected: str | None = None
            first = True
            left: set[int] = set()
            current: int | None = None
            for action in robot.executed:
                result.executed += 1
                if first:
                    expected, first = revision_of(action.marker), False
                if revision_of(action.marker) != expected:
                    result.bad_wrong_model += 1
                    result.worst.append(f"robot-{robot.index} wrong model: {action}")
                if action.robot != robot.index:
                    result.bad_wrong_robot += 1
                    result.worst.append(f"robot-{robot.index} wrong robot: {action}")
                late = action.tick - (action.obs_tick + action.row) - ON_TIME_TICKS
                result.late_ticks_max = max(result.late_ticks_max, late)
                age_s = self.tick_at_s[action.tick] - self.tick_at_s[action.obs_tick]
                if age_s > max_age_s:
                    result.bad_too_old += 1
                    result.worst.append(f"robot-{robot.index} {age_s:.2f} s old: {action}")
                if action.marker in left:
                    result.bad_stale_session += 1
                    result.worst.append(f"robot-{robot.index} from a replica it left: {action}")
                if current is not None and action.marker != current:
                    left.add(current)
                current = action.marker
        result.worst = result.worst[:5]
        result.get_action_calls = len(durations)
        if durations:
            result.get_action_max_ms = 1e3 * max(durations)
            result.get_action_p99_ms = 1e3 * float(np.percentile(durations, 99))
        return result

    def replacement(self, robot: MarkedRobot, since_s: float) -> Replacement | None:
        """How long after `since_s` the robot noticed it had lost its replica, had a session
        open again (placed), and executed its first action from the new replica; None if it
        did not move."""
        first_tick = self.tick_at(since_s)
        before = [e.marker for e in robot.executed if e.tick < first_tick]
        if not before:
            return None
        moved = next(
            (e for e in robot.executed if e.tick >= first_tick and e.marker != before[-1]), None
        )
        after = [t for t in robot.engine.transitions() if t.at_s >= since_s]
        reopened = next((t.at_s for t in after if t.state is EngineState.STREAMING), None)
        if moved is None or reopened is None:
            return None
        return Replacement(
            after[0].at_s - since_s, reopened - since_s, self.tick_at_s[moved.tick] - since_s
        )

    def _run(self) -> None:
        period_s = 1.0 / FPS
        started = time.monotonic()
        while not self._stop.is_set():
            due = started + len(self.tick_at_s) * period_s
            wait = due - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                return
            tick = len(self.tick_at_s)
            self.tick_at_s.append(time.monotonic())
            for robot in self.robots:
                robot.tick(tick)
