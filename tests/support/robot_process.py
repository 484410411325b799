"""A marked robot in a process of its own, reporting every tick as a JSON line.

Chaos tests kill, hang and restart servers and routers; the robot must live through it in
its own process, as it does on a real machine, so nothing the test process does (a slow
start-up, a blocked pipe) can delay its control loop, and nothing the robot does can hide a
fault from the test. The child is `python -m tests.support.robot_process SPEC OUT`: a real
`RemoteEngine` over Zenoh driving the marked robot of `tests.scaleout.fleet` (`state =
[robot, tick]`, actions `[marker, robot, obs_tick, row]`) at `FPS` on a fixed schedule. Its
lines, appended and flushed to OUT as they happen:

    {"k": "tick", "n": tick, "at": monotonic s, "ms": get_action() ms, "a": row or null}
    {"k": "state", "at": s, "state": "...", "reason": "..."}   every engine transition
    {"k": "sent", "at": s, "seq": n}                            an observation handed over
    {"k": "got", "at": s, "seq": n, "marker": m, "obs": t}      a chunk arrived at the link

`time.monotonic` is the machine's clock for every process, so the parent sets its own
instants (a signal sent, a server serving) beside the robot's. The parent's `RobotProcess`
reads the lines back, waits on them and audits what the robot executed (`audit`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policylink.client.link import ReplyHandler
from policylink.client.links.zenoh import ZenohLink
from policylink.net.processes import terminate
from policylink.wire import (
    ActionChunk,
    ErrorReply,
    Header,
    Observation,
)
from tests.support.action_audit import ActionAudit
from tests.support.forwarding_link import ForwardingLink
from tests.support.server_process import REPO

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
# The audit dates an observation by the start of its tick; the engine by the moment the loop
# hands it over, a little later in that tick. An action the engine plays at exactly its age
# limit can therefore look a few microseconds older here.
AGE_SLACK_S = 0.002


@dataclass(frozen=True)
class Tick:
    n: int
    at_s: float
    get_action_ms: float
    action: tuple[int, int, int, int] | None


@dataclass(frozen=True)
class StateChange:
    at_s: float
    state: str
    reason: str


@dataclass(frozen=True)
class Received:
    """A chunk that reached the robot: its request, its server, the tick it was computed for."""

    at_s: float
    seq_id: int
    marker: int
    obs_tick: int


@dataclass
class RobotAudit(ActionAudit):
    """One robot's audit (`ActionAudit`), with the age of its oldest action."""

    oldest_action_s: float = 0.0


class RobotProcess:
    """Parent side: the child starts at once; `wait_started()` blocks until its session is
    open and its loop ticks. `stop()` ends it (SIGTERM: the engine closes its session)."""

    def __init__(self, workdir: Path, index: int, endpoint: str, **config: Any) -> None:
        self.index = index
        self.out_path = workdir / f"robot-{index}.jsonl"
        self.stderr_path = workdir / f"robot-{index}.err"
        self.max_action_age_s = float(config.get("max_action_age_s", 3.0))
        spec = json.dumps({"index": index, "endpoint": endpoint, "config": config})
        with self.stderr_path.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.support.robot_process", spec, str(self.out_path)],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.ticks: list[Tick] = []
        self.states: list[StateChange] = []
        self.sent: dict[int, float] = {}
        self.received: list[Received] = []
        self._offset = 0

    def read(self) -> RobotProcess:
        """Take in the lines written since the last read (a partial last line waits)."""
        if not self.out_path.exists():
            return self
        with self.out_path.open("rb") as lines:
            lines.seek(self._offset)
            data = lines.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        for line in data[:end].splitlines():
            self._take(json.loads(line))
        return self

    def _take(self, line: dict[str, Any]) -> None:
        kind, at_s = line["k"], line["at"]
        if kind == "tick":
            action = line["a"]
            self.ticks.append(
                Tick(line["n"], at_s, line["ms"], None if action is None else tuple(action))
            )
        elif kind == "state":
            self.states.append(StateChange(at_s, line["state"], line["reason"]))
        elif kind == "sent":
            self.sent[line["seq"]] = at_s
        elif kind == "got":
            self.received.append(Received(at_s, line["seq"], line["marker"], line["obs"]))

    @property
    def state(self) -> str:
        return self.read().states[-1].state if self.states else "idle"

    def wait(
        self, condition: Callable[[RobotProcess], object], timeout_s: float, what: str
    ) -> None:
        """Until `condition(self)` holds on what the child reported; fails naming `what`, the
        robot's last state and its stderr's tail if the child died or the deadline passed."""
        deadline = time.monotonic() + timeout_s
        while not condition(self.read()):
            died = self.process.poll() is not None
            if died or time.monotonic() > deadline:
                why = f"exited {self.process.returncode}" if died else f"not within {timeout_s} s"
                tail = self.stderr_path.read_text()[-2000:]
                raise AssertionError(
                    f"robot-{self.index}: {what}: {why}; state {self.state}; stderr: {tail}"
                )
            time.sleep(0.01)

    def wait_started(self) -> RobotProcess:
        self.wait(lambda r: r.executed_since(0.0), START_TIMEOUT_S, "its first action")
        return self

    def executed_since(self, at_s: float) -> list[Tick]:
        return [t for t in self.ticks if t.action is not None and t.at_s >= at_s]

    def first_fresh_action(self, since_s: float) -> Tick | None:
        """The first executed action computed from an observation offered at or after
        `since_s`: the robot is served again, not playing what it had buffered."""
        offered = {t.n: t.at_s for t in self.ticks}
        for tick in self.executed_since(since_s):
            assert tick.action is not None
            if offered.get(tick.action[2], 0.0) >= since_s:
                return tick
        return None

    def state_at(self, state: str, since_s: float = 0.0) -> StateChange | None:
        """The first move into `state` at or after `since_s`."""
        return next((s for s in self.states if s.state == state and s.at_s >= since_s), None)

    def audit(self, revision_of: Callable[[int], str | None]) -> RobotAudit:
        """Every executed action checked (see `RobotAudit`), and every `get_action()` timed."""
        self.read()
        result = RobotAudit()
        tick_at = {t.n: t.at_s for t in self.ticks}
        expected = ""
        left: set[int] = set()
        current: int | None = None
        for tick in self.ticks:
            if tick.action is None:
                continue
            marker, robot, obs_tick, row = tick.action
            result.executed += 1
            revision = revision_of(marker)
            if result.executed == 1:
                expected = revision or ""
            if revision is None or revision != expected:
                result.bad_wrong_model += 1
                result.worst.append(f"tick {tick.n}: marker {marker} is revision {revision}")
            if robot != self.index:
                result.bad_wrong_robot += 1
                result.worst.append(f"tick {tick.n}: computed for robot {robot}")
            age_s = tick.at_s - tick_at.get(obs_tick, tick.at_s)
            result.oldest_action_s = max(result.oldest_action_s, age_s)
            if age_s > self.max_action_age_s + AGE_SLACK_S:
                result.bad_too_old += 1
                result.worst.append(f"tick {tick.n}: {age_s:.2f} s old (row {row})")
            if marker in left:
                result.bad_stale_session += 1
                result.worst.append(f"tick {tick.n}: marker {marker}, a server it left")
            if current is not None and marker != current:
                left.add(current)
            current = marker
        result.worst = result.worst[:5]
        durations = [t.get_action_ms for t in self.ticks]
        result.get_action_calls = len(durations)
        if durations:
            result.get_action_max_ms = max(durations)
            result.get_action_p99_ms = float(np.percentile(durations, 99))
        return result

    def stop(self) -> None:
        terminate(self.process, STOP_TIMEOUT_S, kill_timeout_s=STOP_TIMEOUT_S)
        self.read()


