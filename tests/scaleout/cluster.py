"""One namespace served by several replica processes behind one or two routers, on loopback.

Everything dials out, as in a deployment: each replica is a `policylink serve` child in Zenoh
client mode connected to a router and listening nowhere; each router a `policylink router`
child (the benchmark runs its routers in its own process and passes their endpoints). Replicas
serve `tests.scaleout.policies`' marked policy, each with its own marker, so every action a
robot executes names the replica (and the revision) that computed it.

Replicas start together and are waited for together, so a test pays for one start-up, not one
per replica.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policylink.client.links.zenoh_discovery import discover
from policylink.net.zenoh_settings import ZenohSettings
from policylink.wire.keys import status_pattern
from policylink.wire.messages import Status
from tests.support.router_process import RouterProcess
from tests.support.server_process import ServerProcess
from tests.support.waiting import wait_for

MODEL_ID = "scaleout"
FACTORY = "tests.scaleout.policies:build_marked"
# A replica that hangs is noticed after about this long; a killed one at once (its link closes).
LEASE_MS = 500
CHUNK_SIZE = 30
FORWARD_MS = 2.0


@dataclass(frozen=True)
class ReplicaSpec:
    """One replica to start: its id, the router it dials, what it serves and how many robots."""

    replica_id: str
    router: str
    revision: str = "A"
    max_sessions: int = 8


@dataclass(frozen=True)
class Replica:
    replica_id: str
    revision: str
    marker: int
    process: ServerProcess


def replica_manifest(spec: ReplicaSpec, marker: int, forward_ms: float) -> dict[str, Any]:
    params = {"marker": marker, "chunk_size": CHUNK_SIZE, "forward_ms": forward_ms}
    return {
        "policy": {"kind": "python", "factory": FACTORY, "params": params},
        "model_id": MODEL_ID,
        "revision": spec.revision,
        "replica_id": spec.replica_id,
        "serving_mode": "shared",
        "max_sessions": spec.max_sessions,
        "warmup_inferences": 1,
        "zenoh": {"mode": "client", "connect": [spec.router], "listen": [], "lease_ms": LEASE_MS},
    }


class Cluster:
    """Routers and replicas started on demand; `close()` stops every one still running.

    The family of the marked policy must be registered as shared in this process's serving-mode
    registry before replicas start: the children copy it (see `tests.support.server_process`).
    """

    def __init__(self, workdir: Path, forward_ms: float = FORWARD_MS) -> None:
        self.workdir = workdir
        self.forward_ms = forward_ms
        workdir.mkdir(parents=True, exist_ok=True)
        self.routers: list[RouterProcess] = []
        self.replicas: dict[str, Replica] = {}
        self._next_marker = 1

    def start_router(self, connect: tuple[str, ...] = ()) -> str:
        """A router (joined to the routers at `connect`, if any); returns its endpoint."""
        name = f"router-{len(self.routers)}"
        router = RouterProcess(self.workdir, name, connect)
        self.routers.append(router)
        return router.wait_routing().endpoint

    def start_replicas(self, *specs: ReplicaSpec) -> list[Replica]:
        """Start every replica at once, then wait until each one serves."""
        started = []
        for spec in specs:
            if spec.replica_id in self.replicas:
                raise ValueError(f"replica {spec.replica_id!r} was started before")
            marker, self._next_marker = self._next_marker, self._next_marker + 1
            manifest = replica_manifest(spec, marker, self.forward_ms)
            process = ServerProcess(manifest, self.workdir, f"replica-{spec.replica_id}")
            replica = Replica(spec.replica_id, spec.revision, marker, process)
            self.replicas[spec.replica_id] = replica
            started.append(replica)
        for replica in started:
            replica.process.wait_serving()
        return started

    def kill(self, replica_id: str) -> float:
        """SIGKILL: the replica vanishes mid-forward, with no goodbye. Returns the instant
        (monotonic seconds) the signal went."""
        process = self.replicas[replica_id].process.process
        at_s = time.monotonic()
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        return at_s

    def drain(self, replica_id: str) -> float:
        """SIGTERM: the replica withdraws its presence, refuses new sessions, finishes its
        forward and exits; the caller does not wait for that. Returns the signal's instant."""
        process = self.replicas[replica_id].process.process
        at_s = time.monotonic()
        process.send_signal(signal.SIGTERM)
        return at_s

    def revision_of(self, marker: int) -> str | None:
        """The revision of the replica that marks its actions with `marker` (None: no such
        replica, so no model this test started)."""
        for replica in self.replicas.values():
            if replica.marker == marker:
                return replica.revision
        return None

    def statuses(self, router: str, timeout_s: float = 5.0) -> dict[str, Status]:
        """Every live replica's status as a robot behind `router` gathers it, by replica id."""
        settings = ZenohSettings(mode="client", connect=[router])
        found, problems = discover(settings, status_pattern(MODEL_ID), timeout_s)
        assert not problems, problems
        return {status.replica_id: status for status in found}

    def wait_visible(self, router: str, timeout_s: float = 30.0) -> None:
        """Until a robot behind `router` sees every replica still running: across a mesh,
        the routers learn each other's replicas shortly after they link up."""
        running = {rid for rid, r in self.replicas.items() if r.process.process.poll() is None}
        wait_for(
            lambda: set(self.statuses(router)) == running,
            timeout_s,
            f"every replica visible behind {router}",
        )

    def close(self) -> None:
        for replica in self.replicas.values():
            replica.process.stop()
        for router in reversed(self.routers):
            router.stop()
