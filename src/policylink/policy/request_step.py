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
class _Prepared:
    row: int
    request: StepRequest
    sample: Sample


class RequestStep:
    """Runs rows through one policy. `reset_policy_on_episode` is for policies served
    exclusively, whose own state must go at an episode boundary as well as the processor's."""

    def __init__(self, policy: Policy, *, reset_policy_on_episode: bool = False) -> None:
        self.policy = policy
        self.reset_policy_on_episode = reset_policy_on_episode
        self.action_dim = policy.spec.action_dim

    def run(self, requests: Sequence[StepRequest]) -> list[StepReply]:
        """One reply per request, in order; never raises for anything a row or the policy does."""
        replies: list[StepReply | None] = [None] * len(requests)
        prepared: list[_Prepared] = []
        for row, request in enumerate(requests):
            try:
                prepared.append(_Prepared(row, request, self._prepare(request)))
            except Exception as exc:  # processors are user code: fail this row only
                log.exception("preprocessing failed")
                replies[row] = policy_error("preprocessing", exc)
        if prepared:
            for item, reply in zip(prepared, self._forward(prepared), strict=True):
                replies[item.row] = reply
        return [reply for reply in replies if reply is not None]

    def _prepare(self, request: StepRequest) -> Sample:
        obs, session = request.observation, request.session
        if session.starts_episode(request.episode_id, request.new_episode or obs.episode_start):
            session.processor.reset()
            if self.reset_policy_on_episode:
                self.policy.reset()
            session.episode_id = request.episode_id
        return session.processor.preprocess(obs)

    def _forward(self, rows: list[_Prepared]) -> list[StepReply]:
        try:
            chunks, inference_ms = self._call(rows)
        except Exception as exc:
            if len(rows) == 1:
                log.exception("policy failed on a request")
                return [policy_error("policy", exc)]
            log.warning("a forward of %d rows raised; retrying each row alone", len(rows))
            return [reply for row in rows for reply in self._forward([row])]
        return [
            self._finish(item, chunk, inference_ms)
            for item, chunk in zip(rows, chunks, strict=True)
        ]

    def _call(self, rows: list[_Prepared]) -> tuple[np.ndarray, float]:
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

    def _finish(self, item: _Prepared, chunk: np.ndarray, inference_ms: float) -> StepReply:
        if not np.isfinite(chunk).all():
            return non_finite_error("the policy's chunk")
        try:
            robot = np.asarray(item.request.session.processor.postprocess(chunk), dtype=np.float32)
        except Exception as exc:
            log.exception("postprocessing failed")
            return policy_error("postprocessing", exc)
        if not np.isfinite(robot).all():
            return non_finite_error("the postprocessed chunk")
        return ActionChunk(chunk_model=chunk, chunk_robot=robot, inference_ms=inference_ms)


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
