"""`policylink run`: the robot side. One robot, one engine, the control loop at a fixed rate.

Robots with episodes (the simulated ones) run episode after episode, with an engine reset at
each boundary; any other robot runs until `--duration` or Ctrl-C. Before the robot moves, the
session must open: an unreachable endpoint, a namespace nobody serves (the error lists what
is served) or a refused session ends the command with exit code 2.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import typer

from policylink.client.robot import Robot

if TYPE_CHECKING:
    from policylink.client import ClientConfig, Engine, LoopStats
    from policylink.episodes import Recorder
    from policylink.episodes.recorder import EpisodeRecording

ENGINES = ("async", "sync")


class EpisodeOutcome(Protocol):
    success: bool

    def describe(self) -> str: ...


@runtime_checkable
class EpisodicRobot(Robot, Protocol):
    """A robot that knows its episodes (the simulated ones): `reset` starts the next one."""

    results: list[EpisodeOutcome]

    @property
    def episode_done(self) -> bool: ...

    def reset(self) -> None: ...


def _fail(message: str, code: int = 2, command: str = "run") -> typer.Exit:
    typer.echo(f"policylink {command}: {message}", err=True)
    return typer.Exit(code)


def run(
    *,
    robot: str = typer.Option(
        ..., "--robot", help="sim:<task>, gym:<env id>, lerobot:<type> or package.module:function"
    ),
    connect: str = typer.Option(
        "tcp/127.0.0.1:7447", "--connect", "-c", help="Zenoh endpoint of the server or router."
    ),
    zenoh_mode: str = typer.Option("peer", "--zenoh-mode", help="peer | client (via a router)"),
    fps: float | None = typer.Option(None, "--fps", help="Control rate; default the robot's."),
    engine: str = typer.Option("async", "--engine", help="async (RemoteEngine) | sync"),
    episodes: int = typer.Option(0, "--episodes", min=0, help="Episodes to run; 0 = no limit."),
    duration_s: float | None = typer.Option(None, "--duration", min=0.0, help="Seconds to run."),
    model_id: str = typer.Option("", "--model-id", help="Served model (default: any)."),
    revision: str = typer.Option("", "--revision", help="Served revision (default: any)."),
    task_slug: str = typer.Option("", "--task-slug", help="Served task slug (default: any)."),
    client_id: str = typer.Option("", "--client-id", help="Stable id (default: random)."),
    task: str = typer.Option("", "--task", help="Task instruction sent with observations."),
    buffer_s: float = typer.Option(0.5, "--buffer-s", min=0.0, help="Request below this."),
    connect_timeout_s: float = typer.Option(
        10.0, "--connect-timeout", min=0.1, help="Seconds to keep trying to reach the server."
    ),
    fallback: str = typer.Option("hold", "--fallback", help="hold | repeat_last | zero"),
    jpeg_quality: int = typer.Option(90, "--jpeg-quality", help="1..100; 0 sends raw images."),
    robot_options: list[str] | None = typer.Option(
        None, "--robot-option", "-o", help="Robot option key=value (YAML value); repeatable."
    ),
    robot_plugins: list[str] | None = typer.Option(
        None, "--robot-plugin", help="Module to import first (registers LeRobot robot types)."
    ),
    rename_map: str = typer.Option(
        "", "--rename-map", help='JSON map of robot keys to policy keys, e.g. {"front": "top"}'
    ),
    tls_root_ca: str | None = typer.Option(None, "--tls-root-ca", help="CA certificate (PEM)."),
    tls_cert: str | None = typer.Option(None, "--tls-cert", help="Client certificate (PEM)."),
    tls_key: str | None = typer.Option(None, "--tls-key", help="Client private key (PEM)."),
    record: Path | None = typer.Option(
        None, "--record", help="Record every episode (videos, ticks, provenance) into DIR."
    ),
) -> None:
    """Run a robot's control loop against a remote policylink server."""
    from policylink.cli.robots import make_robot, parse_options
    from policylink.client import ClientConfig

    if engine not in ENGINES:
        raise _fail(f"--engine {engine!r}: use one of {', '.join(ENGINES)}")
    try:
        renames = json.loads(rename_map) if rename_map else {}
        if not isinstance(renames, dict):
            raise ValueError("--rename-map must be a JSON object")
        the_robot = make_robot(
            robot,
            parse_options(robot_options or []),
            plugins=robot_plugins or [],
            rename_map=renames,
        )
        rate = fps or float(getattr(getattr(the_robot, "task", None), "fps", 30.0))
        config = ClientConfig(
            endpoint=connect,
            zenoh_mode=zenoh_mode,
            tls_root_ca=tls_root_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            model_id=model_id,
            revision=revision,
            task_slug=task_slug,
            client_id=client_id,
            task=task,
            fps=rate,
            jpeg_quality=jpeg_quality,
            buffer_time_s=buffer_s,
            fallback=fallback,
            connect_timeout_s=connect_timeout_s,
        )
    except ValueError as exc:  # JSONDecodeError included
        raise _fail(str(exc)) from None
    _drive(the_robot, config, engine, episodes, duration_s, record=record)


