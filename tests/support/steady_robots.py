"""Well-behaved robots that keep running while something else happens to their server.

Each `SteadyRobot` is what a deployment runs: a real `RemoteEngine` over Zenoh, driven by its
own control-loop thread that offers an observation and takes an action every tick. A wrapper
around its link times every round trip (from handing the observation to the link to the chunk
arriving), so a test or a benchmark can compare a quiet window with a hostile one.

`SteadyRobotsProcess` runs a few of them in a process of their own (a benchmark measures the
server's cost, not the robots' share of the interpreter lock); the clock is `time.monotonic_ns`,
which every process on the machine shares, so the parent marks windows with its own clock. A
process can also be killed outright (SIGKILL): its robots vanish without closing anything, as a
robot that loses power does.

`TimedLink` is the one round-trip timer of the repository: `benchmarks.robot_fleet` uses it too.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
import zlib
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from policylink.client import ClientConfig, RemoteEngine, RobotLayout
from policylink.client.link import ClientLink, ReplyHandler
from policylink.client.links.zenoh import ZenohLink
from policylink.wire import (
    ActionChunk,
    CameraSpec,
    ErrorReply,
    Header,
    Observation,
)
from tests.support.forwarding_link import ForwardingLink

# Round trips kept per robot; a long benchmark at 20 requests a second stays far below it.
MAX_ROUND_TRIPS = 200_000
CHILD_TIMEOUT_S = 120.0


class TimedLink(ForwardingLink):
    """A `ClientLink` that passes everything through and times each observation's round trip."""

    def __init__(self, inner: ClientLink) -> None:
        super().__init__(inner)
        # seq_id → send time; written by the engine's worker, popped by the transport's thread.
        self._sent_ns: dict[int, int] = {}
        # (arrival ns, round trip ms) per chunk; appended by the transport's thread only.
        self.round_trips: list[tuple[int, float]] = []

    def connect(self, on_reply: ReplyHandler) -> None:
        def timed(header: Header, msg: ActionChunk | ErrorReply) -> None:
            sent = self._sent_ns.pop(header.seq_id, None)
            if sent is not None and isinstance(msg, ActionChunk):
                now = time.monotonic_ns()
                if len(self.round_trips) < MAX_ROUND_TRIPS:
                    self.round_trips.append((now, (now - sent) / 1e6))
            on_reply(header, msg)

        self._inner.connect(timed)

    def send(self, header: Header, obs: Observation) -> None:
        self._sent_ns[header.seq_id] = time.monotonic_ns()
        self._inner.send(header, obs)

    @property
    def uplink(self) -> object:
        """The inner link's byte counter and JPEG quality, so the engine's stats report them."""
        return getattr(self._inner, "uplink", None)


@dataclass(frozen=True)
class RobotPlan:
    """What a steady robot needs to know: where to dial, and the policy's layout."""

    endpoint: str
    state_dim: int
    cameras: tuple[CameraSpec, ...] = ()
    fps: float = 50.0
    buffer_time_s: float = 0.1
    jpeg_quality: int = 90
    shared_memory: bool = False


class SteadyRobot:
    """One engine and its control loop; the loop thread is owned here and stopped by `stop`.

    A stall is a tick at which `get_action()` returned nothing after the first chunk arrived:
    the buffer ran dry, which a robot would notice.
    """

    def __init__(self, plan: RobotPlan, client_id: str) -> None:
        self.client_id = client_id
        names = tuple(f"joint_{i}" for i in range(plan.state_dim))
        layout = RobotLayout(names, names, plan.cameras)
        config = ClientConfig(
            endpoint=plan.endpoint,
            zenoh_mode="client",
            client_id=client_id,
            fps=plan.fps,
            buffer_time_s=plan.buffer_time_s,
            jpeg_quality=plan.jpeg_quality,
            shared_memory=plan.shared_memory,
            connect_timeout_s=30.0,
        )
        self.link = TimedLink(ZenohLink.from_config(config))
        self.engine = RemoteEngine(config, layout, link=self.link)
        rng = np.random.default_rng(zlib.crc32(client_id.encode()))
        self._obs = Observation(
            state=rng.uniform(-1, 1, plan.state_dim).astype(np.float32),
            images={
                c.name: rng.integers(0, 255, (c.height, c.width, 3), dtype=np.uint8)
                for c in plan.cameras
            },
        )
        self._period_s = 1.0 / plan.fps
        self.ticks = 0
        self.stalls = 0
        self._served = False
        self.session_at_start = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"loop-{client_id}", daemon=True)

    def start(self) -> SteadyRobot:
        self.engine.start()
        self.session_at_start = self.engine.stats.session_id
        self._thread.start()
        return self

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            due += self._period_s
            self.ticks += 1
            self.engine.notify_observation(self._obs)
            if self.engine.get_action() is not None:
                self._served = True
            elif self._served:
                self.stalls += 1

    @property
    def chunks(self) -> int:
        return self.engine.stats.chunks_merged

    def wait_more_chunks(self, count: int, timeout_s: float = 30.0) -> None:
        """A positive event: `count` more chunks merged (so anything else had time to land)."""
        target = self.chunks + count
        deadline = time.monotonic() + timeout_s
        while self.chunks < target:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.client_id} merged {self.chunks} chunks, not {target}, within "
                    f"{timeout_s} s (state {self.engine.state.value})"
                )
            time.sleep(0.01)

    def round_trips_ms(self, since_ns: int = 0, until_ns: int | None = None) -> list[float]:
        end = until_ns if until_ns is not None else time.monotonic_ns()
        return [rtt for at, rtt in list(self.link.round_trips) if since_ns <= at <= end]

    def take_round_trips_ms(self) -> list[float]:
        """Every round trip since the last take, forgotten here: a long run keeps no history.
        (Swapping the list is one step under the interpreter lock; the transport thread's
        append lands in one list or the other.)"""
        taken, self.link.round_trips = self.link.round_trips, []
        return [rtt for _, rtt in taken]

    def summary(self) -> dict[str, Any]:
        stats = self.engine.stats
        return {
            "client_id": self.client_id,
            "state": stats.state.value,
            "session_at_start": self.session_at_start,
            "session_now": stats.session_id,
            "chunks_merged": stats.chunks_merged,
            "chunks_dropped_stale": stats.chunks_dropped_stale,
            "error_replies": stats.error_replies,
            "malformed_replies": stats.malformed_replies,
            "timeouts": stats.timeouts,
            "reconnects": stats.reconnects,
            "requests": stats.requests,
            "bytes_sent": stats.bytes_sent,
            "jpeg_quality": stats.jpeg_quality,
            "ticks": self.ticks,
            "stalls": self.stalls,
        }

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.engine.stop()


