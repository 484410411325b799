"""A server process behind a real link and a robot process dialling through it.

The server (the echo policy: a forward takes well under a millisecond, so a round trip is the
link's) runs inside the link's namespace; the robot is a `SteadyRobot` in a process of its own
in this namespace, timing every round trip from handing an observation to its link to the chunk
arriving. Both talk Zenoh over TCP through the impairment proxy and the veth pair, keep-alives
and handshakes included.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from policylink.demo.server_process import ServerProcess
from policylink.net.impairment_proxy import Impairment
from policylink.net.ports import free_port
from policylink.net.real_link import RealLink
from policylink.wire import CameraSpec
from tests.support.server_process import REPO
from tests.support.servers import echo_policy
from tests.support.steady_robots import RobotPlan, SteadyRobotsProcess

STATE_DIM, CHUNK_SIZE, FPS = 6, 8, 50.0
SMALL_CAMERA = CameraSpec("front", 32, 32)


@dataclass
class ServedLink:
    link: RealLink
    robots: SteadyRobotsProcess


def echo_manifest(listen: str, camera: CameraSpec) -> dict:
    params = {
        "state_dim": STATE_DIM,
        "chunk_size": CHUNK_SIZE,
        "trained_fps": FPS,
        "cameras": [{"name": camera.name, "height": camera.height, "width": camera.width}],
    }
    return {
        "policy": echo_policy(**params),
        "serving_mode": "exclusive",
        "max_sessions": 1,
        "warmup_inferences": 1,
        "zenoh": {"mode": "peer", "listen": [listen]},
    }


@contextlib.contextmanager
def served_over(
    workdir: Path,
    impairment: Impairment,
    *,
    camera: CameraSpec = SMALL_CAMERA,
    rate_mbit: float | None = None,
    buffer_time_s: float = 0.1,
    seed: int = 0,
) -> Iterator[ServedLink]:
    """Link, server and robot, each started once the one before it is ready; all torn down.

    A `buffer_time_s` above a chunk's playback (8 steps at 50 Hz: 160 ms) keeps one request in
    flight at all times, so the robot uses the whole link."""
    with pytest.MonkeyPatch.context() as patch:
        # The server child imports the test policies from the repository.
        patch.setenv("PYTHONPATH", str(REPO))
        with RealLink(impairment, free_port(), rate_mbit=rate_mbit, seed=seed) as link:
            manifest = echo_manifest(link.server_listen, camera)
            with ServerProcess(manifest, workdir, link.server_prefix()):
                plan = RobotPlan(
                    link.robot_endpoint, STATE_DIM, (camera,), fps=FPS, buffer_time_s=buffer_time_s
                )
                with SteadyRobotsProcess(plan, ["link-robot"]) as robots:
                    yield ServedLink(link, robots)
