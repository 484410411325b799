"""Servers and routers for chaos tests, each a process of its own, with the faults to inflict.

Built on the scale-out cluster (`tests.scaleout.cluster`): servers serve its marked policy, so
every action a robot executes names the server process that computed it. On top of it, a
server can be restarted under the same replica id (a pod restarted in place), hung and
resumed, started with another action layout, or with its audit lines on; a router can be
killed and restarted where its clients keep dialling.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.scaleout.cluster import Cluster, Replica, ReplicaSpec, replica_manifest
from tests.support.router_process import RouterProcess
from tests.support.server_process import ServerProcess

# The marked policy with its action columns in another order: the same motors, other
# meanings — a robot driven by it would move the wrong joints.
REORDERED = "tests.chaos.policies:build_reordered"


class ChaosCluster(Cluster):
    """A `Cluster` whose servers may share an id with a dead predecessor; every marker a
    server ever had keeps its revision (`revision_of`), so the audit names old ones too."""

    def __init__(self, workdir: Path, forward_ms: float) -> None:
        super().__init__(workdir, forward_ms)
        self._revisions: dict[int, str] = {}
        self._starts = 0

    def start_server(
        self,
        spec: ReplicaSpec,
        *,
        factory: str | None = None,
        connect: tuple[str, ...] = (),
        audit: bool = False,
    ) -> Replica:
        """One server, serving; `factory` another policy, `connect` routers to dial besides
        the spec's, `audit` its audit lines in its stderr file."""
        previous = self.replicas.get(spec.replica_id)
        if previous is not None and previous.process.process.poll() is None:
            raise ValueError(f"server {spec.replica_id!r} is still running")
        marker, self._next_marker = self._next_marker, self._next_marker + 1
        manifest = replica_manifest(spec, marker, self.forward_ms)
        if factory is not None:
            manifest["policy"]["factory"] = factory
        manifest["zenoh"]["connect"] += list(connect)
        self._starts += 1
        name = f"server-{spec.replica_id}-{self._starts}"
        process = ServerProcess(
            manifest, self.workdir, name, log_level="INFO" if audit else "WARNING"
        )
        replica = Replica(spec.replica_id, spec.revision, marker, process)
        self.replicas[spec.replica_id] = replica
        self._revisions[marker] = spec.revision
        process.wait_serving()
        return replica

    def revision_of(self, marker: int) -> str | None:
        return self._revisions.get(marker)

    def signal(self, replica_id: str, signum: signal.Signals) -> float:
        """Send `signum` to the server; returns the instant (monotonic s) it went."""
        at_s = time.monotonic()
        self.replicas[replica_id].process.process.send_signal(signum)
        return at_s

    def kill_router(self, index: int) -> float:
        """SIGKILL: the router vanishes with every link through it. Returns the instant."""
        process = self.routers[index].process
        at_s = time.monotonic()
        process.kill()
        process.wait(30)
        return at_s

    def restart_router(self, index: int) -> float:
        """A new router where the killed one listened, joined to the same routers; returns
        the instant it routes."""
        old = self.routers[index]
        connect = tuple(r.endpoint for r in self.routers[:index])
        name = f"router-{index}-{len(self.routers)}"
        router = RouterProcess(self.workdir, name, connect, endpoint=old.endpoint)
        self.routers[index] = router
        router.wait_routing()
        return time.monotonic()

    def close(self) -> None:
        """Resumes a server left hung (a stopped process ignores the SIGTERM that drains it)."""
        for replica in self.replicas.values():
            if replica.process.process.poll() is None:
                replica.process.process.send_signal(signal.SIGCONT)
        super().close()
