"""What every chaos test asserts of every robot, with the figures in the message.

The control loop never blocks: every `get_action()` is timed in the robot's own process. The
issue asks for 2 ms; a 2-core machine running this suite beside servers, routers and other
robots can deschedule the control thread mid-call for a few milliseconds (see
`tests/scaleout/test_failover.py`), so the typical call (p99) is held to 2 ms and the worst
to a bound that a call waiting on the network (hundreds of ms at least) breaks and a
scheduler hiccup does not.
"""

from __future__ import annotations

import time

from tests.chaos.rig import ChaosCluster
from tests.support.robot_process import RobotAudit, RobotProcess

GET_ACTION_P99_MS = 2.0
GET_ACTION_MAX_MS = 25.0
# Every robot of these tests: actions at most a second old (a 30-row chunk at 30 Hz plays for
# one), and an outage of twenty seconds before it gives up — longer than any fault here.
ROBOT = {"max_action_age_s": 1.0, "max_offline_s": 20.0}
# A robot notices a killed server or router at once (a link closes; a hung server takes its
# lease), and is served again within a reconnect backoff and a round trip of the server's
# return. Generous: a loaded 2-core machine schedules late.
NOTICE_KILL_S = 1.0
RECOVER_S = 5.0
# Robots run this long before the fault: mid-episode, with ticks enough for a p99.
STEADY_S = 1.0


def wait_served_again(robots: list[RobotProcess], since_s: float, what: str) -> list[float]:
    """Seconds from `since_s` until each robot executed an action computed after it."""
    for robot in robots:
        robot.wait(lambda r: r.first_fresh_action(since_s), 30.0, what)
    return [round(r.first_fresh_action(since_s).at_s - since_s, 3) for r in robots]  # type: ignore[union-attr]


def noticed_s(robots: list[RobotProcess], since_s: float) -> float:
    """The longest any robot took to leave STREAMING/DEGRADED for RECONNECTING."""
    for robot in robots:
        robot.wait(lambda r: r.state_at("reconnecting", since_s), 30.0, "noticing the fault")
    return round(max(r.state_at("reconnecting", since_s).at_s for r in robots) - since_s, 3)  # type: ignore[union-attr]


def audited(
    robots: list[RobotProcess], cluster: ChaosCluster, play_on_s: float = 0.0
) -> list[RobotAudit]:
    """Let the robots play `play_on_s` longer, stop them, and audit what each executed."""
    time.sleep(play_on_s)
    for robot in robots:
        robot.stop()
    return [robot.audit(cluster.revision_of) for robot in robots]


def worst_get_action_ms(audits: list[RobotAudit]) -> float:
    return round(max(a.get_action_max_ms for a in audits), 3)


def assert_recovered_safely(
    fleet: list[RobotProcess], audits: list[RobotAudit], figures: str
) -> None:
    """No robot went DEAD, and every one stayed safe (`assert_safe`)."""
    assert all(r.state_at("dead") is None for r in fleet), figures
    assert_safe(audits, figures)


def assert_safe(audits: list[RobotAudit], figures: str) -> None:
    """No action too old, from the wrong model or robot, or from a server left behind; no
    `get_action()` that waited."""
    for audit in audits:
        message = f"{audit}; {figures}"
        assert audit.executed, message
        assert audit.clean, message
        assert audit.get_action_p99_ms < GET_ACTION_P99_MS, message
        assert audit.get_action_max_ms < GET_ACTION_MAX_MS, message