def _drive(
    robot: Robot,
    config: ClientConfig,
    engine_kind: str,
    episodes: int,
    duration_s: float | None,
    *,
    record: Path | None = None,
    command: str = "run",
) -> None:
    """Runs `robot` against the server until its episodes or `duration_s` end; `command`
    names the CLI command in error messages (`rollout` shares this loop)."""
    from policylink.client import RemoteEngine, RobotLayout, SyncEngine
    from policylink.client.handshake import HandshakeError
    from policylink.client.link import ServerUnreachable

    layout = RobotLayout.of(robot)
    engine_type = RemoteEngine if engine_kind == "async" else SyncEngine
    engine = engine_type(config, layout)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        engine.start()
    except ServerUnreachable as exc:
        raise _fail(f"{exc}{_what_is_served(config)}", command=command) from None
    except HandshakeError as exc:
        raise _fail(f"the server refused this robot: {exc}", command=command) from None
    typer.echo(f"{config.client_id}: {engine.transitions()[-1].reason}")
    recorder = None if record is None else _recorder(record, robot, config)
    session = _Session(robot, engine, config, stop, duration_s, recorder=recorder)
    try:
        if not getattr(robot, "is_connected", False):
            robot.connect()
        if isinstance(robot, EpisodicRobot):
            stats = session.episodic(robot, episodes)
        else:
            stats = session.continuous()
    finally:
        engine.stop()
        robot.disconnect()
        if recorder is not None:
            recorder.close()
            typer.echo(f"{config.client_id}: recorded into {record}")
    typer.echo(
        f"{config.client_id}: {stats.ticks} ticks, {stats.actions_sent} actions, "
        f"{stats.held_ticks} held, {stats.skipped_ticks} overrun ({stats.stopped_because})"
    )
    if engine.failed:
        raise _fail(f"the engine died: {engine.transitions()[-1].reason}", 1, command)


def _recorder(folder: Path, robot: Robot, config: ClientConfig) -> Recorder:
    from dataclasses import asdict

    from policylink.client import RobotLayout
    from policylink.episodes import Recorder

    try:
        return Recorder(
            folder,
            RobotLayout.of(robot),
            fps=config.fps,
            robot=config.client_id,
            client=asdict(config),
            fallback=config.fallback.value,
        )
    except (ImportError, ValueError, OSError) as exc:
        raise _fail(f"--record {folder}: {exc}") from None


