"""The inference pipeline: the device thread runs forwards and nothing else.

Three named threads, one stage each, hand batches along:

    policylink-schedule  wait for ready sessions, let the scheduler choose a batch, decode and
                         check its observations and run each row's preprocessing (rows decode
                         side by side on a small pool)
    policylink-device    one chunk call per batch — the only thread that touches the model
    policylink-reply     check and postprocess each row, reply, capture, audit, metrics

While the device runs one batch the next is being prepared, timed to be ready when the device
frees up (from the forward time measured for that batch size), so it holds every request that
arrived meanwhile. A session is in flight from the moment its request is taken until its reply
is sent, so its processor never sees two requests at once and its chunks leave in order.

A failure anywhere answers only the request that caused it: a row that fails decoding, checks
or preprocessing drops out of its batch with an error to its own robot; a forward that raises is
retried row by row. No stage dies of a request; if one ever dies of a bug, `is_alive()` turns
false, `/healthz` reports it and the app drains.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from statistics import median

from policylink.policy.base import Policy, dummy_observation
from policylink.policy.request_step import (
    Forwarded,
    Prepared,
    RequestStep,
    SessionProcessor,
    StepRequest,
)
from policylink.server.audit import audit_request
from policylink.server.core import ServerCore
from policylink.server.session import Work
from policylink.server.validation import check_observation
from policylink.wire.errors import ErrorCode, WireError
from policylink.wire.header import Header, MsgType
from policylink.wire.messages import ActionChunk, ErrorReply, Observation

log = logging.getLogger("policylink.server")

# Rows of one batch are decoded side by side on this many threads (JPEG decoding releases the
# interpreter lock).
DECODE_THREADS = 2
# How long preparing a batch is assumed to take before one was measured.
PREPARE_GUESS_NS = 2_000_000


def warm_up(policy: Policy, count: int, batch_sizes: Iterable[int] = (1,)) -> dict[int, float]:
    """Run `count` batches of dummy observations per batch size through the request step and
    return the median forward milliseconds per size (the first forward, which pays for lazy
    initialisation, is left out when there are others).

    At start-up it is the warm-up (first-call allocation, kernel selection) that runs before the
    service is declared, and a first entry for the capacity table; `policylink capacity` runs
    it with more repeats over every batch size.
    """
    step = RequestStep(policy)
    medians: dict[int, float] = {}
    for size in batch_sizes:
        sessions = [SessionProcessor(policy.make_processor()) for _ in range(size)]
        times: list[float] = []
        for index in range(count):
            requests = [
                StepRequest(dummy_observation(policy.spec, seed=index * size + row), session, 0)
                for row, session in enumerate(sessions)
            ]
            replies = step.run(requests)
            for reply in replies:
                if isinstance(reply, ErrorReply):
                    raise RuntimeError(f"warm-up at batch {size} failed: {reply.message}")
            times.append(replies[0].inference_ms)
        medians[size] = median(times[1:] or times)
    return medians


@dataclass
class _Row:
    """One request on its way through the pipeline."""

    work: Work
    queue_wait_ms: float
    prepared: Prepared | None = None
    early_reply: ErrorReply | None = None
    forwarded: Forwarded | None = None


@dataclass
class _Batch:
    rows: list[_Row]


class InferenceWorker:
    """Owned by `ServerApp`; `stop()` lets the batches already taken finish and reply, and
    takes nothing new."""

    def __init__(self, core: ServerCore) -> None:
        self.core = core
        self._step = RequestStep(core.policy, reset_policy_on_episode=core.exclusive)
        self._stop = threading.Event()
        self._to_device: queue.Queue[_Batch | None] = queue.Queue()
        self._to_reply: queue.Queue[_Batch | None] = queue.Queue()
        self._pool = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="policylink-decode")
        # Guarded by the registry's lock (its `ready` condition is what the schedule stage
        # sleeps on): batches taken but not yet forwarded, when the device expects to be free
        # (0 while it is idle), and when it last became free.
        self._device_batches = 0
        self._device_free_ns = 0
        self._freed_ns = 0
        # Schedule-thread only: how long preparing a batch has been taking (a moving average).
        self._prepare_ns = PREPARE_GUESS_NS
        self._threads = [
            threading.Thread(target=self._schedule_loop, name="policylink-schedule", daemon=True),
            threading.Thread(target=self._device_loop, name="policylink-device", daemon=True),
            threading.Thread(target=self._reply_loop, name="policylink-reply", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def is_alive(self) -> bool:
        """True while every stage runs; false once any died (or after `stop`)."""
        return all(thread.is_alive() for thread in self._threads)

    def is_running(self) -> bool:
        """True while any stage still runs (a drain may still be finishing a forward)."""
        return any(thread.is_alive() for thread in self._threads)

    def stop(self, timeout_s: float | None = None) -> None:
        self._stop.set()
        self.core.registry.wake()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for thread in self._threads:
            if thread.is_alive():
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self._pool.shutdown(wait=False)

    def _schedule_loop(self) -> None:
        try:
            while (works := self._next_batch()) is not None:
                try:
                    self._to_device.put(self._prepare(works))
                except Exception:  # a bug in bookkeeping: answer nothing, but free the sessions
                    log.exception("preparing a batch failed")
                    for work in works:
                        self.core.registry.finished(work.session)
        finally:
            self._to_device.put(None)

    def _next_batch(self) -> list[Work] | None:
        """Sleep until a batch is due, then take it out of the mailboxes; None once stopping.

        The registry's lock is held only to look and to take: `wait` releases it, so transports
        keep depositing while a batch is being gathered.
        """
        registry, scheduler = self.core.registry, self.core.scheduler
        with registry.ready:
            while not self._stop.is_set():
                ready = registry.ready_sessions_locked()
                now_ns = time.monotonic_ns()
                wait_s = self._wait_s(ready, now_ns)
                if wait_s == 0.0:
                    chosen = scheduler.select(ready, self.core.batch_limit, now_ns)
                    works = [work for s in chosen if (work := s.take()) is not None]
                    self._device_batches += 1
                    return works
                registry.ready.wait(wait_s)
        return None

    def _wait_s(self, ready: list, now_ns: int) -> float | None:
        """0 to take a batch now, else how long to sleep (None: until woken).

        A gathering scheduler fills a batch while it can: while the device is busy, until the
        next batch would just be prepared in time; and for `max_wait_ms` after the device
        frees (or after the oldest request arrived, if later) — the window in which the robots
        of the forward that just ended send their next request. It never waits when every
        open session is already in the batch, so a lone robot pays nothing.
        """
        if not ready or self._device_batches >= 2:
            return None
        if len(ready) >= self.core.batch_limit:
            return 0.0
        if not self.core.scheduler.gathers:
            return 0.0
        if self._device_batches:
            due_ns = self._device_free_ns - self._prepare_ns + self.core.max_wait_ns
        else:
            if self.core.max_wait_ns <= 0 or len(ready) >= self.core.registry.count_locked():
                return 0.0
            oldest_ns = min(s.pending.arrived_ns for s in ready if s.pending is not None)
            due_ns = max(oldest_ns, self._freed_ns) + self.core.max_wait_ns
        return 0.0 if now_ns >= due_ns else (due_ns - now_ns) / 1e9

    def _prepare(self, works: list[Work]) -> _Batch:
        started_ns = time.monotonic_ns()
        rows = [_Row(work, (started_ns - work.request.arrived_ns) / 1e6) for work in works]
        if len(rows) > 1:
            list(self._pool.map(self._prepare_row, rows))
        else:
            for row in rows:
                self._prepare_row(row)
        spent_ns = time.monotonic_ns() - started_ns
        self._prepare_ns = (3 * self._prepare_ns + spent_ns) // 4
        return _Batch(rows)

    def _prepare_row(self, row: _Row) -> None:
        work = row.work
        request, session = work.request, work.session
        try:
            obs = request.decode(request.payload)
            self._check(obs)
        except WireError as exc:
            row.early_reply = ErrorReply(code=exc.code, message=str(exc))
            return
        except Exception:  # a decoder bug on odd input fails this request, never the batch
            log.exception("decoding an observation of session %s failed", session.session_id)
            row.early_reply = ErrorReply(
                ErrorCode.BAD_MESSAGE, "the observation could not be decoded"
            )
            return
        step_request = StepRequest(
            obs,
            session.pipeline,
            request.header.episode_id,
            new_episode=work.reset,
            rtc=session.rtc_enabled,
        )
        prepared = self._step.prepare(step_request)
        if isinstance(prepared, ErrorReply):
            row.early_reply = prepared
        else:
            row.prepared = prepared

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

    def _device_loop(self) -> None:
        try:
            while (batch := self._to_device.get()) is not None:
                try:
                    self._forward(batch)
                except Exception:  # the step contains the policy; this is a bug of ours
                    log.exception("a forward failed outside the policy")
                finally:
                    registry = self.core.registry
                    with registry.ready:
                        self._device_batches -= 1
                        self._device_free_ns = 0
                        self._freed_ns = time.monotonic_ns()
                        registry.ready.notify_all()
                self._to_reply.put(batch)
        finally:
            self._to_reply.put(None)

    def _forward(self, batch: _Batch) -> None:
        rows = [row for row in batch.rows if row.prepared is not None]
        if not rows:
            return
        profile, registry = self.core.forward_profile, self.core.registry
        expected_ms = profile.table().get(len(rows), 0.0)
        start_ns = time.monotonic_ns()
        with registry.ready:
            self._device_free_ns = start_ns + round(expected_ms * 1e6)
        forwarded = self._step.forward([row.prepared for row in rows if row.prepared is not None])
        busy_ns = time.monotonic_ns() - start_ns
        self.core.load.add_busy(busy_ns)
        if not any(isinstance(done.chunk, ErrorReply) for done in forwarded):
            profile.record(len(rows), busy_ns / 1e6)
        self.core.metrics.batch_size.observe(len(rows))
        for row, done in zip(rows, forwarded, strict=True):
            row.forwarded = done

    def _reply_loop(self) -> None:
        while (batch := self._to_reply.get()) is not None:
            for row in batch.rows:
                try:
                    self._finish(row, len(batch.rows))
                except Exception:  # bookkeeping failed (a full capture disk…): keep serving
                    log.exception("replying to session %s failed", row.work.session.session_id)
                finally:
                    self.core.registry.finished(row.work.session)

    def _finish(self, row: _Row, batch_size: int) -> None:
        work = row.work
        reply: ActionChunk | ErrorReply
        if row.early_reply is not None:
            reply = row.early_reply
        elif row.forwarded is not None:
            reply = self._step.finish(row.forwarded)
        else:
            reply = ErrorReply(ErrorCode.INTERNAL, "the request was dropped by the server")
        if isinstance(reply, ActionChunk):
            reply = dataclasses.replace(
                reply,
                queue_wait_ms=row.queue_wait_ms,
                superseded=work.superseded,
                server_load=self.core.load.current(),
            )
        header = self._send(work, reply)
        capture = self.core.capture
        if capture is not None:
            capture.record(
                session_id=work.session.session_id,
                client=work.session.client,
                protocol=work.session.transport,
                request_header=work.request.header,
                payload=work.request.payload,
                observation=None if row.prepared is None else row.prepared.request.observation,
                reset=work.reset,
                rtc=work.session.rtc_enabled,
                batch_size=batch_size,
                reply_header=header,
                reply=reply,
            )
        inference_ms = reply.inference_ms if isinstance(reply, ActionChunk) else 0.0
        self._account(work, reply, row.queue_wait_ms, inference_ms, batch_size)

    def _send(self, work: Work, reply: ActionChunk | ErrorReply) -> Header:
        msg_type = MsgType.ACTION_CHUNK if isinstance(reply, ActionChunk) else MsgType.ERROR
        header = work.request.header.echo(msg_type, work.session.schema_version)
        try:
            work.request.reply(header, reply)
        except Exception:  # a dead link for one robot must not stop the worker
            log.exception("reply to session %s failed", work.session.session_id)
            self.core.metrics.dropped.labels("reply_failed").inc()
        return header

    def _account(
        self,
        work: Work,
        reply: ActionChunk | ErrorReply,
        queue_wait_ms: float,
        inference_ms: float,
        batch_size: int,
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
        if inference_ms:
            metrics.inference.observe(inference_ms / 1e3)
        # The server's own time on the request outside the forward: from leaving the mailbox
        # to the reply being handed to the transport.
        server_ms = (time.monotonic_ns() - work.request.arrived_ns) / 1e6 - queue_wait_ms
        overhead_ms = max(0.0, server_ms - inference_ms)
        metrics.overhead.observe(overhead_ms / 1e3)
        header = work.request.header
        audit_request(
            session_id=work.session.session_id,
            client=work.session.client,
            seq_id=header.seq_id,
            episode_id=header.episode_id,
            queue_wait_ms=queue_wait_ms,
            inference_ms=inference_ms,
            overhead_ms=overhead_ms,
            batch_size=batch_size,
            superseded=work.superseded,
            outcome=outcome,
        )
