"""Robot-side cost: `get_action()` under load and during an outage, and round trip minus forward.

The server is a separate `policylink serve` process serving a 0 ms policy (it returns zeros),
so everything measured is overhead. This process is the robot.

- Round trip: one request in flight at a time on the native transport, from before the
  observation is encoded to after the chunk is decoded (encode → Zenoh → server decode,
  checks, forward, encode → Zenoh → decode), minus the forward the server reports. Three
  payloads: state only; two 480x640 JPEG q90 cameras; three raw 480x640 cameras.
- `get_action()`: called in a tight loop (no sleep) with two JPEG cameras in every
  observation, so the engine's worker requests back to back and competes for the interpreter
  the whole time. First while streaming, then after the server is SIGKILLed (the engine rides
  out, stalls and re-handshakes with backoff). `SyncEngine` runs the same loop for contrast:
  it blocks for a round trip whenever its queue is empty. The floor row runs the same call
  with no thread behind it: its maximum is the machine's scheduling noise at that moment (a
  busy 2-core machine preempts any process for milliseconds), against which the engines'
  maxima are read. Each row also counts the calls over 1 ms and 2 ms, and reports how long
  the looping thread sat ready to run while the kernel ran other threads (Linux schedstat;
  the worker, Zenoh's threads and the server process share the two cores with it): time lost
  to preemption, which no engine code can give back, as opposed to waiting for a lock or the
  interpreter.
- A paced loop: 100 Hz, each tick spending 7 ms in Python after `get_action()` (a control
  stack with real work to do), once with the interpreter's own switch interval and once with
  the engine's shorter one (`ClientConfig.switch_interval_s`): how late each tick starts, the
  slowest `get_action()`, and the engine's request round trip.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.frames import camera_frame
from benchmarks.round_trips import one_in_flight
from policylink.net.ports import free_port
from policylink.policy.base import ChunkBatch, PassThroughProcessor, PolicySpec, Processor
from policylink.wire.messages import CameraSpec, Observation

REPO = Path(__file__).resolve().parents[1]
HEIGHT, WIDTH = 480, 640
STATE_DIM, CHUNK = 14, 50
JOINTS = tuple(f"joint_{i}" for i in range(STATE_DIM))
CAMERAS = ("top", "left_wrist", "right_wrist")
WARMUP_REQUESTS = 20
PACED_FPS = 100.0
PACED_BUSY_S = 0.007
PEERS_FOR_SCALE = {
    "LeRobot draft Zenoh engine (same hardware class)": {
        "state only": "0.70 / 1.3",
        "two JPEG cameras": "7-8 / 30-35",
        "three raw cameras": "6.1 / 20-24",
        "get_action max": "18 ms",
    },
}


class NullPolicy:
    """Zeros at once: a 0 ms forward, so every millisecond measured is overhead. It reads
    `cameras` cameras (the server refuses images a policy does not read)."""

    def __init__(self, cameras: int) -> None:
        self._spec = PolicySpec(
            action_names=JOINTS,
            chunk_size=CHUNK,
            state_dim=STATE_DIM,
            family="benchmarks.null",
            cameras=tuple(camera_specs(cameras)),
            supports_rtc=True,
        )

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def make_processor(self) -> Processor:
        return PassThroughProcessor()

    def reset(self) -> None:
        """Stateless."""

    def predict_chunk(self, batch: ChunkBatch) -> np.ndarray:
        return np.zeros((len(batch), CHUNK, STATE_DIM), np.float32)


def build_null_policy(config: Any, device: str, dtype: str) -> NullPolicy:
    return NullPolicy(int(config.params.get("cameras", 0)))


def observation(cameras: int) -> Observation:
    return Observation(
        state=np.random.default_rng(0).standard_normal(STATE_DIM).astype(np.float32),
        images={name: camera_frame(i, HEIGHT, WIDTH) for i, name in enumerate(CAMERAS[:cameras])},
    )


def camera_specs(cameras: int) -> list[CameraSpec]:
    return [CameraSpec(name, HEIGHT, WIDTH) for name in CAMERAS[:cameras]]


class ServerProcess:
    """`policylink serve` for the 0 ms policy, in its own process."""

    def __init__(self, endpoint: str, workdir: Path, cameras: int) -> None:
        import yaml

        workdir = workdir / f"cameras-{cameras}"
        workdir.mkdir(parents=True)
        manifest = workdir / "server.yaml"
        manifest.write_text(
            yaml.safe_dump(
                {
                    "policy": {
                        "kind": "python",
                        "factory": f"{__name__}:build_null_policy",
                        "params": {"cameras": cameras},
                    },
                    "model_id": "bench-null",
                    "serving_mode": "exclusive",
                    "max_sessions": 1,
                    "warmup_inferences": 1,
                    "zenoh": {"listen": [endpoint]},
                }
            )
        )
        self.stdout = workdir / "server.out"
        with self.stdout.open("w") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from policylink.cli.main import main; main()",
                    "serve",
                    "--manifest",
                    str(manifest),
                    "--log-level",
                    "WARNING",
                ],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                stdout=out,
                stderr=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 120
        while "serving" not in self.stdout.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"benchmark server did not start: {self.stdout.read_text()}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)


def round_trips(endpoint: str, cameras: int, quality: int, count: int) -> dict[str, Any]:
    """One request in flight; milliseconds from before encode to after decode, less forward."""
    from policylink.client.links.zenoh import ZenohLink
    from policylink.net.zenoh_settings import ZenohSettings
    from policylink.wire import SessionOpen

    transport = ZenohLink(
        ZenohSettings(connect=[endpoint]), f"rtt-{cameras}-{quality}", jpeg_quality=quality
    )
    request = SessionOpen(transport.client_id, list(JOINTS), STATE_DIM, camera_specs(cameras))
    total, forward = one_in_flight(transport, request, observation(cameras), count, WARMUP_REQUESTS)
    overhead = np.subtract(total, forward)
    return {
        "p50_ms": float(np.percentile(overhead, 50)),
        "p99_ms": float(np.percentile(overhead, 99)),
        "max_ms": float(np.max(overhead)),
        "rtt_p50_ms": float(np.percentile(total, 50)),
        "requests": count,
    }


def ready_waiting_ms() -> float | None:
    """Milliseconds this thread has spent runnable but not running, where the OS tells."""
    try:
        with open("/proc/thread-self/schedstat") as stats:
            return int(stats.read().split()[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return None


def tight_loop(engine: Any, obs: Observation, seconds: float) -> dict[str, Any]:
    """`notify_observation` + timed `get_action` back to back for `seconds`."""
    durations, actions = [], 0
    waited_before = ready_waiting_ms()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        engine.notify_observation(obs)
        began = time.perf_counter_ns()
        action = engine.get_action()
        durations.append(time.perf_counter_ns() - began)
        actions += action is not None
    waited_after = ready_waiting_ms()
    us = np.asarray(durations) / 1e3
    preempted = (
        None if waited_before is None or waited_after is None else waited_after - waited_before
    )
    return {
        "calls": len(us),
        "with_action": actions,
        "p50_us": float(np.percentile(us, 50)),
        "p99_us": float(np.percentile(us, 99)),
        "p999_us": float(np.percentile(us, 99.9)),
        "max_us": float(us.max()),
        "calls_over_1ms": int((us > 1e3).sum()),
        "calls_over_2ms": int((us > 2e3).sum()),
        "preempted_ms": preempted,
    }


def busy_paced_loop(engine: Any, obs: Observation, seconds: float) -> dict[str, Any]:
    """Ticks due every 1/PACED_FPS from the start, each busy in Python for PACED_BUSY_S."""
    lateness_ms, call_us, rtt_ms = [], [], []
    start = time.perf_counter()
    tick = 0
    while tick / PACED_FPS < seconds:
        due = start + tick / PACED_FPS
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        lateness_ms.append((time.perf_counter() - due) * 1e3)
        engine.notify_observation(obs)
        began = time.perf_counter_ns()
        engine.get_action()
        call_us.append((time.perf_counter_ns() - began) / 1e3)
        busy_until = time.perf_counter() + PACED_BUSY_S
        while time.perf_counter() < busy_until:
            pass
        rtt = engine.stats.last_rtt_ms
        if rtt is not None:
            rtt_ms.append(rtt)
        tick += 1
    return {
        "ticks": tick,
        "late_p50_ms": float(np.percentile(lateness_ms, 50)),
        "late_p99_ms": float(np.percentile(lateness_ms, 99)),
        "late_max_ms": float(np.max(lateness_ms)),
        "get_action_max_us": float(np.max(call_us)),
        "request_rtt_p50_ms": float(np.percentile(rtt_ms, 50)),
    }


def run(quick: bool = False) -> dict[str, Any]:
    from policylink.client import ClientConfig, RemoteEngine, RobotLayout, SyncEngine
    from policylink.client.control_face import ControlFace

    requests = 100 if quick else 1000
    loop_s = 1.0 if quick else 5.0
    endpoints = {cameras: f"tcp/127.0.0.1:{free_port()}" for cameras in (0, 2, 3)}
    endpoint = endpoints[2]
    layout = RobotLayout(JOINTS, tuple(f"s{i}" for i in range(STATE_DIM)), tuple(camera_specs(2)))
    config = {
        "endpoint": endpoint,
        "client_id": "bench-robot",
        "fps": 30.0,
        "model_id": "bench-null",
        "reconnect_initial_backoff_s": 0.05,
        "reconnect_max_backoff_s": 0.5,
    }
    loaded_obs = observation(2)
    # The same get_action() code with no thread behind it: the scheduling noise of this
    # machine right now, which no engine can go below.
    floor = tight_loop(ControlFace(ClientConfig(**config), layout), loaded_obs, loop_s)
    with tempfile.TemporaryDirectory() as workdir:
        rtt = {}
        for label, cameras, quality in (
            ("state only", 0, 90),
            ("two JPEG cameras", 2, 90),
            ("three raw cameras", 3, 0),
        ):
            server = ServerProcess(endpoints[cameras], Path(workdir), cameras)
            try:
                rtt[label] = round_trips(endpoints[cameras], cameras, quality, requests)
            finally:
                server.kill()
        server = ServerProcess(endpoint, Path(workdir) / "engines", 2)
        try:
            with SyncEngine(ClientConfig(**config), layout) as sync:
                sync_loop = tight_loop(sync, loaded_obs, loop_s)
            paced = {}
            for label, interval in (
                (f"interpreter's {sys.getswitchinterval() * 1e3:g} ms", 0.0),
                ("engine's 0.5 ms", 0.0005),
            ):
                paced_config = ClientConfig(**config, buffer_time_s=2.0, switch_interval_s=interval)
                with RemoteEngine(paced_config, layout) as engine:
                    paced[label] = busy_paced_loop(engine, loaded_obs, loop_s)
            remote = RemoteEngine(ClientConfig(**config, buffer_time_s=2.0), layout)
            remote.start()
            try:
                streaming = tight_loop(remote, loaded_obs, loop_s)
                streaming["chunks"] = remote.stats.chunks_merged
                server.kill()
                outage = tight_loop(remote, loaded_obs, loop_s)
                outage["end_state"] = remote.state.value
                outage["walk"] = [t.state.value for t in remote.transitions()][-4:]
            finally:
                remote.stop()
        finally:
            server.kill()
    loops = {
        "no threads (floor)": floor,
        "RemoteEngine streaming": streaming,
        "RemoteEngine outage": outage,
        "SyncEngine": sync_loop,
    }
    print_tables(rtt, loops, paced)
    return {
        "round_trip_minus_forward": rtt,
        "get_action": loops,
        "paced_busy_loop": paced,
        "peers_for_scale": PEERS_FOR_SCALE,
    }


def print_tables(
    rtt: dict[str, dict[str, Any]],
    loops: dict[str, dict[str, Any]],
    paced: dict[str, dict[str, Any]],
) -> None:
    print("Round trip minus forward (ms): one request in flight, 0 ms policy, server in a process")
    print(f"{'payload':<20} {'p50':>7} {'p99':>7} {'max':>7} {'rtt p50':>8}")
    for name, row in rtt.items():
        print(
            f"{name:<20} {row['p50_ms']:>7.2f} {row['p99_ms']:>7.2f} {row['max_ms']:>7.2f} "
            f"{row['rtt_p50_ms']:>8.2f}"
        )
    print()
    print("get_action() in a tight loop, two JPEG cameras per observation (us)")
    print(
        f"{'engine':<24} {'calls':>8} {'p50':>7} {'p99':>7} {'p99.9':>8} {'max':>9} "
        f"{'>1ms':>5} {'>2ms':>5} {'preempted ms':>13}"
    )
    for name, row in loops.items():
        preempted = row["preempted_ms"]
        print(
            f"{name:<24} {row['calls']:>8} {row['p50_us']:>7.1f} {row['p99_us']:>7.1f} "
            f"{row['p999_us']:>8.1f} {row['max_us']:>9.1f} {row['calls_over_1ms']:>5} "
            f"{row['calls_over_2ms']:>5} {'n/a' if preempted is None else f'{preempted:.0f}':>13}"
        )
    sync, streaming = loops["SyncEngine"], loops["RemoteEngine streaming"]
    print(
        f"SyncEngine p99 / RemoteEngine p99: {sync['p99_us'] / streaming['p99_us']:.0f}x; "
        f"outage walk {loops['RemoteEngine outage']['walk']}"
    )
    print()
    print(f"{PACED_FPS:g} Hz loop, {PACED_BUSY_S * 1e3:g} ms of Python per tick (ms)")
    print(
        f"{'switch interval':<24} {'late p50':>9} {'late p99':>9} {'late max':>9} "
        f"{'get_action max':>15} {'request rtt p50':>16}"
    )
    for name, row in paced.items():
        print(
            f"{name:<24} {row['late_p50_ms']:>9.2f} {row['late_p99_ms']:>9.2f} "
            f"{row['late_max_ms']:>9.2f} {row['get_action_max_us'] / 1e3:>15.2f} "
            f"{row['request_rtt_p50_ms']:>16.2f}"
        )
    for peer, numbers in PEERS_FOR_SCALE.items():
        print(f"for scale, {peer}: {numbers}")
