"""Placement: robots behind a router spread over the replicas of their namespace, and move on
to the next replica when one is full."""

from __future__ import annotations

import logging
import threading

import pytest
import zenoh

from policylink.client.links.zenoh import ZenohLink
from policylink.wire.keys import Namespace
from policylink.wire.messages import ErrorReply, Status
from tests.scaleout.cluster import Cluster, ReplicaSpec
from tests.scaleout.fleet import Fleet, MarkedRobot, robot_config

pytestmark = pytest.mark.slow


def test_robots_spread_over_the_replicas_within_one_session(cluster: Cluster, fleet: Fleet) -> None:
    router = cluster.start_router()
    cluster.start_replicas(*(ReplicaSpec(f"r{i}", router) for i in range(3)))
    robots = [fleet.start_robot(router) for _ in range(6)]
    fleet.start_loop()
    fleet.run_until(
        lambda: all(len(r.executed) >= 10 for r in robots), 30, 120, "every robot served"
    )
    placed = fleet.placement()
    statuses = cluster.statuses(router)
    assert set(placed) == {"r0", "r1", "r2"}, placed
    assert max(placed.values()) - min(placed.values()) <= 1, placed
    # The replicas agree: each holds the sessions of the robots that say they are on it.
    assert {rid: s.active_sessions for rid, s in statuses.items()} == dict(placed)
    for robot in robots:
        assert robot.markers_since(0) == {cluster.replicas[robot.replica].marker}
    audit = fleet.audit(cluster.revision_of)
    assert audit.clean, audit
    assert audit.stall_ticks == 0, audit


class LockstepLink(ZenohLink):
    """Gathers every replica's status, then waits for the other robots sharing `barrier` before
    asking any replica for a session: robots placing at the same instant, made deterministic."""

    barrier: threading.Barrier | None = None

    def _find_replicas(
        self, session: zenoh.Session, timeout_s: float
    ) -> tuple[Namespace, list[Status]] | ErrorReply:
        found = super()._find_replicas(session, timeout_s)
        barrier, self.barrier = self.barrier, None
        if barrier is not None:
            barrier.wait(30)
        return found


def test_a_robot_refused_for_capacity_lands_on_the_next_replica(
    cluster: Cluster, fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    router = cluster.start_router()
    # r1 has room for two and holds one robot; r0 has room for one and is empty, so two robots
    # that read the statuses at the same instant both aim for r0 first.
    cluster.start_replicas(ReplicaSpec("r1", router, max_sessions=2))
    fleet.start_robot(router)
    cluster.start_replicas(ReplicaSpec("r0", router, max_sessions=1))
    barrier = threading.Barrier(2)
    robots = [MarkedRobot(i, robot_config(router, i), LockstepLink) for i in (1, 2)]
    errors: list[Exception] = []

    def start(robot: MarkedRobot) -> None:
        assert isinstance(robot.link, LockstepLink)
        robot.link.barrier = barrier
        try:
            robot.engine.start()
        except Exception as exc:
            errors.append(exc)

    caplog.set_level(logging.INFO, logger="policylink.client.links.zenoh")
    threads = [threading.Thread(target=start, args=(r,), name=f"start-{r.index}") for r in robots]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        placed = sorted(robot.replica or "" for robot in robots)
    finally:
        for robot in robots:
            robot.engine.stop()
    refusals = [r.getMessage() for r in caplog.records if " refused " in r.getMessage()]
    assert placed == ["r0", "r1"]
    # The one r0 could not take was told it is full, and moved on to the next replica.
    assert len(refusals) == 1, refusals
    assert "replica r0 refused" in refusals[0] and "full" in refusals[0], refusals
