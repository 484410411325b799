"""The one request step: N checked observations in, N chunks (or N per-row errors) out.

episode boundary → preprocess → one chunk call for every row → check → postprocess. The server's
inference worker, `LocalEngine` and the server's warm-up all run exactly this code, so a chunk
computed remotely and one computed in process cannot drift apart by construction. Pure: no
threads, no network, no clock but the forward's own timer, so it is tested directly.

Rows fail alone. A row whose processor raises drops out before the forward; a forward that
raises is retried one row at a time, so only the request that poisons it fails; a row whose
chunk holds NaN or Inf is answered `policy_error` — a non-finite action never reaches a robot.
Decoding and contract checks stay with the caller: they differ between a wire message and an
observation the robot handed over in process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from policylink.policy.base import ChunkBatch, Policy, Processor, Sample
from policylink.wire.errors import ErrorCode
from policylink.wire.messages import ActionChunk, ErrorReply, Observation

log = logging.getLogger(__name__)

StepReply = ActionChunk | ErrorReply


class SessionProcessor:
    """One session's processor and the episode it currently holds state for.

    Touched only by the thread that runs the step for this session (the inference worker, or a
    `LocalEngine`'s worker), so it needs no lock.
    """

    def __init__(self, processor: Processor) -> None:
        self.processor = processor
        self.episode_id: int | None = None

    def starts_episode(self, episode_id: int, forced: bool) -> bool:
        """A new episode id, the session's first request, or an explicit reset begin one."""
        return forced or self.episode_id is None or self.episode_id != episode_id


@dataclass
class StepRequest:
    """One row: a decoded, checked observation and the session state it is served with.

    `new_episode` forces an episode boundary (an explicit reset, or the observation's
    `episode_start`); `rtc` says whether the observation's model-space prefix guides the chunk.
    """

    observation: Observation
    session: SessionProcessor
    episode_id: int
    new_episode: bool = False
    rtc: bool = False


@dataclass
class Prepared:
    """A row after its episode boundary and preprocessing: ready for a chunk call."""

    request: StepRequest
    sample: Sample


@dataclass
class Forwarded:
    """A row after the chunk call: its model-space chunk (or the error it met) and how long
    the forward that produced it took."""

    prepared: Prepared
    chunk: np.ndarray | ErrorReply
    inference_ms: float = 0.0


class RequestStep:
    """Runs rows through one policy, in three phases a pipelined server can run on different
    threads — `prepare` (per row), `forward` (one chunk call for all rows), `finish` (per row) —
    or all at once with `run`. `reset_policy_on_episode` is for policies served exclusively,
    whose own state must go at an episode boundary as well as the processor's.

    A session's rows must pass through the phases in order, one at a time: its processor
    holds state between `prepare` and `finish` (a relative-action policy adds back the state
    it cached).
    """

    def __init__(self, policy: Policy, *, reset_policy_on_episode: bool = False) -> None:
        self.policy = policy
        self.reset_policy_on_episode = reset_policy_on_episode
        self.action_dim = policy.spec.action_dim

    def run(self, requests: Sequence[StepRequest]) -> list[StepReply]:
        """One reply per request, in order; never raises for anything a row or the policy does."""
        prepared = [self.prepare(request) for request in requests]
        ready = [item for item in prepared if isinstance(item, Prepared)]
        finished = iter([self.finish(item) for item in self.forward(ready)])
        return [item if isinstance(item, ErrorReply) else next(finished) for item in prepared]

    def prepare(self, request: StepRequest) -> Prepared | ErrorReply:
        """Episode boundary, then preprocess; a processor that raises fails this row only."""
        obs, session = request.observation, request.session
        try:
            if session.starts_episode(request.episode_id, request.new_episode or obs.episode_start):
                session.processor.reset()
                if self.reset_policy_on_episode:
                    self.policy.reset()
                session.episode_id = request.episode_id
            return Prepared(request, session.processor.preprocess(obs))
        except Exception as exc:  # processors are user code
            log.exception("preprocessing failed")
            return policy_error("preprocessing", exc)

    def forward(self, rows: Sequence[Prepared]) -> list[Forwarded]:
        """One chunk call for every row; if it raises, each row is retried alone, so only the
        request that poisons the forward fails."""
        if not rows:
            return []
        try:
            chunks, inference_ms = self._call(rows)
        except Exception as exc:
            if len(rows) == 1:
                log.exception("policy failed on a request")
                return [Forwarded(rows[0], policy_error("policy", exc))]
            log.warning("a forward of %d rows raised; retrying each row alone", len(rows))
            return [done for row in rows for done in self.forward([row])]
        return [
            Forwarded(item, chunk, inference_ms) for item, chunk in zip(rows, chunks, strict=True)
        ]

    def finish(self, done: Forwarded) -> StepReply:
        """Check and postprocess one row's chunk; a non-finite chunk is never returned."""
        chunk = done.chunk
        if isinstance(chunk, ErrorReply):
            return chunk
        if not np.isfinite(chunk).all():
            return non_finite_error("the policy's chunk")
        try:
            processor = done.prepared.request.session.processor
            robot = np.asarray(processor.postprocess(chunk), dtype=np.float32)
        except Exception as exc:
            log.exception("postprocessing failed")
            return policy_error("postprocessing", exc)
        if not np.isfinite(robot).all():
            return non_finite_error("the postprocessed chunk")
        return ActionChunk(chunk_model=chunk, chunk_robot=robot, inference_ms=done.inference_ms)

    def _call(self, rows: Sequence[Prepared]) -> tuple[np.ndarray, float]:
        batch = ChunkBatch(
            [item.sample for item in rows],
            [item.request.observation.inference_delay_steps for item in rows],
            [item.request.observation.prefix_model if item.request.rtc else None for item in rows],
        )
        start_ns = time.monotonic_ns()
        chunks = np.asarray(self.policy.predict_chunk(batch), dtype=np.float32)
        inference_ms = (time.monotonic_ns() - start_ns) / 1e6
        if chunks.ndim != 3 or chunks.shape[0] != len(rows) or chunks.shape[2] != self.action_dim:
            raise RuntimeError(
                f"predict_chunk returned shape {chunks.shape}, expected "
                f"({len(rows)}, T, {self.action_dim})"
            )
        return chunks, inference_ms


def policy_error(where: str, exc: BaseException) -> ErrorReply:
    return ErrorReply(
        code=ErrorCode.POLICY_ERROR,
        message=f"{where} failed on this request: {type(exc).__name__}: {exc}",
    )


def non_finite_error(what: str) -> ErrorReply:
    return ErrorReply(
        code=ErrorCode.POLICY_ERROR,
        message=f"{what} holds NaN or infinite values; it was not sent",
    )
