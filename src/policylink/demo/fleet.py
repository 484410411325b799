"""A fleet of simulated arms, each a real robot client of one server, driven episode by episode.

Every robot runs on its own thread the same way a robot process would: a `SimArm`, an engine
(`RemoteEngine` for "async", `SyncEngine` for "sync") talking Zenoh to the server, and
`run_loop` at the control rate. Robot i replays the same episodes in every phase (its seed is
its index), so the async and sync phases are compared on identical targets.
"""

from __future__ import annotations

import threading
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

from policylink.client import ClientConfig, Engine, RemoteEngine, RobotLayout, SyncEngine, run_loop
from policylink.client.link import ClientLink
from policylink.client.links import make_link
from policylink.client.links.impairment import ImpairedLink, NetworkImpairment
from policylink.demo.wait_meter import WaitMeter
from policylink.episodes import Recorder
from policylink.sim import CameraConfig, SimArm
from policylink.sim.task import EpisodeResult, ReachTrackConfig

ENGINES = ("async", "sync")


@dataclass(frozen=True)
class FleetConfig:
    endpoint: str
    model_id: str
    robots: int = 4
    episodes: int = 3
    task: ReachTrackConfig = field(default_factory=ReachTrackConfig)
    cameras: tuple[CameraConfig, ...] = (CameraConfig("top"),)
    buffer_time_s: float = 0.8
    # The async engine's merge: RTC (replace, the unexecuted prefix guides the next chunk) or
    # append behind what is left (`ClientConfig.rtc`).
    rtc: bool = True
    jpeg_quality: int = 90
    impairment: NetworkImpairment = field(default_factory=NetworkImpairment)
    # The network the robots' endpoint leads through when it is not the wrapper's (a real link,
    # `policylink.net.real_link`); phases and reports name it instead of `impairment`.
    network: str = ""
    # Loopback plus any added delay answers well within a second: past that, the message was
    # lost (--loss), and waiting the client's default 5 s would stall a robot for nothing.
    request_timeout_s: float = 1.0
    timeouts_before_reconnect: int = 5
    # Record every robot's episodes under `record/<engine>/<robot>` (`policylink.episodes`).
    record: Path | None = None

    @property
    def fps(self) -> float:
        """The control rate: the simulation's, so loop ticks and physics periods coincide."""
        return self.task.fps


@dataclass
class RobotRecord:
    """What one robot did in one phase; times are seconds since the phase began.

    Each episode starts with the arm at home until the first chunk of the episode arrives;
    that wait (`startup_ms`) is the same for every engine and is reported on its own.
    `held_ticks` and `waited_s` count only what came after it: ticks the engine had no
    action, and time the loop spent blocked inside `get_action`.
    """

    robot: str
    episodes: list[EpisodeResult] = field(default_factory=list)
    ticks: int = 0
    held_ticks: int = 0
    skipped_ticks: int = 0
    waited_s: float = 0.0
    startup_ms: list[float] = field(default_factory=list)
    requests: int = 0
    chunks_merged: int = 0
    timeouts: int = 0
    bytes_sent: int = 0
    dropped_by_link: int = 0
    rtt_ms: list[float] = field(default_factory=list)
    queue_depth: list[tuple[float, int]] = field(default_factory=list)
    transitions: list[tuple[float, str]] = field(default_factory=list)
    finished_s: float = 0.0
    error: str = ""

    def waiting_ticks(self, fps: float) -> int:
        """Ticks the loop spent waiting for the network: holding, or blocked in the engine."""
        return self.held_ticks + round(self.waited_s * fps)


@dataclass(frozen=True)
class LiveRow:
    robot: str
    state: str
    queue_depth: int
    last_rtt_ms: float | None
    episodes_done: int
    episodes_succeeded: int


