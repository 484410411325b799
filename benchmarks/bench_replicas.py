"""Scale-out under failure: a fleet on three replica processes, one killed and one drained.

M robots (12; quick 6) are real `RemoteEngine`s in this process, each with its own Zenoh link
in client mode to a router, ticked at 30 Hz by one control thread (`tests.scaleout.fleet`):
30-step chunks, `buffer_time_s` 0.5 s, fallback `hold`. N = 3 replicas are `policylink serve`
children (`tests.scaleout.cluster`) dialling out to a router, each with room for the whole
fleet; their policy (`tests.scaleout.policies`) sleeps 18 ms per forward (OpenVLA-class batch 1
on an H100, as `benchmarks.gpu_like_policy`) and marks every row with the replica that computed
it, the robot and the observation behind it. So every action a robot *executes* is audited:
from another model, for another robot, older than `max_action_age_s`, or from a replica the
robot had already left. The routers are Zenoh routers inside this process: one, then two in a
mesh (the second joined to the first) with replicas and robots spread across both.

Placement is measured twice: a fleet powering up at one instant (every robot reads the same
statuses before any other's session shows in them), then, after those robots stopped, the
same fleet booted robot after robot, as fleets usually come online. That second fleet runs:
the replica holding the most robots is SIGKILLed; they run; the busiest survivor is drained
(SIGTERM); they run, all on the last replica. Reported per run: sessions per replica at boot
and after each event; per event, for the robots that had to move, the time to notice, to
reopen a session on another replica, and to execute the first action from it (p50/max; this
one is mostly buffer: the robot asks its new replica when its playback falls under
`buffer_time_s`, as always), and the stalls (ticks that played the fallback after a robot's
first action) of the whole fleet until the next event; for the run, the audit's counts (each
must be zero), how late the latest action ran against the tick it was computed for, and the
slowest `get_action()`.

`benchmarks.robot_fleet` runs robots in a child process with a fixed config and counts stalls
only; this benchmark needs each robot's link (its placement) and every executed action, so it
drives the scale-out tests' fleet instead and reuses the percentile helper.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.timing import percentile
from policylink.net.ports import free_port
from policylink.net.zenoh_session import open_zenoh_session
from policylink.net.zenoh_settings import ZenohSettings
from policylink.server import serving_modes
from tests.scaleout.cluster import CHUNK_SIZE, Cluster, ReplicaSpec
from tests.scaleout.fleet import FPS, ROBOT_CONFIG, Fleet, MarkedRobot
from tests.scaleout.policies import VERIFIED

REPLICAS = 3
FORWARD_MS = 18.0


@dataclass(frozen=True)
class Pace:
    robots: int
    settle_s: float
    after_kill_s: float
    after_drain_s: float


FULL = Pace(robots=12, settle_s=3.0, after_kill_s=4.0, after_drain_s=4.0)
QUICK = Pace(robots=6, settle_s=1.5, after_kill_s=2.5, after_drain_s=2.5)


@contextmanager
def routers(count: int) -> Iterator[list[str]]:
    """`count` Zenoh routers in this process on free loopback ports, each joined to the first."""
    endpoints: list[str] = []
    sessions = []
    try:
        for _ in range(count):
            endpoint = f"tcp/127.0.0.1:{free_port()}"
            settings = ZenohSettings(mode="router", listen=[endpoint], connect=endpoints[:1])
            sessions.append(open_zenoh_session(settings))
            endpoints.append(endpoint)
        yield endpoints
    finally:
        for session in reversed(sessions):
            session.close()


def spread_ms(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "max": max(values, default=float("nan"))}


def busiest(fleet: Fleet, among: set[str]) -> str:
    """The replica among `among` that holds the most robots (the lowest id on a tie)."""
    placed = fleet.placement()
    return min(among, key=lambda replica: (-placed.get(replica, 0), replica))


def event_report(
    fleet: Fleet,
    event: str,
    at_s: float,
    victims: list[MarkedRobot],
    until_s: float,
    placement_after: dict[str, int],
) -> dict[str, Any]:
    moves = [fleet.replacement(robot, at_s) for robot in victims]
    done = [move for move in moves if move is not None]
    first, last = fleet.tick_at(at_s), fleet.tick_at(until_s)
    stalls = [sum(first <= t < last for t in robot.stall_ticks) for robot in fleet.robots]
    return {
        "event": event,
        "robots_to_move": len(victims),
        "robots_moved": len(done),
        "noticed_ms": spread_ms([1e3 * m.noticed_s for m in done]),
        "reopened_ms": spread_ms([1e3 * m.reopened_s for m in done]),
        "first_action_ms": spread_ms([1e3 * m.first_action_s for m in done]),
        "stall_ticks": sum(stalls),
        "robots_stalled": sum(s > 0 for s in stalls),
        "placement_after": placement_after,
    }


def placement(fleet: Fleet) -> dict[str, int]:
    """Sessions per replica, every replica of the run named (0 where none landed)."""
    placed = fleet.placement()
    return {f"r{i}": placed[f"r{i}"] for i in range(REPLICAS)}


def spread(placed: dict[str, int]) -> int:
    """Most robots on one replica minus fewest: 0 or 1 is as balanced as it gets."""
    return max(placed.values()) - min(placed.values())


def fleet_placement_together(endpoints: list[str]) -> dict[str, int]:
    """Where robots that start at the same instant land: each reads the replicas' statuses
    before any of the others' sessions show in them. The robots are stopped again."""
    fleet = Fleet()
    try:
        fleet.start_together(endpoints)
        return placement(fleet)
    finally:
        fleet.stop()


