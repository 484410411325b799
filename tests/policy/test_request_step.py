"""The request step on its own: no threads, no network, numpy policies that show what they saw."""

from __future__ import annotations

import numpy as np
import pytest

from policylink.policy.base import ChunkBatch, PolicySpec, Sample
from policylink.policy.request_step import RequestStep, SessionProcessor, StepRequest
from policylink.wire.errors import ErrorCode
from policylink.wire.messages import ActionChunk, ErrorReply, Observation

CHUNK = 4
POISON = 666.0
NAN_MARKER = 777.0


class OffsetProcessor:
    """Adds its own offset to every robot-space action, so rows show whose processor ran."""

    def __init__(self, offset: float = 0.0, *, fail_on: float | None = None) -> None:
        self.offset = offset
        self.fail_on = fail_on
        self.resets = 0

    def preprocess(self, obs: Observation) -> Sample:
        if self.fail_on is not None and obs.state[0] == self.fail_on:
            raise ValueError("this processor cannot take that state")
        return {"state": obs.state}

    def postprocess(self, chunk_model: np.ndarray) -> np.ndarray:
        return chunk_model + self.offset

    def reset(self) -> None:
        self.resets += 1


class EchoPolicy:
    """`chunk[i, t] = state_i + 100 * delay_i + 10 * (prefix_i given) + t`; raises on POISON,
    returns NaN on NAN_MARKER, and records the size of every forward."""

    def __init__(self) -> None:
        self._spec = PolicySpec(
            action_names=("a", "b"), chunk_size=CHUNK, state_dim=2, family="tests.echo"
        )
        self.forward_sizes: list[int] = []
        self.resets = 0

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def make_processor(self) -> OffsetProcessor:
        return OffsetProcessor()

    def predict_chunk(self, batch: ChunkBatch) -> np.ndarray:
        self.forward_sizes.append(len(batch))
        states = np.stack([np.asarray(s["state"], dtype=np.float32) for s in batch.samples])
        if (states[:, 0] == POISON).any():
            raise RuntimeError("poisoned input")
        delay = np.asarray(batch.inference_delay, dtype=np.float32)[:, None]
        guided = np.asarray([p is not None for p in batch.prefix], dtype=np.float32)[:, None]
        base = states + 100 * delay + 10 * guided
        chunks = base[:, None, :] + np.arange(CHUNK, dtype=np.float32)[None, :, None]
        chunks[states[:, 0] == NAN_MARKER] = np.nan
        return chunks

    def reset(self) -> None:
        self.resets += 1


def request(
    state: float,
    session: SessionProcessor | None = None,
    *,
    episode: int = 0,
    delay: int = 0,
    prefix: bool = False,
    rtc: bool = False,
    new_episode: bool = False,
) -> StepRequest:
    obs = Observation(
        state=np.array([state, 0.0], dtype=np.float32),
        inference_delay_steps=delay,
        prefix_model=np.zeros((2, 2), dtype=np.float32) if prefix else None,
    )
    return StepRequest(
        obs,
        session or SessionProcessor(OffsetProcessor()),
        episode,
        new_episode=new_episode,
        rtc=rtc,
    )


def chunk_of(reply: ActionChunk | ErrorReply) -> ActionChunk:
    assert isinstance(reply, ActionChunk), reply
    return reply


def test_one_row_comes_back_postprocessed_by_its_own_session():
    policy = EchoPolicy()
    session = SessionProcessor(OffsetProcessor(offset=0.5))
    [reply] = RequestStep(policy).run([request(3.0, session)])
    chunk = chunk_of(reply)
    np.testing.assert_array_equal(chunk.chunk_model[:, 0], 3.0 + np.arange(CHUNK))
    np.testing.assert_array_equal(chunk.chunk_robot, chunk.chunk_model + 0.5)
    assert chunk.inference_ms >= 0
    assert policy.forward_sizes == [1]