class RobotDriver:
    """One robot of the fleet on its own thread; `run` is the thread body, `live` its window.

    The record is written by the driver thread only and read after `join`; `live()` reads the
    engine's own thread-safe stats plus the progress counters under `_lock`.
    """

    def __init__(
        self,
        index: int,
        config: FleetConfig,
        engine_kind: str,
        origin_s: float,
        abort: threading.Event,
    ) -> None:
        if engine_kind not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine_kind!r}")
        self.config = config
        self.engine_kind = engine_kind
        self.index = index
        self.name = f"robot-{index}"
        self.record = RobotRecord(self.name)
        self.robot = SimArm(config.task, cameras=config.cameras, seed=index)
        self.origin_s = origin_s
        self.abort = abort
        self._lock = threading.Lock()
        # Guarded by _lock: the engine (None before start and after stop) and episode counts.
        self._engine: Engine | None = None
        self._done = 0
        self._succeeded = 0
        self.thread = threading.Thread(target=self.run, name=f"policylink-demo-{self.name}")

    def _client_config(self) -> ClientConfig:
        config = self.config
        return ClientConfig(
            endpoint=config.endpoint,
            model_id=config.model_id,
            client_id=self.name,
            fps=config.fps,
            buffer_time_s=config.buffer_time_s,
            rtc=config.rtc,
            jpeg_quality=config.jpeg_quality,
            request_timeout_s=config.request_timeout_s,
            timeouts_before_reconnect=config.timeouts_before_reconnect,
        )

    def _transport(self, client: ClientConfig) -> ClientLink:
        transport = make_link(client)
        if self.config.impairment.active:
            return ImpairedLink(transport, self.config.impairment, seed=self.index)
        return transport

    def live(self) -> LiveRow:
        with self._lock:
            engine, done, succeeded = self._engine, self._done, self._succeeded
        if engine is None:
            state, depth, rtt = ("finished" if done else "starting"), 0, None
        else:
            stats = engine.stats
            state, depth, rtt = stats.state.value, stats.queue_depth, stats.last_rtt_ms
        return LiveRow(self.name, state, depth, rtt, done, succeeded)

    def run(self) -> None:
        """Thread body: whatever ends this robot's phase early is reported, never lost."""
        try:
            self._run()
        except Exception as exc:  # the thread's boundary; the summary shows it
            self.record.error = f"{type(exc).__name__}: {exc}"

    def _run(self) -> None:
        client = self._client_config()
        layout = RobotLayout.of(self.robot)
        transport = self._transport(client)
        engine_type = RemoteEngine if self.engine_kind == "async" else SyncEngine
        engine = engine_type(client, layout, link=transport)
        engine.start()
        with self._lock:
            self._engine = engine
        try:
            self._episodes(engine, layout)
        finally:
            stats = engine.stats
            self.record.requests = stats.requests
            self.record.chunks_merged = stats.chunks_merged
            self.record.timeouts = stats.timeouts
            self.record.bytes_sent = stats.bytes_sent
            self.record.transitions = [
                (t.at_s - self.origin_s, t.state.value) for t in engine.transitions()
            ]
            if isinstance(transport, ImpairedLink):
                self.record.dropped_by_link = transport.dropped
            engine.stop()
            self.record.finished_s = time.monotonic() - self.origin_s
            with self._lock:
                self._engine = None

    def _episodes(self, engine: Engine, layout: RobotLayout) -> None:
        recorder = self._recorder(layout)
        try:
            self._play(engine, layout, recorder)
        finally:
            if recorder is not None:
                recorder.close()

    def _recorder(self, layout: RobotLayout) -> Recorder | None:
        if self.config.record is None:
            return None
        client = self._client_config()
        return Recorder(
            self.config.record / self.engine_kind / self.name,
            layout,
            fps=self.config.fps,
            robot=self.name,
            client=asdict(client),
            fallback=client.fallback.value,
        )

    def _play(self, engine: Engine, layout: RobotLayout, recorder: Recorder | None) -> None:
        meter = WaitMeter(engine)
        for _ in range(self.config.episodes):
            if self.abort.is_set() or engine.failed:
                return
            self.robot.reset()
            engine.reset()
            ticks = _TickRecorder(self, engine, meter)
            with (
                nullcontext()
                if recorder is None
                else recorder.episode(server=engine.server_identity())
            ) as recording:
                loop = run_loop(
                    self.robot,
                    meter,
                    self.config.fps,
                    stop=ticks.stop,
                    layout=layout,
                    manage_lifecycle=False,
                    on_tick=ticks,
                    recorder=recording,
                )
                if recording is not None and self.robot.episode_done:
                    result = self.robot.results[-1]
                    recording.outcome = {"success": result.success, "result": result.describe()}
            self.record.ticks += loop.ticks
            self.record.skipped_ticks += loop.skipped_ticks
            if self.robot.episode_done:
                result = self.robot.results[-1]
                self.record.episodes.append(result)
                with self._lock:
                    self._done += 1
                    self._succeeded += result.success


class _TickRecorder:
    """`run_loop`'s per-tick callback for one episode: samples the engine, ends the episode."""

    def __init__(self, driver: RobotDriver, engine: Engine, meter: WaitMeter) -> None:
        self.driver = driver
        self.engine = engine
        self.meter = meter
        self.stop = threading.Event()
        self._began_s = time.monotonic()
        self._started = False
        self._merged = engine.stats.chunks_merged

    def __call__(self, tick: int, raw: dict, action: object) -> None:
        driver, record = self.driver, self.driver.record
        now = time.monotonic()
        if self._started:
            record.waited_s += self.meter.last_call_s
            record.held_ticks += action is None
        elif action is not None:
            self._started = True
            record.startup_ms.append((now - self._began_s) * 1e3)
        stats = self.engine.stats
        record.queue_depth.append((now - driver.origin_s, stats.queue_depth))
        if stats.chunks_merged > self._merged and stats.last_rtt_ms is not None:
            record.rtt_ms.append(stats.last_rtt_ms)
        self._merged = stats.chunks_merged
        if driver.robot.episode_done or driver.abort.is_set():
            self.stop.set()


@dataclass
class PhaseRecord:
    engine: str
    impairment: str
    robots: list[RobotRecord]
    wall_s: float


class Fleet:
    """Starts every driver of one phase together and collects their records."""

    def __init__(self, config: FleetConfig, engine_kind: str) -> None:
        self.config = config
        self.engine_kind = engine_kind
        self.abort = threading.Event()
        self.origin_s = time.monotonic()
        self.drivers = [
            RobotDriver(i, config, engine_kind, self.origin_s, self.abort)
            for i in range(config.robots)
        ]

    def start(self) -> None:
        for driver in self.drivers:
            driver.thread.start()

    @property
    def running(self) -> bool:
        return any(driver.thread.is_alive() for driver in self.drivers)

    def live(self) -> list[LiveRow]:
        return [driver.live() for driver in self.drivers]

    def stop(self) -> None:
        """Ends every robot's loop at its next tick (Ctrl-C)."""
        self.abort.set()

    def join(self) -> PhaseRecord:
        for driver in self.drivers:
            driver.thread.join()
        return PhaseRecord(
            engine=self.engine_kind,
            impairment=self.config.network or self.config.impairment.describe(),
            robots=[driver.record for driver in self.drivers],
            wall_s=time.monotonic() - self.origin_s,
        )
