"""A server killed, hung past its lease, and drained under running robots: the robots ride
their buffers, never execute a stale action, and are served again once a server is back."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable

import pytest

from tests.chaos.conftest import FORWARD_MS, RobotStarter
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
from tests.scaleout.cluster import LEASE_MS, Replica, ReplicaSpec
from tests.support.robot_process import RobotProcess

pytestmark = pytest.mark.slow

ROBOTS = 2
# A hung server is noticed once its lease runs out at the router.
NOTICE_HANG_S = LEASE_MS / 1e3 + 1.5
# The forward of the drained server: long enough that a request can be caught on the device.
DRAIN_FORWARD_MS = 300.0


def test_a_killed_and_restarted_server_serves_its_robots_again(
    cluster: ChaosCluster, robots: RobotStarter, record: Callable[..., str]
) -> None:
    router = cluster.start_router()
    cluster.start_server(ReplicaSpec("r0", router))
    fleet = robots(router, ROBOTS, **ROBOT)
    time.sleep(STEADY_S)
    killed_at = cluster.kill("r0")
    noticed = noticed_s(fleet, killed_at)
    cluster.start_server(ReplicaSpec("r0", router))
    back_at = time.monotonic()
    recovered = wait_served_again(fleet, back_at, "served by the restarted server")
    audits = audited(fleet, cluster, play_on_s=0.5)
    figures = record(
        noticed_s=noticed,
        recovery_after_restart_s=max(recovered),
        outage_s=round(back_at - killed_at + max(recovered), 3),
        worst_get_action_ms=worst_get_action_ms(audits),
    )
    assert noticed < NOTICE_KILL_S, figures
    assert max(recovered) < RECOVER_S, figures
    assert_recovered_safely(fleet, audits, figures)


def test_a_server_hung_past_its_lease_is_left_and_rejoined_when_it_resumes(
    cluster: ChaosCluster, robots: RobotStarter, record: Callable[..., str]
) -> None:
    router = cluster.start_router()
    cluster.start_server(ReplicaSpec("r0", router))
    fleet = robots(router, ROBOTS, **ROBOT)
    time.sleep(STEADY_S)
    stopped_at = cluster.signal("r0", signal.SIGSTOP)
    noticed = noticed_s(fleet, stopped_at)
    # Hung three leases in all: long enough that what it held before is too old to play.
    time.sleep(max(0.0, stopped_at + 3 * LEASE_MS / 1e3 - time.monotonic()))
    resumed_at = cluster.signal("r0", signal.SIGCONT)
    recovered = wait_served_again(fleet, resumed_at, "served by the resumed server")
    audits = audited(fleet, cluster, play_on_s=0.5)
    figures = record(
        noticed_s=noticed,
        recovery_after_resume_s=max(recovered),
        worst_get_action_ms=worst_get_action_ms(audits),
    )
    assert noticed < NOTICE_HANG_S, figures
    assert max(recovered) < RECOVER_S, figures
    assert_recovered_safely(fleet, audits, figures)


def audit_answers(server: Replica) -> list[tuple[str, int]]:
    """(robot, seq_id) of every request the server answered with a chunk, from its audit."""
    answered = []
    for line in server.process.stderr_path.read_text().splitlines():
        _, found, body = line.partition("policylink.audit ")
        entry = json.loads(body) if found else {}
        if entry.get("outcome") == "ok":
            answered.append((entry["client"], entry["seq_id"]))
    return answered


def in_flight(fleet: list[RobotProcess], now_s: float) -> tuple[RobotProcess, int] | None:
    """A robot and its request sent 20 to 150 ms ago and unanswered, the oldest of every robot's
    unanswered requests: with a 300 ms forward it is on the device now (alone, or batched with
    the others), not in a mailbox (which a drain empties unanswered). Each robot has one
    request out at most, so nothing older can hold the device."""
    waiting = []
    for robot in fleet:
        robot.read()
        answered = {r.seq_id for r in robot.received}
        pending = [seq for seq in robot.sent if seq not in answered]
        if pending:
            waiting.append((robot, max(pending)))
    if not waiting:
        return None
    robot, seq_id = min(waiting, key=lambda pair: pair[0].sent[pair[1]])
    return (robot, seq_id) if 0.02 <= now_s - robot.sent[seq_id] <= 0.15 else None


def test_a_drain_answers_every_request_it_took_and_its_robots_rejoin_the_restart(
    cluster: ChaosCluster, robots: RobotStarter, record: Callable[..., str]
) -> None:
    cluster.forward_ms = DRAIN_FORWARD_MS
    router = cluster.start_router()
    drained = cluster.start_server(ReplicaSpec("r0", router), audit=True)
    fleet = robots(router, ROBOTS, **ROBOT)
    deadline = time.monotonic() + 20.0
    while (caught := in_flight(fleet, time.monotonic())) is None:
        assert time.monotonic() < deadline, "no request caught in flight within 20 s"
        time.sleep(0.005)
    drained_at = cluster.signal("r0", signal.SIGTERM)
    assert drained.process.process.wait(30) == 0, "the drain did not end cleanly"
    cluster.forward_ms = FORWARD_MS
    cluster.start_server(ReplicaSpec("r0", router))
    back_at = time.monotonic()
    recovered = wait_served_again(fleet, back_at, "served by the restarted server")
    audits = audited(fleet, cluster)
    answered = audit_answers(drained)
    received = {(f"robot-{r.index}", got.seq_id) for r in fleet for got in r.received}
    lost = sorted(set(answered) - received)
    robot, seq_id = caught
    in_flight_answer = next((g for g in robot.received if g.seq_id == seq_id), None)
    played = in_flight_answer is not None and any(
        t.action is not None and t.action[2] == in_flight_answer.obs_tick
        for t in robot.executed_since(drained_at)
    )
    figures = record(
        answered=len(answered),
        lost=len(lost),
        in_flight_answered_after_s=(
            None if in_flight_answer is None else round(in_flight_answer.at_s - drained_at, 3)
        ),
        in_flight_played=played,
        recovery_after_restart_s=max(recovered),
        worst_get_action_ms=worst_get_action_ms(audits),
    )
    assert (f"robot-{robot.index}", seq_id) in answered, f"not taken in: {figures}"
    assert in_flight_answer is not None and in_flight_answer.at_s > drained_at, figures
    # Not only delivered: played, while the robot waited for a server to come back.
    assert played, figures
    assert not lost, f"lost {lost[:5]}: {figures}"
    assert max(recovered) < RECOVER_S, figures
    assert_recovered_safely(fleet, audits, figures)
