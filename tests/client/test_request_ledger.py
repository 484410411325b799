"""RequestLedger: one request in flight, and only the answer to it merges."""

from __future__ import annotations

import time

import numpy as np

from policylink.client.request_ledger import Outcome
from policylink.wire import ErrorCode, ErrorReply
from tests.client.parts import build, chunk, observation


def test_no_second_request_is_built_while_one_is_in_flight() -> None:
    parts = build()
    parts.request(1.0)
    parts.face.notify_observation(observation(2.0))
    assert parts.ledger.take_request(time.monotonic_ns()) is None
    assert parts.ledger.stats(parts.ladder.state, paused=False).requests == 1


def test_a_chunk_answering_an_abandoned_request_is_dropped() -> None:
    parts = build()
    first = parts.request(1.0)
    assert parts.ledger.abandon(timed_out=True)
    second = parts.request(2.0)
    assert parts.answer(first, chunk(1.0)).outcome is Outcome.STALE
    assert len(parts.face.queue) == 0
    assert parts.answer(second, chunk(2.0)).outcome is Outcome.MERGED
    assert parts.face.get_action()[0] == 2.0
    stats = parts.ledger.stats(parts.ladder.state, paused=False)
    assert (stats.chunks_dropped_stale, stats.chunks_merged, stats.timeouts) == (1, 1, 1)


def test_a_chunk_for_the_episode_before_a_reset_is_dropped() -> None:
    parts = build()
    before = parts.request(1.0)
    assert parts.ledger.reset() == 1
    assert parts.answer(before, chunk(1.0)).outcome is Outcome.STALE
    assert len(parts.face.queue) == 0
    after = parts.request(2.0)
    assert after.header.episode_id == 1
    assert after.observation.episode_start


def test_an_observation_offered_before_a_reset_is_never_sent() -> None:
    parts = build()
    parts.face.notify_observation(observation(1.0))
    parts.ledger.reset()
    assert parts.ledger.take_request(time.monotonic_ns()) is None


def test_a_chunk_holding_nan_is_dropped_as_malformed() -> None:
    parts = build()
    request = parts.request(1.0)
    bad = chunk(1.0)
    bad.chunk_robot[2, 1] = np.nan
    verdict = parts.answer(request, bad)
    assert verdict.outcome is Outcome.MALFORMED
    assert "NaN" in verdict.problem
    assert len(parts.face.queue) == 0


def test_an_error_reply_frees_the_slot_for_the_next_request() -> None:
    parts = build()
    request = parts.request(1.0)
    verdict = parts.answer(request, ErrorReply(ErrorCode.POLICY_ERROR, "forward raised"))
    assert verdict.outcome is Outcome.ERROR
    assert "forward raised" in verdict.problem
    assert parts.request(2.0).header.seq_id == request.header.seq_id + 1


def test_no_request_is_built_until_the_buffer_runs_low_unless_forced() -> None:
    parts = build(buffer_time_s=0.05)
    parts.answer(parts.request(1.0), chunk(1.0, rows=10))
    parts.face.notify_observation(observation(2.0))
    assert parts.ledger.take_request(time.monotonic_ns()) is None
    assert parts.ledger.take_request(time.monotonic_ns(), force=True) is not None