def scenario(router_count: int, pace: Pace, workdir: Path) -> dict[str, Any]:
    """One run: boot, kill the busiest replica, drain the busiest survivor (see the module
    docstring); replicas r<i> and robot i dial routers in turn, so in a mesh each router has
    both."""
    cluster = Cluster(workdir / f"routers-{router_count}", forward_ms=FORWARD_MS)
    fleet = Fleet()
    with routers(router_count) as endpoints:
        try:
            cluster.start_replicas(
                *(
                    ReplicaSpec(f"r{i}", endpoints[i % router_count], max_sessions=pace.robots)
                    for i in range(REPLICAS)
                )
            )
            for endpoint in endpoints:
                cluster.wait_visible(endpoint)
            robot_routers = [endpoints[(i + 1) % router_count] for i in range(pace.robots)]
            # A fleet powering up at one instant: every robot reads the same statuses. Then
            # stopped (its sessions close) and booted again robot after robot, as fleets
            # usually come online; that fleet is the one measured.
            together = fleet_placement_together(robot_routers)
            for robot in robot_routers:
                fleet.start_robot(robot)
            boot = placement(fleet)
            fleet.start_loop()
            fleet.run_until(
                lambda: all(r.executed for r in fleet.robots), 0, 60, "every robot served"
            )
            fleet.run_ticks(round(pace.settle_s * FPS))

            killed = busiest(fleet, set(cluster.replicas))
            kill_victims = [r for r in fleet.robots if r.replica == killed]
            killed_at = cluster.kill(killed)
            fleet.run_ticks(round(pace.after_kill_s * FPS))
            after_kill = placement(fleet)

            drained = busiest(fleet, set(cluster.replicas) - {killed})
            drain_victims = [r for r in fleet.robots if r.replica == drained]
            drained_at = cluster.drain(drained)
            fleet.run_ticks(round(pace.after_drain_s * FPS))
            after_drain = placement(fleet)
            ended_at = time.monotonic()
        finally:
            fleet.stop()
            cluster.close()
    audit = fleet.audit(cluster.revision_of)
    return {
        "routers": router_count,
        "replicas": REPLICAS,
        "robots": pace.robots,
        "placement_boot": boot,
        "boot_spread": spread(boot),
        "placement_boot_together": together,
        "boot_together_spread": spread(together),
        "events": [
            event_report(
                fleet, f"SIGKILL {killed}", killed_at, kill_victims, drained_at, after_kill
            ),
            event_report(
                fleet, f"SIGTERM {drained}", drained_at, drain_victims, ended_at, after_drain
            ),
        ],
        "executed_actions": audit.executed,
        "wrong_model": audit.bad_wrong_model,
        "wrong_robot": audit.bad_wrong_robot,
        "too_old": audit.bad_too_old,
        "stale_session": audit.bad_stale_session,
        "late_ticks_max": audit.late_ticks_max,
        "stall_ticks": audit.stall_ticks,
        "robots_dead": sum(r.engine.failed for r in fleet.robots),
        "get_action_calls": audit.get_action_calls,
        "get_action_max_ms": audit.get_action_max_ms,
        "get_action_p99_ms": audit.get_action_p99_ms,
        "examples": audit.worst,
    }


