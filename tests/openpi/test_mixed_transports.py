"""Zenoh robots and OpenPI clients on one server at once: one scheduler, served in turn."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.openpi.conftest import IMAGE_SIZE, libero_obs
from tests.server.robot import Robot
from tests.support.waiting import wait_for

pytestmark = pytest.mark.filterwarnings("ignore:connect\\(\\) must be used:DeprecationWarning")

FORWARD_S = 0.04
TOTAL = 48


def test_zenoh_robots_and_openpi_clients_share_the_worker_in_turn(serve, client):
    served = serve(policy_params={"delay_s": FORWARD_S}, max_sessions=4)
    app = served.app
    robots = [
        Robot(
            app.manifest.zenoh.listen[0],
            app.manifest.namespace(),
            f"arm-{i}",
            replica=app.core.replica_id,
        )
        for i in range(2)
    ]
    openpi_clients = [client(served.url()) for _ in range(2)]
    stop = threading.Event()
    answers: dict[str, list[float]] = {}
    errors: list[BaseException] = []

    def drive_robot(index: int, robot: Robot) -> None:
        robot.opened()
        image = np.full((IMAGE_SIZE, IMAGE_SIZE, 3), 50, np.uint8)
        seq = 0
        while not stop.is_set():
            seq += 1
            robot.send(
                [100.0 * index + seq, 0.0, 0.0], seq, images={"front": image, "wrist": image}
            )
            _, chunk = robot.next_chunk()
            answers[robot.client_id].append(float(chunk.chunk_robot[0, 0]) - 100.0 * index)

    def drive_openpi(index: int) -> None:
        step = 0
        while not stop.is_set():
            step += 1
            reply = openpi_clients[index].infer(libero_obs([1000.0 * (index + 1) + step, 0.0, 0.0]))
            answers[f"openpi-{index}"].append(float(reply["actions"][0, 0]) - 1000.0 * (index + 1))

    def guarded(target, *args) -> None:
        try:
            target(*args)
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    workers = []
    for index, robot in enumerate(robots):
        answers[robot.client_id] = []
        workers.append(threading.Thread(target=guarded, args=(drive_robot, index, robot)))
    for index in range(2):
        answers[f"openpi-{index}"] = []
        workers.append(threading.Thread(target=guarded, args=(drive_openpi, index)))
    try:
        for worker in workers:
            worker.start()
        wait_for(
            lambda: stop.is_set() or sum(map(len, answers.values())) >= TOTAL,
            what=f"{TOTAL} chunks in all",
        )
        counts = {name: len(values) for name, values in answers.items()}
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    finally:
        stop.set()
        for robot in robots:
            robot.close()
    assert not errors, errors
    # Each client got the chunks of its own requests, in order ...
    for values in answers.values():
        assert values == [float(step) for step in range(1, len(values) + 1)]
    # ... and with every session always ready, round-robin serves them in turn.
    transports = {s.transport for s in app.core.registry.snapshot()}
    assert transports == {"zenoh", "openpi"}
    assert min(counts.values()) >= TOTAL / 4 - 3, counts