def test_n_rows_run_in_one_forward_each_with_its_own_delay_prefix_and_processor():
    policy = EchoPolicy()
    sessions = [SessionProcessor(OffsetProcessor(offset=i / 10)) for i in range(3)]
    rows = [
        request(1.0, sessions[0], delay=0),
        request(2.0, sessions[1], delay=2, prefix=True, rtc=True),
        request(3.0, sessions[2], delay=1, prefix=True, rtc=False),
    ]
    replies = [chunk_of(r) for r in RequestStep(policy).run(rows)]
    assert policy.forward_sizes == [3]
    firsts = [float(r.chunk_model[0, 0]) for r in replies]
    assert firsts == [1.0, 2.0 + 200 + 10, 3.0 + 100]
    for index, reply in enumerate(replies):
        np.testing.assert_allclose(reply.chunk_robot - reply.chunk_model, index / 10, atol=1e-4)


def test_episode_boundary_resets_the_processor_once_per_episode():
    policy = EchoPolicy()
    processor = OffsetProcessor()
    session = SessionProcessor(processor)
    step = RequestStep(policy)
    for episode in (0, 0, 0, 1, 1):
        step.run([request(1.0, session, episode=episode)])
    assert processor.resets == 2
    step.run([request(1.0, session, episode=1, new_episode=True)])
    assert processor.resets == 3
    assert policy.resets == 0


def test_an_exclusive_policy_is_reset_with_the_processor():
    policy = EchoPolicy()
    session = SessionProcessor(OffsetProcessor())
    step = RequestStep(policy, reset_policy_on_episode=True)
    for episode in (0, 0, 1):
        step.run([request(1.0, session, episode=episode)])
    assert policy.resets == 2


def test_a_failing_preprocessor_fails_only_its_row():
    policy = EchoPolicy()
    broken = SessionProcessor(OffsetProcessor(fail_on=5.0))
    replies = RequestStep(policy).run([request(1.0), request(5.0, broken), request(2.0)])
    assert [type(r).__name__ for r in replies] == ["ActionChunk", "ErrorReply", "ActionChunk"]
    assert replies[1].code is ErrorCode.POLICY_ERROR
    assert "preprocessing failed" in replies[1].message
    assert policy.forward_sizes == [2]


def test_a_raising_forward_is_retried_row_by_row_so_only_the_poisoned_request_fails():
    policy = EchoPolicy()
    replies = RequestStep(policy).run([request(1.0), request(POISON), request(2.0)])
    assert isinstance(replies[1], ErrorReply)
    assert replies[1].code is ErrorCode.POLICY_ERROR
    assert "RuntimeError: poisoned input" in replies[1].message
    assert float(chunk_of(replies[0]).chunk_model[0, 0]) == 1.0
    assert float(chunk_of(replies[2]).chunk_model[0, 0]) == 2.0
    assert policy.forward_sizes == [3, 1, 1, 1]


def test_a_non_finite_chunk_is_never_returned():
    policy = EchoPolicy()
    replies = RequestStep(policy).run([request(NAN_MARKER), request(1.0)])
    assert isinstance(replies[0], ErrorReply)
    assert replies[0].code is ErrorCode.POLICY_ERROR
    assert "NaN" in replies[0].message
    assert np.isfinite(chunk_of(replies[1]).chunk_robot).all()


def test_a_postprocessor_that_makes_actions_non_finite_fails_its_row():
    class Exploding(OffsetProcessor):
        def postprocess(self, chunk_model: np.ndarray) -> np.ndarray:
            return chunk_model / 0.0

    with np.errstate(divide="ignore", invalid="ignore"):
        [reply] = RequestStep(EchoPolicy()).run([request(1.0, SessionProcessor(Exploding()))])
    assert isinstance(reply, ErrorReply)
    assert "postprocessed chunk" in reply.message


@pytest.mark.parametrize("shape", [(1, CHUNK), (2, CHUNK, 2), (1, CHUNK, 3)])
def test_a_chunk_of_the_wrong_shape_is_a_policy_error(shape):
    class WrongShape(EchoPolicy):
        def predict_chunk(self, batch: ChunkBatch) -> np.ndarray:
            return np.zeros(shape, dtype=np.float32)

    [reply] = RequestStep(WrongShape()).run([request(1.0)])
    assert isinstance(reply, ErrorReply)
    assert "predict_chunk returned shape" in reply.message