def _robots_main(plan: RobotPlan, client_ids: list[str], commands: Connection) -> None:
    """Child process: start the robots, then answer the parent's commands until None."""
    robots: list[SteadyRobot] = []
    try:
        for client_id in client_ids:
            robots.append(SteadyRobot(plan, client_id).start())
        for robot in robots:
            robot.wait_more_chunks(3)
        commands.send([robot.summary() for robot in robots])
        while (command := commands.recv()) is not None:
            verb, *args = command
            if verb == "round_trips":
                since_ns, until_ns = args
                commands.send([robot.round_trips_ms(since_ns, until_ns) for robot in robots])
            elif verb == "take_round_trips":
                commands.send([robot.take_round_trips_ms() for robot in robots])
            elif verb == "summary":
                commands.send([robot.summary() for robot in robots])
            elif verb == "more_chunks":
                count, timeout_s = args
                problems = []
                for robot in robots:
                    try:
                        robot.wait_more_chunks(count, timeout_s)
                    except AssertionError as exc:  # the parent reports it; keep answering
                        problems.append(str(exc))
                commands.send(([robot.summary() for robot in robots], problems))
    finally:
        for robot in robots:
            robot.stop()


class SteadyRobotsProcess:
    """Parent side: `with SteadyRobotsProcess(plan, ids) as robots:` starts them (and waits for
    each one's first chunks); leaving the block stops them."""

    def __init__(self, plan: RobotPlan, client_ids: list[str]) -> None:
        context = multiprocessing.get_context("spawn")
        self._commands, child = context.Pipe()
        self._process = context.Process(
            target=_robots_main, args=(plan, client_ids, child), name="steady-robots", daemon=True
        )
        self.at_start: list[dict[str, Any]] = []

    def __enter__(self) -> SteadyRobotsProcess:
        self._process.start()
        self.at_start = self._receive("start its robots")
        return self

    def _receive(self, what: str) -> Any:
        if not self._commands.poll(CHILD_TIMEOUT_S):
            raise RuntimeError(f"the robot process did not {what} within {CHILD_TIMEOUT_S:g} s")
        return self._commands.recv()

    def round_trips_ms(self, since_ns: int, until_ns: int) -> list[list[float]]:
        """Per robot, the round trips of chunks that arrived in [since_ns, until_ns]."""
        self._commands.send(("round_trips", since_ns, until_ns))
        return self._receive("report round trips")

    @property
    def pid(self) -> int:
        assert self._process.pid is not None, "the robot process has not started"
        return self._process.pid

    def take_round_trips_ms(self) -> list[list[float]]:
        """Per robot, every round trip since the last take (the child forgets them)."""
        self._commands.send(("take_round_trips",))
        return self._receive("report round trips")

    def kill(self) -> None:
        """SIGKILL: the robots vanish mid-stream; no session close, no goodbye."""
        if self._process.is_alive():
            os.kill(self.pid, signal.SIGKILL)
            self._process.join(30)

    def summary(self) -> list[dict[str, Any]]:
        self._commands.send(("summary",))
        return self._receive("report")

    def more_chunks(
        self, count: int, timeout_s: float = 30.0
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Waits until every robot merged `count` more chunks (or `timeout_s` passed); their
        summaries then, and a line for each robot that did not get them."""
        self._commands.send(("more_chunks", count, timeout_s))
        return self._receive(f"merge {count} more chunks per robot")

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):  # the child is already gone
            self._commands.send(None)
        self._process.join(30)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
