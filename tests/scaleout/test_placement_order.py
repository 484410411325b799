"""The order a robot tries replicas in, from their statuses alone (no network)."""

from __future__ import annotations

from collections import Counter

from policylink.client.links.zenoh import placement_order
from policylink.wire.messages import Capabilities, Status

CAPABILITIES = Capabilities("m", "main", "default", ["a"], chunk_size=10, state_dim=1)


def status(replica: str, sessions: int = 0, busy: float = 0.0, capacity: int = 8) -> Status:
    return Status(CAPABILITIES, replica, sessions, capacity, device_busy=busy)


def order(replicas: list[Status], sticky: str | None = None, robot: str = "arm") -> list[str]:
    return [s.replica_id for s in placement_order(replicas, sticky, robot)]


def test_the_replica_a_robot_is_on_comes_first_however_loaded() -> None:
    assert order([status("r0", 1), status("r1", 7)], sticky="r1") == ["r1", "r0"]


def test_fewest_sessions_for_the_capacity_come_first_then_the_least_busy_device() -> None:
    replicas = [
        status("r0", 4),
        status("r1", 2, capacity=2),
        status("r2", 1),
        status("r3", 1, busy=0.5),
    ]
    assert order(replicas) == ["r2", "r3", "r0", "r1"]


def test_robots_placing_at_once_on_alike_replicas_spread_over_them() -> None:
    # A fleet powering up reads the same statuses: each robot must not pick the same replica.
    alike = [status("r0", 2, busy=0.31), status("r1", 2, busy=0.27), status("r2", 2, busy=0.3)]
    first = Counter(order(alike, robot=f"robot-{i}")[0] for i in range(300))
    assert set(first) == {"r0", "r1", "r2"}
    assert all(60 <= count <= 140 for count in first.values()), first


def test_a_robot_tries_alike_replicas_in_the_same_order_every_time() -> None:
    alike = [status("r0"), status("r1"), status("r2")]
    assert len({tuple(order(alike, robot="arm-7")) for _ in range(5)}) == 1
    assert order(list(reversed(alike)), robot="arm-7") == order(alike, robot="arm-7")


def test_a_device_busier_than_the_others_by_a_tenth_or_more_comes_after_them() -> None:
    for robot in ("arm-1", "arm-2", "arm-3"):
        replicas = [status("r0", 2, busy=0.45), status("r1", 2, busy=0.2), status("r2", 2)]
        assert order(replicas, robot=robot)[-1] == "r0"