class RecordingLink(ForwardingLink):
    """A Zenoh link that reports every observation handed over and every chunk that arrives
    (before the engine decides whether to merge it): a drain test proves with it that each
    request the server answered reached the robot. It passes the presence watch and the
    placement through, so the engine behaves as it does over the bare link."""

    _inner: ZenohLink

    def __init__(self, inner: ZenohLink, write: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(inner)
        self._write = write

    @property
    def replica(self) -> str | None:
        return self._inner.replica

    def watch_presence(self, listener: Callable[[], None]) -> None:
        self._inner.watch_presence(listener)

    def connect(self, on_reply: ReplyHandler) -> None:
        def recorded(header: Header, msg: ActionChunk | ErrorReply) -> None:
            if isinstance(msg, ActionChunk):
                marker, _, obs_tick, _ = (int(v) for v in msg.chunk_robot[0])
                at_s, seq_id = time.monotonic(), header.seq_id
                self._write(
                    {"k": "got", "at": at_s, "seq": seq_id, "marker": marker, "obs": obs_tick}
                )
            on_reply(header, msg)

        self._inner.connect(recorded)

    def send(self, header: Header, obs: Observation) -> None:
        self._write({"k": "sent", "at": time.monotonic(), "seq": header.seq_id})
        self._inner.send(header, obs)


def _main(spec_json: str, out_path: str) -> None:
    """The child: a marked robot ticking until SIGTERM, every event a flushed line."""
    from policylink.client import RemoteEngine
    from tests.scaleout.fleet import FPS, LAYOUT, robot_config

    spec = json.loads(spec_json)
    index = spec["index"]
    config = robot_config(spec["endpoint"], index, **spec["config"])
    out = Path(out_path).open("a")  # noqa: SIM115 (open for the life of the process)
    lock = threading.Lock()  # guards `out`: the loop, the link's thread and the state watcher

    def write(line: dict[str, Any]) -> None:
        text = json.dumps(line) + "\n"
        with lock:
            out.write(text)
            out.flush()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    link = RecordingLink(ZenohLink.from_config(config), write)
    engine = RemoteEngine(config, LAYOUT, link=link)
    seen = 0.0
    try:
        engine.start()
        period_s = 1.0 / FPS
        started = time.monotonic()
        tick = 0
        while not stop.is_set():
            wait = started + tick * period_s - time.monotonic()
            if wait > 0 and stop.wait(wait):
                break
            at_s = time.monotonic()
            engine.notify_observation(Observation(state=np.array([index, tick], np.float32)))
            began = time.perf_counter()
            action = engine.get_action()
            took_ms = 1e3 * (time.perf_counter() - began)
            row = None if action is None else [int(v) for v in action]
            write({"k": "tick", "n": tick, "at": at_s, "ms": took_ms, "a": row})
            seen = _write_states(engine, seen, write)
            tick += 1
    finally:
        engine.stop()
        _write_states(engine, seen, write)
        out.close()


def _write_states(engine: Any, since_s: float, write: Callable[[dict[str, Any]], None]) -> float:
    """Write the transitions after `since_s` (the engine keeps its last 256, so an index into
    them would drift); returns the instant of the last one written."""
    for t in engine.transitions():
        if t.at_s > since_s:
            write({"k": "state", "at": t.at_s, "state": t.state.value, "reason": t.reason})
            since_s = t.at_s
    return since_s


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])
