"""The inference worker: the one thread that owns the device, and the request path it runs.

decode → check → episode boundary → preprocess → chunk call → postprocess → reply (the
transport encodes and publishes). A failure anywhere in that path answers *that* request with
an error and the loop goes on: one robot's malformed observation or a policy exception on one
input never takes the server, or another session, down.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from policylink.policy.base import ChunkBatch, Policy, dummy_observation
from policylink.server.audit import audit_request
from policylink.server.core import ServerCore, reply_header
from policylink.server.session import Work
from policylink.server.validation import check_observation
from policylink.wire.errors import ErrorCode, WireError
from policylink.wire.header import MsgType
from policylink.wire.messages import ActionChunk, ErrorReply, Observation

log = logging.getLogger("policylink.server")


def warm_up(policy: Policy, count: int) -> float:
    """Run `count` forwards on a dummy observation (first-call allocation, kernel selection,
    lazy init) before the service is declared; returns the last forward's milliseconds."""
    processor = policy.make_processor()
    last_ms = 0.0
    for index in range(count):
        sample = processor.preprocess(dummy_observation(policy.spec, seed=index))
        start = time.perf_counter()
        chunk = policy.predict_chunk(ChunkBatch([sample]))
        last_ms = (time.perf_counter() - start) * 1e3
        processor.postprocess(np.asarray(chunk)[0])
    return last_ms


class InferenceWorker:
    """Owned by `ServerApp`; `stop()` lets the in-flight request finish and serves nothing new."""

    def __init__(self, core: ServerCore) -> None:
        self.core = core
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
        inference_ns = 0
        reply: ActionChunk | ErrorReply
        try:
            obs = request.decode(request.payload)
            self._check(obs)
            self._begin_episode_if_new(work, obs)
            sample = session.processor.preprocess(obs)
            prefix = obs.prefix_model if session.rtc_enabled else None
            batch = ChunkBatch([sample], [obs.inference_delay_steps], [prefix])
            forward_start = time.monotonic_ns()
            chunks = np.asarray(core.policy.predict_chunk(batch), dtype=np.float32)
            inference_ns = time.monotonic_ns() - forward_start
            self._check_chunks(chunks)
            chunk_robot = np.asarray(session.processor.postprocess(chunks[0]), dtype=np.float32)
            reply = ActionChunk(
                chunk_model=chunks[0],
                chunk_robot=chunk_robot,
                queue_wait_ms=queue_wait_ms,
                inference_ms=inference_ns / 1e6,
                superseded=work.superseded,
                server_load=core.load.current(),
            )
        except WireError as exc:
            reply = ErrorReply(code=exc.code, message=str(exc))
        except Exception as exc:  # the policy is user code: contain anything it raises
            log.exception("policy failed on session %s", session.session_id)
            reply = ErrorReply(
                code=ErrorCode.POLICY_ERROR,
                message=f"policy failed on this request: {type(exc).__name__}: {exc}",
            )
        self._send(work, reply)
        busy_ns = time.monotonic_ns() - started_ns
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

    def _begin_episode_if_new(self, work: Work, obs: Observation) -> None:
        """The first observation of a session, a new episode id, `episode_start` or an explicit
        reset all start an episode: per-session processor state (and an exclusive policy's) goes."""
        session, episode_id = work.session, work.request.header.episode_id
        if (
            work.reset
            or obs.episode_start
            or session.episode_id is None
            or session.episode_id != episode_id
        ):
            session.processor.reset()
            if self.core.exclusive:
                self.core.policy.reset()
            session.episode_id = episode_id

    def _check_chunks(self, chunks: np.ndarray) -> None:
        caps = self.core.capabilities
        expected = (1, caps.chunk_size, len(caps.action_names))
        if chunks.ndim != 3 or chunks.shape[0] != 1 or chunks.shape[2] != expected[2]:
            raise RuntimeError(f"predict_chunk returned shape {chunks.shape}, expected {expected}")

    def _send(self, work: Work, reply: ActionChunk | ErrorReply) -> None:
        msg_type = MsgType.ACTION_CHUNK if isinstance(reply, ActionChunk) else MsgType.ERROR
        header = reply_header(work.request.header, work.session.schema_version, msg_type)
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