class _Session:
    """One robot and its started engine, run until a limit or `stop` (set by SIGINT/SIGTERM).

    With a recorder, each episode (a continuous run is one) is recorded as it runs.
    """

    def __init__(
        self,
        robot: Robot,
        engine: Engine,
        config: ClientConfig,
        stop: threading.Event,
        duration_s: float | None,
        *,
        recorder: Recorder | None = None,
    ) -> None:
        from policylink.client import RobotLayout

        self.robot = robot
        self.engine = engine
        self.config = config
        self.layout = RobotLayout.of(robot)
        self.stop = stop
        self.duration_s = duration_s
        self.recorder = recorder

    def _episode(self) -> AbstractContextManager[EpisodeRecording | None]:
        if self.recorder is None:
            return nullcontext()
        return self.recorder.episode(server=self.engine.server_identity())

    def continuous(self) -> LoopStats:
        from policylink.client import run_loop

        with self._episode() as recording:
            stats = run_loop(
                self.robot,
                self.engine,
                self.config.fps,
                duration_s=self.duration_s,
                stop=self.stop,
                task=self.config.task,
                layout=self.layout,
                manage_lifecycle=False,
                recorder=recording,
            )
            if recording is not None:
                recording.outcome = {"stopped_because": stats.stopped_because}
        return stats

    def episodic(self, robot: EpisodicRobot, episodes: int) -> LoopStats:
        """Episode after episode until `episodes`, the duration or a stop; a line per episode."""
        from policylink.client import LoopStats, run_loop

        total = LoopStats()
        began = time.monotonic()
        count = 0
        while not self.stop.is_set() and not self.engine.failed:
            if episodes and count >= episodes:
                total.stopped_because = f"{count} episodes done"
                break
            remaining = None
            if self.duration_s is not None:
                remaining = self.duration_s - (time.monotonic() - began)
                if remaining <= 0:
                    total.stopped_because = "duration reached"
                    break
            robot.reset()
            self.engine.reset()
            end = _EpisodeEnd(robot, self.stop)
            with self._episode() as recording:
                loop = run_loop(
                    robot,
                    self.engine,
                    self.config.fps,
                    duration_s=remaining,
                    stop=end.event,
                    task=self.config.task,
                    layout=self.layout,
                    manage_lifecycle=False,
                    on_tick=end,
                    recorder=recording,
                )
                if recording is not None:
                    recording.outcome = _outcome(robot, loop.stopped_because)
            for name in ("ticks", "actions_sent", "held_ticks", "skipped_ticks"):
                setattr(total, name, getattr(total, name) + getattr(loop, name))
            total.stopped_because = loop.stopped_because
            if robot.episode_done:
                count += 1
                result = robot.results[-1]
                typer.echo(f"{self.config.client_id}: episode {count} {result.describe()}")
        if self.stop.is_set():
            total.stopped_because = "stop requested"
        return total


def _outcome(robot: EpisodicRobot, stopped_because: str) -> dict[str, object]:
    """What a recorded episode's meta says of how it ended."""
    outcome: dict[str, object] = {"stopped_because": stopped_because, "done": robot.episode_done}
    if robot.episode_done and robot.results:
        result = robot.results[-1]
        outcome |= {"success": result.success, "result": result.describe()}
    return outcome


class _EpisodeEnd:
    """`run_loop`'s tick callback: ends the loop when the episode is over or a stop came."""

    def __init__(self, robot: EpisodicRobot, stop: threading.Event) -> None:
        self.robot = robot
        self.stop = stop
        self.event = threading.Event()

    def __call__(self, tick: int, raw: dict, action: object) -> None:
        if self.robot.episode_done or self.stop.is_set():
            self.event.set()


def _what_is_served(config: ClientConfig) -> str:
    """When nobody answers under the robot's namespace: list what the endpoint does serve."""
    if config.endpoint.startswith(("ws://", "wss://")):
        return ""
    from policylink.client.links.zenoh import settings_from_config
    from policylink.client.links.zenoh_discovery import DiscoveryError, discover

    try:
        statuses, _ = discover(settings_from_config(config), timeout_s=config.handshake_timeout_s)
    except DiscoveryError:
        return f"\nnothing is reachable at {config.endpoint}: is the server (or router) running?"
    if not statuses:
        return f"\n{config.endpoint} is reachable but serves no policylink namespace"
    served = ", ".join(
        sorted(
            {
                f"--model-id {s.capabilities.model_id} --revision {s.capabilities.revision} "
                f"--task-slug {s.capabilities.task_slug}"
                for s in statuses
            }
        )
    )
    return f"\n{config.endpoint} serves: {served}"