def print_table(runs: list[dict[str, Any]]) -> None:
    for run in runs:
        print(
            f"{run['robots']} robots, {run['replicas']} replicas, {run['routers']} router(s): "
            f"placement booted one by one {run['placement_boot']} (spread "
            f"{run['boot_spread']}), all at once {run['placement_boot_together']} (spread "
            f"{run['boot_together_spread']})"
        )
        print(
            f"  {'event':<12} {'moved':>7} {'noticed p50/max':>16} {'reopened p50/max':>17} "
            f"{'1st action p50/max':>19} {'stalls':>7}  placement after"
        )
        for event in run["events"]:
            moved = f"{event['robots_moved']}/{event['robots_to_move']}"
            columns = [
                f"{event[k]['p50']:.0f}/{event[k]['max']:.0f} ms"
                for k in ("noticed_ms", "reopened_ms", "first_action_ms")
            ]
            print(
                f"  {event['event']:<12} {moved:>7} {columns[0]:>16} {columns[1]:>17} "
                f"{columns[2]:>19} {event['stall_ticks']:>7}  {event['placement_after']}"
            )
        print(
            f"  executed {run['executed_actions']} actions: wrong model {run['wrong_model']}, "
            f"wrong robot {run['wrong_robot']}, too old {run['too_old']}, from a replica left "
            f"{run['stale_session']}; latest action {run['late_ticks_max']} tick(s) behind "
            f"schedule; robots dead {run['robots_dead']}; get_action() max "
            f"{run['get_action_max_ms']:.3f} ms, p99 {run['get_action_p99_ms']:.3f} ms over "
            f"{run['get_action_calls']} calls"
        )


def run(quick: bool = False) -> dict[str, Any]:
    pace = QUICK if quick else FULL
    began = time.monotonic()
    # The replica children copy this registry: the marked policy is served shared.
    serving_modes.VERIFIED_FAMILIES.update(VERIFIED)
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as scratch:
        runs = [scenario(count, pace, Path(scratch)) for count in (1, 2)]
    print_table(runs)
    audited = ("wrong_model", "wrong_robot", "too_old", "stale_session")
    bad = sum(result[key] for result in runs for key in audited)
    print(f"stale, wrong-model or misrouted actions executed: {bad} (must be 0)")
    elapsed = time.monotonic() - began
    print(f"(benchmark ran {elapsed:.0f} s)")
    return {
        "setup": {
            "fps": FPS,
            "chunk_size": CHUNK_SIZE,
            "buffer_time_s": ROBOT_CONFIG["buffer_time_s"],
            "forward_ms": FORWARD_MS,
            "replicas": REPLICAS,
            "robots": pace.robots,
        },
        "runs": runs,
        "bad_actions_executed": bad,
        "elapsed_s": elapsed,
    }
