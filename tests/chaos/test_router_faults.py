"""The Zenoh router between robots and server killed and restarted, and one router of a mesh
killed: every process re-declares what it declared (subscribers, queryables, liveliness
tokens) on the link it gets back, so the server keeps serving and the robots are served
again, with nothing stale executed in between."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.chaos.conftest import RobotStarter
from tests.chaos.rig import ChaosCluster
from tests.chaos.verdict import (
    NOTICE_KILL_S,
    RECOVER_S,
    ROBOT,
    STEADY_S,
    assert_recovered_safely,
    audited,
    noticed_s,
    wait_served_again,
    worst_get_action_ms,
)
from tests.scaleout.cluster import ReplicaSpec

pytestmark = pytest.mark.slow

ROBOTS = 2
# Outage before the router comes back: long enough for every process to see its link gone.
ROUTER_DOWN_S = 1.0


def test_a_restarted_router_reconnects_robots_and_server_and_serving_resumes(
    cluster: ChaosCluster, robots: RobotStarter, record: Callable[..., str]
) -> None:
    router = cluster.start_router()
    server = cluster.start_server(ReplicaSpec("r0", router))
    fleet = robots(router, ROBOTS, **ROBOT)
    time.sleep(STEADY_S)
    killed_at = cluster.kill_router(0)
    noticed = noticed_s(fleet, killed_at)
    time.sleep(max(0.0, killed_at + ROUTER_DOWN_S - time.monotonic()))
    back_at = cluster.restart_router(0)
    recovered = wait_served_again(fleet, back_at, "served again through the restarted router")
    audits = audited(fleet, cluster, play_on_s=0.5)
    figures = record(
        noticed_s=noticed,
        recovery_after_router_s=max(recovered),
        worst_get_action_ms=worst_get_action_ms(audits),
    )
    assert server.process.process.poll() is None, f"the server exited: {figures}"
    assert noticed < NOTICE_KILL_S, figures
    assert max(recovered) < RECOVER_S, figures
    assert_recovered_safely(fleet, audits, figures)


def test_a_server_dialling_two_routers_of_a_mesh_survives_the_death_of_its_own(
    cluster: ChaosCluster, robots: RobotStarter, record: Callable[..., str]
) -> None:
    robots_router = cluster.start_router()
    server_router = cluster.start_router(connect=(robots_router,))
    # The server dials its own router first, the robots' one when that is gone.
    server = cluster.start_server(ReplicaSpec("r0", server_router), connect=(robots_router,))
    cluster.wait_visible(robots_router)
    fleet = robots(robots_router, ROBOTS, **ROBOT)
    time.sleep(STEADY_S)
    killed_at = cluster.kill_router(1)
    recovered = wait_served_again(fleet, killed_at, "served again across the surviving router")
    audits = audited(fleet, cluster, play_on_s=0.5)
    figures = record(
        recovery_after_router_death_s=max(recovered),
        worst_get_action_ms=worst_get_action_ms(audits),
    )
    assert server.process.process.poll() is None, f"the server exited: {figures}"
    assert max(recovered) < RECOVER_S, figures
    assert_recovered_safely(fleet, audits, figures)
