"""The inference worker: the one thread that owns the device, and the request path it runs.

decode → check (here) → the request step (episode boundary → preprocess → chunk call → check →
postprocess, in `policylink.policy.request_step`) → reply (the transport encodes and
publishes). A failure anywhere in that path answers *that* request with an error and the loop
goes on: one robot's malformed observation or a policy exception on one input never takes the
server, or another session, down.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time

from policylink.policy.base import Policy, dummy_observation
from policylink.policy.request_step import RequestStep, SessionProcessor, StepRequest
from policylink.server.audit import audit_request
from policylink.server.core import ServerCore
from policylink.server.session import Work
from policylink.server.validation import check_observation
from policylink.wire.errors import ErrorCode, WireError
from policylink.wire.header import MsgType
from policylink.wire.messages import ActionChunk, ErrorReply, Observation

log = logging.getLogger("policylink.server")


def warm_up(policy: Policy, count: int) -> float:
    """Run `count` requests of a dummy observation through the request step (first-call
    allocation, kernel selection, lazy init) before the service is declared; returns the last
    forward's milliseconds."""
    step = RequestStep(policy)
    session = SessionProcessor(policy.make_processor())
    last_ms = 0.0
    for index in range(count):
        [reply] = step.run([StepRequest(dummy_observation(policy.spec, seed=index), session, 0)])
        if isinstance(reply, ErrorReply):
            raise RuntimeError(f"warm-up failed: {reply.message}")
        last_ms = reply.inference_ms
    return last_ms


class InferenceWorker:
    """Owned by `ServerApp`; `stop()` lets the in-flight request finish and serves nothing new."""

    def __init__(self, core: ServerCore) -> None:
        self.core = core
        self._step = RequestStep(core.policy, reset_policy_on_episode=core.exclusive)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="policylink-inference", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float | None = None) -> None:
        self._stop.set()
        self.core.registry.wake()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        registry = self.core.registry
        while not self._stop.is_set():
            with registry.ready:
                ready = registry.ready_sessions_locked()
                while not ready and not self._stop.is_set():
                    registry.ready.wait()
                    ready = registry.ready_sessions_locked()
                if self._stop.is_set():
                    return
                chosen = self.core.scheduler.select(ready)
                batch = [work for s in chosen if (work := s.take()) is not None]
            for work in batch:
                try:
                    self._serve(work)
                except Exception:  # bookkeeping failed (a full capture disk…): keep serving
                    log.exception("serving session %s failed", work.session.session_id)

    def _serve(self, work: Work) -> None:
        core, session, request = self.core, work.session, work.request
        started_ns = time.monotonic_ns()
        queue_wait_ms = (started_ns - request.arrived_ns) / 1e6
        reply: ActionChunk | ErrorReply
        try:
            obs = request.decode(request.payload)
            self._check(obs)
        except WireError as exc:
            reply = ErrorReply(code=exc.code, message=str(exc))
        else:
            step_request = StepRequest(
                obs,
                session.pipeline,
                request.header.episode_id,
                new_episode=work.reset,
                rtc=session.rtc_enabled,
            )
            [reply] = self._step.run([step_request])
        if isinstance(reply, ActionChunk):
            reply = dataclasses.replace(
                reply,
                queue_wait_ms=queue_wait_ms,
                superseded=work.superseded,
                server_load=core.load.current(),
            )
        self._send(work, reply)
        busy_ns = time.monotonic_ns() - started_ns
        inference_ns = round(reply.inference_ms * 1e6) if isinstance(reply, ActionChunk) else 0
        self._account(work, reply, queue_wait_ms, inference_ns, busy_ns)

    def _check(self, obs: Observation) -> None:
        caps = self.core.capabilities
        check_observation(obs, caps)
        if not obs.task:
            obs.task = caps.default_task
        elif caps.pin_task and obs.task != caps.default_task:
            raise WireError(
                f"observation.task {obs.task!r} refused: the server is pinned to "
                f"{caps.default_task!r}",
                ErrorCode.TASK_PINNED,
            )

    def _send(self, work: Work, reply: ActionChunk | ErrorReply) -> None:
        msg_type = MsgType.ACTION_CHUNK if isinstance(reply, ActionChunk) else MsgType.ERROR
        header = work.request.header.echo(msg_type, work.session.schema_version)
        try:
            work.request.reply(header, reply)
        except Exception:  # a dead link for one robot must not stop the worker
            log.exception("reply to session %s failed", work.session.session_id)
            self.core.metrics.dropped.labels("reply_failed").inc()
        capture = self.core.capture
        if capture is not None:
            capture.record(
                session_id=work.session.session_id,
                client=work.session.client,
                request_header=work.request.header,
                payload=work.request.payload,
                reply_header=header,
                reply=reply,
            )

    def _account(
        self,
        work: Work,
        reply: ActionChunk | ErrorReply,
        queue_wait_ms: float,
        inference_ns: int,
        busy_ns: int,
    ) -> None:
        metrics, stats = self.core.metrics, work.session.stats
        stats.requests += 1
        ok = isinstance(reply, ActionChunk)
        outcome = "ok" if ok else reply.code.value
        metrics.requests.labels("ok" if ok else "error").inc()
        if not ok:
            stats.errors += 1
            metrics.errors.labels(reply.code.value).inc()
        metrics.queue_wait.observe(queue_wait_ms / 1e3)
        if inference_ns:
            metrics.inference.observe(inference_ns / 1e9)
        metrics.overhead.observe((busy_ns - inference_ns) / 1e9)
        self.core.load.add_busy(busy_ns)
        header = work.request.header
        audit_request(
            session_id=work.session.session_id,
            client=work.session.client,
            seq_id=header.seq_id,
            episode_id=header.episode_id,
            queue_wait_ms=queue_wait_ms,
            inference_ms=inference_ns / 1e6,
            overhead_ms=(busy_ns - inference_ns) / 1e6,
            superseded=work.superseded,
            outcome=outcome,
        )
