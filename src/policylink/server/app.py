"""`ServerApp`: one manifest in, a warmed policy served over Zenoh out — and a clean drain.

Start-up order matters: the policy is built and warmed up, the worker is running and health is
green *before* the Zenoh surface declares the service, so the first robot never pays for lazy
initialisation. Drain runs the other way: drop the liveliness token (robots fail over), refuse
new work, let the in-flight forward finish and publish, then close the surface.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from policylink.policy.base import Policy
from policylink.policy.registry import build_policy
from policylink.server.capture import RequestCapture
from policylink.server.core import ServerCore
from policylink.server.health import HealthServer
from policylink.server.inference_worker import InferenceWorker, warm_up
from policylink.server.manifest import Manifest
from policylink.server.metrics import ServerMetrics
from policylink.server.serving_modes import decide_serving_mode
from policylink.server.surfaces.zenoh import ZenohServerSurface
from policylink.wire.messages import Capabilities

if TYPE_CHECKING:
    from policylink.server.surfaces.openpi import OpenPIServer

log = logging.getLogger("policylink.server")


class Surface(Protocol):
    """A network surface over the core: `withdraw` stops advertising, `stop` closes it."""

    def withdraw(self) -> None: ...

    def stop(self) -> None: ...


class Housekeeping:
    """A named thread that runs periodic jobs: closing sessions that sent nothing for
    `session_idle_timeout_s` (a robot that vanished without a liveliness token, or whose token
    never reached us) and watching the inference pipeline. A job that raises is logged and
    runs again next period: housekeeping that died silently would leak sessions forever."""

    def __init__(self, period_s: float, jobs: list[Callable[[], object]]) -> None:
        self._period_s = period_s
        self._jobs = jobs
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="policylink-housekeeping", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            for job in self._jobs:
                try:
                    job()
                except Exception:
                    log.exception("housekeeping job %s failed", getattr(job, "__name__", job))


DRAIN_TIMEOUT_S = 60.0


class ServerApp:
    def __init__(
        self, manifest: Manifest | None = None, drain_timeout_s: float = DRAIN_TIMEOUT_S
    ) -> None:
        self.manifest = manifest or Manifest()
        self.drain_timeout_s = drain_timeout_s
        self.metrics = ServerMetrics()
        self.policy: Policy | None = None
        self.surfaces: list[Surface] = []
        self.zenoh: ZenohServerSurface | None = None
        self.openpi: OpenPIServer | None = None
        self._core: ServerCore | None = None
        self._worker: InferenceWorker | None = None
        self._housekeeping: Housekeeping | None = None
        self._health: HealthServer | None = None
        self._warmed = False
        self._stopped = False

    @property
    def core(self) -> ServerCore:
        if self._core is None:
            raise RuntimeError("ServerApp.start() has not run")
        return self._core

    @property
    def capabilities(self) -> Capabilities:
        return self.core.capabilities

    @property
    def health_port(self) -> int | None:
        return None if self._health is None else self._health.port

    def healthy(self) -> bool:
        worker = self._worker
        return self._warmed and worker is not None and worker.is_alive() and not self._stopped

    def start(self) -> ServerApp:
        manifest = self.manifest
        if manifest.torch_threads is not None:
            import torch

            torch.set_num_threads(manifest.torch_threads)
        self.policy = policy = build_policy(
            manifest.policy.to_config(), manifest.device, manifest.dtype
        )
        decision = decide_serving_mode(policy.spec, manifest.serving_mode, manifest.max_sessions)
        for warning in decision.warnings:
            log.warning(warning)
        capture = (
            RequestCapture(manifest.capture.dir, manifest.capture.max_requests)
            if manifest.capture.dir
            else None
        )
        self._core = core = ServerCore(
            policy, manifest, decision, metrics=self.metrics, capture=capture
        )
        if manifest.warmup_inferences:
            sizes = tuple(sorted({1, core.batch_limit}))
            for size, forward_ms in warm_up(policy, manifest.warmup_inferences, sizes).items():
                core.forward_profile.record(size, forward_ms)
                log.info("warmed up at batch %d: last forward %.1f ms", size, forward_ms)
        self._worker = InferenceWorker(core)
        self._worker.start()
        self._warmed = True
        try:
            if manifest.health_port:
                self._health = HealthServer(
                    manifest.health_port, self.healthy, self.metrics, host=manifest.health_host
                )
                self._health.start()
            self.zenoh = ZenohServerSurface(
                core, manifest.zenoh.to_settings(), manifest.namespace()
            )
            self.surfaces.append(self.zenoh)
            self.zenoh.start()
            if manifest.openpi.enabled:
                self.openpi = self._start_openpi(core)
            period_s = min(1.0, manifest.session_idle_timeout_s / 4)
            self._housekeeping = Housekeeping(
                period_s, [core.close_idle_sessions, self._drain_if_worker_died]
            )
            self._housekeeping.start()
        except BaseException:
            self.stop()
            raise
        log.info(self.startup_line())
        return self

    def _drain_if_worker_died(self) -> None:
        """A dead pipeline cannot answer anyone: stop advertising so robots fail over, and
        refuse new work. `/healthz` already reports it (`healthy()`)."""
        worker, core = self._worker, self._core
        if worker is None or core is None or worker.is_alive() or self._stopped or core.draining:
            return
        log.error("the inference pipeline died; withdrawing and draining")
        for surface in self.surfaces:
            surface.withdraw()
        core.begin_drain()

    def _start_openpi(self, core: ServerCore) -> OpenPIServer:
        """Imported here: websockets is only needed where the OpenPI surface is enabled."""
        from policylink.server.surfaces.openpi import OpenPIServer

        settings = self.manifest.openpi
        surface = OpenPIServer(
            core, core.capabilities, settings, settings.api_key(os.environ), healthy=self.healthy
        )
        self.surfaces.append(surface)
        surface.start()
        return surface

    def startup_line(self) -> str:
        core, manifest = self.core, self.manifest
        endpoints = self.zenoh.endpoints if self.zenoh else []
        return (
            f"policylink serve: namespace {manifest.namespace().base} | "
            f"zenoh {manifest.zenoh.mode} "
            f"{', '.join(endpoints) or '(no endpoints)'} | mode {core.decision.mode} | capacity "
            f"{core.max_sessions} sessions | policy {core.policy.spec.family} on {manifest.device}"
            + (f" | health :{self.health_port}" if self._health else "")
            + (f" | openpi {', '.join(self.openpi.urls)}" if self.openpi else "")
        )

    def stop(self) -> None:
        """Drain: withdraw, refuse new work, finish the in-flight forward, close. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for surface in self.surfaces:
            surface.withdraw()
        if self._core is not None:
            self._core.begin_drain()
        if self._worker is not None:
            self._worker.stop(self.drain_timeout_s)
            if self._worker.is_running():
                log.warning(
                    "the in-flight forward did not finish within %.0f s; closing without it",
                    self.drain_timeout_s,
                )
        if self._housekeeping is not None:
            self._housekeeping.stop()
        for surface in reversed(self.surfaces):
            surface.stop()
        if self._health is not None:
            self._health.stop()
        log.info("drained and stopped")

    def __enter__(self) -> ServerApp:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
