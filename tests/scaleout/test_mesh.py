"""Two routers in a mesh: robots and replicas on different routers still find each other,
spread out, and fail over across the mesh."""

from __future__ import annotations

import pytest

from tests.scaleout.cluster import Cluster, ReplicaSpec
from tests.scaleout.fleet import Fleet

pytestmark = pytest.mark.slow


def test_robots_behind_one_router_place_and_fail_over_across_a_mesh(
    cluster: Cluster, fleet: Fleet
) -> None:
    first = cluster.start_router()
    second = cluster.start_router(connect=(first,))
    cluster.start_replicas(
        ReplicaSpec("r0", first), ReplicaSpec("r1", first), ReplicaSpec("r2", second)
    )
    cluster.wait_visible(second)
    robots = [fleet.start_robot(second) for _ in range(6)]
    fleet.start_loop()
    fleet.run_until(lambda: all(r.executed for r in robots), 30, 60, "every robot served")
    placed = fleet.placement()
    assert set(placed) == {"r0", "r1", "r2"}, placed
    assert max(placed.values()) - min(placed.values()) <= 1, placed

    victims = [r for r in robots if r.replica == "r0"]
    killed_at = cluster.kill("r0")
    fleet.run_until(
        lambda: fleet.moved_off(victims, cluster.replicas["r0"].marker, killed_at),
        30,
        60,
        "the killed replica's robots executing actions from another replica",
    )
    fleet.stop()
    assert all(r.replica in {"r1", "r2"} for r in victims), fleet.placement()
    audit = fleet.audit(cluster.revision_of)
    assert audit.clean, audit
    assert not any(r.engine.failed for r in robots)
