"""Same-host fast path: round trips of three raw 480x640 cameras through Zenoh's shared memory
against TCP loopback, side by side.

One robot (a real `RemoteEngine` in a process of its own, `tests.support.steady_robots`) sends
three raw 480x640 cameras (2.7 MB a request) to a `policylink serve` child running the echo
policy, so the round trip is the transport's plus a fixed server cost: encode, deposit, decode,
a sub-millisecond forward, the chunk back. Both ends run with `shared_memory` on or both off;
the robot keeps one request in flight at all times (its buffer asks for the next chunk before
the last one plays out). The two setups alternate, so drift in the machine's load spreads over
both. The server's `policylink_shm_observations_total` says which path the bytes took.

Reported per setup: round-trip p50/p90/p99 and requests measured; the ratio TCP / SHM of each.
"""

from __future__ import annotations

import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from benchmarks.timing import percentile
from policylink.net.ports import free_port
from policylink.wire import CameraSpec
from tests.support.server_process import ServerProcess
from tests.support.servers import echo_policy, loopback_manifest_data
from tests.support.steady_robots import RobotPlan, SteadyRobotsProcess

STATE_DIM, CHUNK_SIZE, FPS = 6, 8, 50.0
CAMERAS = tuple(CameraSpec(f"cam{i}", 480, 640) for i in range(3))
# Above a chunk's playback (8 steps at 50 Hz: 160 ms): the next request leaves as a chunk lands.
BUFFER_TIME_S = 0.3
SETUPS = {"tcp loopback": False, "shared memory": True}
SETTLE_S = 2.0


def _manifest(shared_memory: bool) -> dict[str, Any]:
    params = {
        "state_dim": STATE_DIM,
        "chunk_size": CHUNK_SIZE,
        "trained_fps": FPS,
        "cameras": [{"name": c.name, "height": c.height, "width": c.width} for c in CAMERAS],
    }
    return loopback_manifest_data(
        {
            "policy": echo_policy(**params),
            "serving_mode": "exclusive",
            "max_sessions": 1,
            "health_port": free_port(),
            "zenoh": {"shared_memory": shared_memory},
        }
    )


def _shm_observations(health_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "policylink_shm_observations_total":
                return sample.value
    return 0.0


def measure(shared_memory: bool, seconds: float, workdir: Path) -> dict[str, Any]:
    """One setup: a server and a robot with shared memory on (or off), `seconds` measured."""
    data = _manifest(shared_memory)
    server = ServerProcess(data, workdir, f"server-shm-{shared_memory}").wait_serving()
    try:
        plan = RobotPlan(
            data["zenoh"]["listen"][0],
            STATE_DIM,
            CAMERAS,
            fps=FPS,
            buffer_time_s=BUFFER_TIME_S,
            jpeg_quality=0,
            shared_memory=shared_memory,
        )
        with SteadyRobotsProcess(plan, ["shm-robot"]) as robots:
            time.sleep(SETTLE_S)
            robots.take_round_trips_ms()
            before = _shm_observations(data["health_port"])
            time.sleep(seconds)
            (trips,) = robots.take_round_trips_ms()
            in_shm = _shm_observations(data["health_port"]) - before
    finally:
        server.stop()
    return {
        "requests": len(trips),
        "observations_in_shared_memory": in_shm,
        **{f"p{q}_ms": percentile(trips, q) for q in (50, 90, 99)},
        "round_trips_ms": trips,
    }


def run(quick: bool = False) -> dict[str, Any]:
    rounds, seconds = (1, 5.0) if quick else (3, 20.0)
    samples: dict[str, list[float]] = {name: [] for name in SETUPS}
    counts: dict[str, float] = dict.fromkeys(SETUPS, 0.0)
    with tempfile.TemporaryDirectory(prefix="bench-shm-") as workdir:
        for index in range(rounds):
            for name, shared_memory in SETUPS.items():
                print(f"round {index + 1}/{rounds}: {name}", flush=True)
                result = measure(shared_memory, seconds, Path(workdir))
                samples[name] += result["round_trips_ms"]
                counts[name] += result["observations_in_shared_memory"]
    setups = {
        name: {
            "requests": len(trips),
            "observations_in_shared_memory": counts[name],
            **{f"p{q}_ms": percentile(trips, q) for q in (50, 90, 99)},
        }
        for name, trips in samples.items()
    }
    tcp, shm = setups["tcp loopback"], setups["shared memory"]
    ratios = {f"tcp/shm p{q}": tcp[f"p{q}_ms"] / shm[f"p{q}_ms"] for q in (50, 90, 99)}
    print(f"{'setup':<16}{'requests':>10}{'in shm':>10}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}")
    for name, row in setups.items():
        print(
            f"{name:<16}{row['requests']:>10}{row['observations_in_shared_memory']:>10.0f}"
            f"{row['p50_ms']:>10.2f}{row['p90_ms']:>10.2f}{row['p99_ms']:>10.2f}"
        )
    print("  ".join(f"{name} {value:.2f}x" for name, value in ratios.items()))
    image_bytes = sum(3 * camera.height * camera.width for camera in CAMERAS)
    return {"image_bytes_per_request": image_bytes, "setups": setups, "ratios": ratios}
