"""A server swapped for one of another revision or action layout: a robot never executes a
chunk of it. Pinned to its revision, it holds and waits for one; unpinned, it finds the
contract broken and goes DEAD, its shutdown callback run."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.chaos.conftest import RobotStarter
from tests.chaos.rig import REORDERED, ChaosCluster
from tests.chaos.verdict import (
    RECOVER_S,
    ROBOT,
    STEADY_S,
    assert_safe,
    audited,
    wait_served_again,
    worst_get_action_ms,
)
from tests.scaleout.cluster import ReplicaSpec
from tests.support.robot_process import RobotProcess

pytestmark = pytest.mark.slow

# A robot meets the new server at its next reconnect attempt (backoff at most 0.5 s) and dies
# at its answer. Generous: a loaded 2-core machine schedules late.
DEAD_WITHIN_S = 5.0


def died_after(robot: RobotProcess, since_s: float, what: str) -> tuple[float, str]:
    """Seconds from `since_s` (the old server's kill) until the robot went DEAD, and why."""
    robot.wait(lambda r: r.state_at("dead", since_s), 30.0, what)
    dead = robot.state_at("dead", since_s)
    assert dead is not None
    return round(dead.at_s - since_s, 3), dead.reason


def test_a_server_of_another_revision_kills_an_unpinned_robot_and_a_pinned_one_waits(
    cluster: ChaosCluster, robots: RobotStarter, record: Callable[..., str]
) -> None:
    router = cluster.start_router()
    cluster.start_server(ReplicaSpec("a0", router, revision="A"))
    pinned, unpinned = robots(router, 1, revision="A", **ROBOT) + robots(router, 1, **ROBOT)
    time.sleep(STEADY_S)
    killed_at = cluster.kill("a0")
    cluster.start_server(ReplicaSpec("b0", router, revision="B"))
    b_at = time.monotonic()
    dead_s, reason = died_after(unpinned, killed_at, "DEAD on meeting revision B")
    # The pinned robot had as long to find B: a second more, and it still only holds.
    time.sleep(1.0)
    assert pinned.state == "reconnecting", pinned.states[-3:]
    cluster.start_server(ReplicaSpec("a1", router, revision="A"))
    a_at = time.monotonic()
    recovered = wait_served_again([pinned], a_at, "served by the new A server")
    audits = audited([pinned, unpinned], cluster)
    figures = record(
        unpinned_dead_after_kill_s=dead_s,
        b_serving_after_kill_s=round(b_at - killed_at, 3),
        pinned_recovery_after_a_s=recovered[0],
        pinned_outage_s=round(a_at - killed_at + recovered[0], 3),
        worst_get_action_ms=worst_get_action_ms(audits),
    )
    assert "contract violation" in reason and "revision" in reason, f"{reason}; {figures}"
    assert killed_at + dead_s < b_at + DEAD_WITHIN_S, figures
    assert recovered[0] < RECOVER_S, figures
    assert pinned.state_at("dead") is None, figures
    assert_safe(audits, figures)


def test_a_server_back_with_its_action_columns_reordered_kills_its_robots(
    cluster: ChaosCluster, robots: RobotStarter, record: Callable[..., str]
) -> None:
    router = cluster.start_router()
    cluster.start_server(ReplicaSpec("r0", router))
    fleet = robots(router, 2, **ROBOT)
    time.sleep(STEADY_S)
    killed_at = cluster.kill("r0")
    cluster.start_server(ReplicaSpec("r0", router), factory=REORDERED)
    back_at = time.monotonic()
    deaths = [died_after(robot, killed_at, "DEAD on the reordered layout") for robot in fleet]
    # Ticks after death: the fallback, never a reordered action.
    audits = audited(fleet, cluster, play_on_s=0.3)
    figures = record(
        dead_after_kill_s=max(s for s, _ in deaths),
        serving_after_kill_s=round(back_at - killed_at, 3),
        worst_get_action_ms=worst_get_action_ms(audits),
    )
    for _, reason in deaths:
        assert "contract violation" in reason and "action_mismatch" in reason, reason
    assert killed_at + max(s for s, _ in deaths) < back_at + DEAD_WITHIN_S, figures
    assert_safe(audits, figures)
