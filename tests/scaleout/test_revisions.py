"""Revisions side by side (a rolling upgrade): a robot pinned to one never runs the other's
actions, whatever replicas come and go."""

from __future__ import annotations

import pytest

from policylink.client import EngineState
from tests.scaleout.cluster import Cluster, ReplicaSpec
from tests.scaleout.fleet import FPS, Fleet

pytestmark = pytest.mark.slow


def test_robots_pinned_to_a_revision_never_land_on_another(cluster: Cluster, fleet: Fleet) -> None:
    router = cluster.start_router()
    cluster.start_replicas(
        ReplicaSpec("a0", router, revision="A"),
        ReplicaSpec("a1", router, revision="A"),
        ReplicaSpec("b0", router, revision="B"),
    )
    on_a = [fleet.start_robot(router, revision="A") for _ in range(2)]
    on_b = [fleet.start_robot(router, revision="B") for _ in range(3)]
    fleet.start_loop()
    fleet.run_until(lambda: all(r.executed for r in fleet.robots), 30, 60, "every robot served")
    # The emptier A replicas do not draw the B robots.
    assert {r.replica for r in on_b} == {"b0"}
    assert {r.replica for r in on_a} == {"a0", "a1"}

    killed_at = cluster.kill("b0")
    # The only B replica is gone: the B robots play their buffers, then hold, and keep
    # asking for a B replica, never an A one, for a second and a half.
    fleet.run_until(
        lambda: all(r.stall_ticks for r in on_b), round(1.5 * FPS), 60, "the B robots stalling"
    )
    assert all(r.replica == "b0" for r in on_b), fleet.placement()
    statuses = cluster.statuses(router)
    assert {rid: s.active_sessions for rid, s in statuses.items()} == {"a0": 1, "a1": 1}
    assert all(r.engine.state is EngineState.RECONNECTING for r in on_b)

    # A B replica comes back (a restarted pod, a new id): the B robots are placed on it.
    cluster.start_replicas(ReplicaSpec("b1", router, revision="B"))
    b1 = cluster.replicas["b1"].marker
    fleet.run_until(
        lambda: all(b1 in r.markers_since(fleet.tick_at(killed_at)) for r in on_b),
        10,
        60,
        "the B robots executing actions of the new B replica",
    )
    fleet.stop()
    assert {r.replica for r in on_b} == {"b1"}
    for robot in on_b:
        assert {cluster.revision_of(e.marker) for e in robot.executed} == {"B"}
    audit = fleet.audit(cluster.revision_of)
    assert audit.clean, audit
    assert not any(r.engine.failed for r in fleet.robots)


def test_an_unpinned_robot_whose_revision_is_gone_dies_rather_than_run_another(
    cluster: Cluster, fleet: Fleet
) -> None:
    router = cluster.start_router()
    cluster.start_replicas(ReplicaSpec("a0", router, revision="A"))
    robot = fleet.start_robot(router)
    fleet.start_loop()
    fleet.run_until(lambda: robot.executed, 10, 60, "the robot served")
    cluster.start_replicas(ReplicaSpec("b0", router, revision="B"))
    cluster.kill("a0")
    # Its namespace has no replica left; the one B replica answers, and its ack names another
    # revision: a contract violation, fatal before a single B action plays.
    fleet.run_until(lambda: robot.engine.failed, 0, 60, "the engine to die")
    fleet.run_ticks(10)
    fleet.stop()
    assert robot.engine.state is EngineState.DEAD
    reason = robot.engine.transitions()[-1].reason
    assert "contract violation" in reason and "revision" in reason, reason
    assert {cluster.revision_of(e.marker) for e in robot.executed} == {"A"}
    assert fleet.audit(cluster.revision_of).clean
