"""ActionQueue: replace (RTC) and append merges, in-flight accounting, staleness, thread safety."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from policylink.client.action_queue import ActionQueue

NEVER = 10**18
BORN = 1_000


def chunk(start: float, steps: int, width: int = 2) -> np.ndarray:
    """Row t is `start + t` in every column: each action says where it came from."""
    return np.repeat(np.arange(start, start + steps, dtype=np.float32)[:, None], width, axis=1)


def play(queue: ActionQueue, count: int) -> list[float]:
    played = []
    for _ in range(count):
        action, _ = queue.pop(BORN, NEVER)
        assert action is not None
        played.append(float(action[0]))
    return played


def test_first_chunk_of_an_episode_is_kept_whole() -> None:
    queue = ActionQueue(replace=True)
    snap = queue.snapshot()
    result = queue.merge(
        chunk(0, 5), chunk(100, 5), delay=3, index_at_send=snap.index, born_ns=BORN
    )
    assert result.trimmed == 0
    assert play(queue, 5) == [100, 101, 102, 103, 104]


def test_replace_drops_the_steps_played_in_flight_and_replaces_the_remainder() -> None:
    queue = ActionQueue(replace=True)
    queue.merge(chunk(0, 10), chunk(0, 10), delay=0, index_at_send=0, born_ns=BORN)
    play(queue, 2)
    snap = queue.snapshot()
    play(queue, 3)
    result = queue.merge(chunk(50, 10), chunk(500, 10), 3, snap.index, BORN)
    assert (result.consumed_in_flight, result.trimmed, result.queued) == (3, 3, 7)
    model, robot, _ = queue.contents()
    assert robot[:, 0].tolist() == list(range(503, 510))
    assert model[:, 0].tolist() == list(range(53, 60))


def test_replace_trims_what_was_played_even_when_the_delay_estimate_was_wrong() -> None:
    queue = ActionQueue(replace=True)
    queue.merge(chunk(0, 10), chunk(0, 10), delay=0, index_at_send=0, born_ns=BORN)
    snap = queue.snapshot()
    play(queue, 4)
    result = queue.merge(chunk(50, 10), chunk(500, 10), 2, snap.index, BORN)
    assert result.delay_error == 2
    assert play(queue, 1) == [504]


def test_replace_with_more_played_than_the_chunk_holds_leaves_nothing() -> None:
    queue = ActionQueue(replace=True)
    queue.merge(chunk(0, 10), chunk(0, 10), delay=0, index_at_send=0, born_ns=BORN)
    snap = queue.snapshot()
    play(queue, 6)
    queue.merge(chunk(50, 4), chunk(500, 4), 6, snap.index, BORN)
    assert len(queue) == 0
    assert queue.pop(BORN, NEVER) == (None, 0)


def test_append_keeps_the_unplayed_remainder_and_adds_the_whole_chunk_behind_it() -> None:
    queue = ActionQueue(replace=False)
    queue.merge(chunk(0, 4), chunk(0, 4), delay=0, index_at_send=0, born_ns=BORN)
    snap = queue.snapshot()
    play(queue, 1)
    result = queue.merge(chunk(50, 3), chunk(500, 3), 1, snap.index, BORN)
    assert (result.consumed_in_flight, result.trimmed, result.queued) == (1, 0, 6)
    assert play(queue, 6) == [1, 2, 3, 500, 501, 502]


def test_append_of_the_first_chunk_is_the_chunk() -> None:
    queue = ActionQueue(replace=False)
    queue.merge(chunk(0, 3), chunk(7, 3), delay=2, index_at_send=0, born_ns=BORN)
    assert play(queue, 3) == [7, 8, 9]


def test_snapshot_carries_the_left_over_in_both_spaces_capped_at_the_horizon() -> None:
    queue = ActionQueue(replace=True)
    queue.merge(chunk(0, 6), chunk(100, 6), delay=0, index_at_send=0, born_ns=BORN)
    play(queue, 2)
    snap = queue.snapshot(horizon=3)
    assert snap.index == 2
    assert snap.prefix_model[:, 0].tolist() == [2, 3, 4]
    assert snap.prefix_robot[:, 0].tolist() == [102, 103, 104]
    model, robot = queue.left_over()
    assert model[:, 0].tolist() == [2, 3, 4, 5]
    assert robot[:, 0].tolist() == [102, 103, 104, 105]


def test_snapshot_of_an_empty_queue_has_no_prefix() -> None:
    snap = ActionQueue(replace=True).snapshot(horizon=5)
    assert (snap.index, snap.prefix_model, snap.prefix_robot) == (0, None, None)


def test_merge_refuses_a_snapshot_index_from_the_future() -> None:
    queue = ActionQueue(replace=True)
    with pytest.raises(ValueError, match="index_at_send=3 is ahead"):
        queue.merge(chunk(0, 3), chunk(0, 3), delay=0, index_at_send=3, born_ns=BORN)


def test_merge_refuses_model_and_robot_chunks_of_different_lengths() -> None:
    queue = ActionQueue(replace=True)
    with pytest.raises(ValueError, match="same length"):
        queue.merge(chunk(0, 3), chunk(0, 4), delay=0, index_at_send=0, born_ns=BORN)


def test_pop_discards_actions_older_than_the_age_bound_and_counts_them() -> None:
    queue = ActionQueue(replace=False)
    queue.merge(chunk(0, 3), chunk(0, 3), delay=0, index_at_send=0, born_ns=100)
    queue.merge(chunk(10, 2), chunk(10, 2), delay=0, index_at_send=0, born_ns=200)
    action, expired = queue.pop(now_ns=260, max_age_ns=100)
    assert expired == 3
    assert action is not None and action[0] == 10
    assert queue.index == 4


def test_pop_returns_nothing_when_every_action_is_too_old() -> None:
    queue = ActionQueue(replace=True)
    queue.merge(chunk(0, 3), chunk(0, 3), delay=0, index_at_send=0, born_ns=100)
    assert queue.pop(now_ns=1_000, max_age_ns=100) == (None, 3)
    assert not queue.has_fresh(1_000, 100)


def test_clear_keeps_the_consumption_index_monotonic() -> None:
    queue = ActionQueue(replace=True)
    queue.merge(chunk(0, 5), chunk(0, 5), delay=0, index_at_send=0, born_ns=BORN)
    play(queue, 2)
    queue.clear()
    assert (len(queue), queue.index) == (0, 2)


def test_concurrent_pops_and_merges_play_every_action_once_in_order() -> None:
    queue = ActionQueue(replace=False)
    chunks, steps = 200, 5
    played: list[float] = []
    done = threading.Event()

    def consume() -> None:
        while not (done.is_set() and len(queue) == 0):
            action, _ = queue.pop(BORN, NEVER)
            if action is not None:
                played.append(float(action[0]))

    consumer = threading.Thread(target=consume, name="test-consumer")
    consumer.start()
    for index in range(chunks):
        start = index * steps
        queue.merge(chunk(start, steps), chunk(start, steps), 0, queue.index, BORN)
    done.set()
    consumer.join(timeout=30)
    assert played == list(range(chunks * steps))
    assert queue.index == chunks * steps
