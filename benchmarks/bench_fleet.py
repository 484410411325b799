"""The demo's claim, measured: async against blocking inference on one server, 0 and 100 ms RTT.

Four simulated arms (robot clients over Zenoh on loopback) share one `policylink serve`
process running the sim expert with the small transformer backbone. Each network condition
runs the same episodes with `RemoteEngine` and with `SyncEngine`; the 100 ms round trip is
added on the robots' side by the impairment wrapper. Reported side by side: success rate,
mean completion time on the episodes both engines solved, and control ticks spent waiting on
the network.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from policylink.client.links.impairment import NetworkImpairment
from policylink.demo.fleet import Fleet, FleetConfig
from policylink.demo.server_process import MODEL_ID, ServerProcess, demo_manifest
from policylink.demo.summary import compare, summarize
from policylink.net.ports import free_port
from policylink.sim import CameraConfig, ReachTrackConfig

POLICY_SIZE = "small"
CAMERA = CameraConfig("top", 480, 640)


def _condition(endpoint: str, rtt_ms: float, robots: int, episodes: int, track_s: float) -> dict:
    config = FleetConfig(
        endpoint=endpoint,
        model_id=MODEL_ID,
        robots=robots,
        episodes=episodes,
        task=ReachTrackConfig(track_s=track_s),
        cameras=(CAMERA,),
        impairment=NetworkImpairment(rtt_ms=rtt_ms),
    )
    phases = []
    for engine in ("async", "sync"):
        fleet = Fleet(config, engine)
        fleet.start()
        phases.append(fleet.join())
    summaries = {s.engine: s for s in (summarize(p, config.fps) for p in phases)}
    comparison = compare(phases[0], phases[1])
    return {
        "rtt_added_ms": rtt_ms,
        "speedup": comparison.speedup,
        "paired_episodes": comparison.paired_episodes,
        **{
            engine: {
                "success_rate": s.success_rate,
                "episodes": s.episodes,
                "mean_completion_s": s.mean_completion_s,
                "waiting_ticks": s.waiting_ticks,
                "ticks": s.ticks,
                "rtt_p50_ms": s.rtt_p50_ms,
                "mean_tracking_error_mm": s.mean_tracking_error_mm,
            }
            for engine, s in summaries.items()
        },
    }


def _print(conditions: list[dict]) -> None:
    print(
        f"{'added RTT':>9} {'engine':>6} {'success':>8} {'completion':>11} "
        f"{'waiting ticks':>14} {'RTT p50':>8} {'speedup':>8}"
    )
    for row in conditions:
        for engine in ("async", "sync"):
            r = row[engine]
            completion = r["mean_completion_s"]
            speedup = f"{row['speedup']:.2f}x" if engine == "async" and row["speedup"] else ""
            print(
                f"{row['rtt_added_ms']:>7.0f}ms {engine:>6} {r['success_rate']:>8.0%} "
                f"{completion if completion is None else f'{completion:.2f} s':>11} "
                f"{r['waiting_ticks']:>6} of {r['ticks']:<5} {r['rtt_p50_ms'] or 0:>6.1f}ms "
                f"{speedup:>8}"
            )


def run(quick: bool = False) -> dict[str, Any]:
    robots, episodes, track_s = (2, 1, 1.0) if quick else (4, 3, 3.0)
    conditions_ms = (0.0,) if quick else (0.0, 100.0)
    port = free_port()
    camera = {"name": CAMERA.name, "height": CAMERA.height, "width": CAMERA.width}
    manifest = demo_manifest(port, POLICY_SIZE, [camera], 30.0, robots)
    with (
        tempfile.TemporaryDirectory(prefix="bench-fleet-") as scratch,
        ServerProcess(manifest, Path(scratch)) as server,
    ):
        conditions = [
            _condition(server.endpoint, rtt, robots, episodes, track_s) for rtt in conditions_ms
        ]
    _print(conditions)
    results: dict[str, Any] = {
        "robots": robots,
        "episodes_per_robot": episodes,
        "policy_size": POLICY_SIZE,
        "conditions": conditions,
    }
    if len(conditions) == 2:
        results["async_success_drop_points_at_100ms"] = 100 * (
            conditions[0]["async"]["success_rate"] - conditions[1]["async"]["success_rate"]
        )
    return results
