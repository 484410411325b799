"""Micro-batching through `ServerCore` and the inference pipeline, without a network.

`TagPolicy` writes into every chunk what it was asked (state, delay, prefix), takes a fixed time
per forward like a GPU (`a + b * N` milliseconds) and records every batch size, so each test can
see which requests shared a forward and whether every answer went back to its own session.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest

from policylink import wire
from policylink.policy.base import ChunkBatch, PassThroughProcessor, PolicySpec, Processor
from policylink.policy.request_step import RequestStep, SessionProcessor, StepRequest
from policylink.policy.transformer import TransformerConfig, TransformerPolicy
from policylink.server.core import ServerCore
from policylink.server.inference_worker import InferenceWorker
from policylink.server.manifest import Manifest
from policylink.server.scheduler import DeadlineScheduler
from policylink.server.serving_modes import ServingDecision
from policylink.server.session import MailboxRequest, Session
from tests.support.waiting import wait_for

CHUNK = 6


class TagPolicy:
    def __init__(self, fixed_ms: float = 0.0, per_row_ms: float = 0.0, limit: int = 64) -> None:
        self._spec = PolicySpec(
            action_names=("state", "delay", "prefix"),
            chunk_size=CHUNK,
            state_dim=1,
            family="tests.tag",
            supports_rtc=True,
            max_batch_size=limit,
        )
        self.fixed_s, self.per_row_s = fixed_ms / 1e3, per_row_ms / 1e3
        self.batch_sizes: list[int] = []

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def make_processor(self) -> Processor:
        return PassThroughProcessor()

    def reset(self) -> None:
        """Stateless."""

    def predict_chunk(self, batch: ChunkBatch) -> np.ndarray:
        self.batch_sizes.append(len(batch))
        time.sleep(self.fixed_s + self.per_row_s * len(batch))
        rows = []
        for sample, delay, prefix in zip(
            batch.samples, batch.inference_delay, batch.prefix, strict=True
        ):
            tag = [
                float(sample["state"][0]),
                float(delay),
                -1.0 if prefix is None else prefix[0, 0],
            ]
            rows.append(np.tile(np.float32(tag), (CHUNK, 1)))
        return np.stack(rows)


class Replies:
    """Every reply the worker sends, by client, on the worker's reply thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_client: dict[str, list[tuple[wire.Header, wire.Message]]] = {}

    def to(self, client: str):
        def deliver(header: wire.Header, message: wire.Message) -> None:
            with self._lock:
                self.by_client.setdefault(client, []).append((header, message))

        return deliver

    def count(self, client: str | None = None) -> int:
        with self._lock:
            if client is not None:
                return len(self.by_client.get(client, []))
            return sum(len(replies) for replies in self.by_client.values())


def served(policy, scheduler: str = "batch", max_wait_ms: float = 0.0, mode: str = "shared"):
    manifest = Manifest(scheduler=scheduler, max_batch_size=8, max_wait_ms=max_wait_ms)
    core = ServerCore(policy, manifest, ServingDecision(mode, 64))
    worker = InferenceWorker(core)
    worker.start()
    return core, worker


@pytest.fixture
def stop_after() -> Iterator[list[InferenceWorker]]:
    workers: list[InferenceWorker] = []
    yield workers
    for worker in workers:
        worker.stop(10)


def open_sessions(core: ServerCore, count: int) -> list[wire.SessionAck]:
    caps = core.capabilities
    acks = []
    for index in range(count):
        ack = core.open_session(
            wire.SessionOpen(f"robot-{index}", caps.action_names, caps.state_dim, rtc=True), "test"
        )
        assert isinstance(ack, wire.SessionAck), ack
        acks.append(ack)
    return acks


def submit(
    core: ServerCore,
    replies: Replies,
    ack: wire.SessionAck,
    client: str,
    seq: int,
    obs: wire.Observation,
    playback_left_ms: float | None = None,
) -> None:
    header = wire.Header(
        wire.SCHEMA_VERSION, wire.MsgType.OBSERVATION, seq_id=seq, session_epoch=ack.session_epoch
    )
    core.submit_observation(
        ack.session_id,
        header,
        obs,
        lambda o: o,
        replies.to(client),
        playback_left_ms=playback_left_ms,
    )


def test_rows_of_a_shared_forward_go_back_to_the_session_that_asked(stop_after):
    policy = TagPolicy(fixed_ms=20)
    core, worker = served(policy)
    stop_after.append(worker)
    acks = open_sessions(core, 16)
    replies = Replies()
    rng = np.random.default_rng(0)
    asked: dict[tuple[str, int], tuple[float, int, float]] = {}
    for seq in range(1, 4):
        for index, ack in enumerate(acks):
            client = f"robot-{index}"
            delay = int(rng.integers(0, 5))
            with_prefix = bool(rng.integers(0, 2))
            prefix_value = float(rng.integers(1, 1000))
            state = float(index * 100 + seq)
            obs = wire.Observation(
                state=np.float32([state]),
                inference_delay_steps=delay,
                prefix_model=np.full((2, 3), prefix_value, np.float32) if with_prefix else None,
            )
            asked[(client, seq)] = (state, delay, prefix_value if with_prefix else -1.0)
            submit(core, replies, ack, client, seq, obs)
        wait_for(lambda seq=seq: replies.count() == 16 * seq, what=f"round {seq} answered")
    assert max(policy.batch_sizes) > 1, policy.batch_sizes
    for (client, seq), expected in asked.items():
        _, chunk = next(r for r in replies.by_client[client] if r[0].seq_id == seq)
        assert isinstance(chunk, wire.ActionChunk)
        assert tuple(chunk.chunk_model[0].tolist()) == expected, (client, seq)


def test_batched_transformer_rows_equal_one_at_a_time_rows():
    policy = TransformerPolicy(TransformerConfig.from_params("tiny", {}), seed=3)
    rng = np.random.default_rng(1)
    observations = [
        wire.Observation(
            state=rng.standard_normal(policy.spec.state_dim).astype(np.float32),
            images={
                cam.name: rng.integers(0, 256, (cam.height, cam.width, 3), dtype=np.uint8)
                for cam in policy.spec.cameras
            },
            inference_delay_steps=index % 3,
            prefix_model=(
                rng.standard_normal((4, policy.spec.action_dim)).astype(np.float32)
                if index % 2
                else None
            ),
        )
        for index in range(6)
    ]
    step = RequestStep(policy)

    def rows() -> list[StepRequest]:
        return [
            StepRequest(obs, SessionProcessor(policy.make_processor()), 0, rtc=True)
            for obs in observations
        ]

    batched = step.run(rows())
    alone = [step.run([row])[0] for row in rows()]
    for together, single in zip(batched, alone, strict=True):
        assert isinstance(together, wire.ActionChunk) and isinstance(single, wire.ActionChunk)
        np.testing.assert_allclose(together.chunk_robot, single.chunk_robot, atol=1e-4)


def test_a_poisoned_row_fails_alone_and_its_batch_mates_are_answered(stop_after):
    class Poisonable(TagPolicy):
        def predict_chunk(self, batch: ChunkBatch) -> np.ndarray:
            if any(float(s["state"][0]) == 666.0 for s in batch.samples):
                self.batch_sizes.append(len(batch))
                raise ValueError("poisoned")
            return super().predict_chunk(batch)

    policy = Poisonable(fixed_ms=5)
    core, worker = served(policy, max_wait_ms=200)
    stop_after.append(worker)
    acks = open_sessions(core, 4)
    replies = Replies()
    for index, ack in enumerate(acks):
        state = 666.0 if index == 2 else float(index)
        submit(core, replies, ack, f"robot-{index}", 1, wire.Observation(np.float32([state])))
    wait_for(lambda: replies.count() == 4, what="four replies")
    assert policy.batch_sizes[0] == 4, policy.batch_sizes
    for index in range(4):
        [(_, message)] = replies.by_client[f"robot-{index}"]
        if index == 2:
            assert isinstance(message, wire.ErrorReply)
            assert message.code is wire.ErrorCode.POLICY_ERROR
        else:
            assert isinstance(message, wire.ActionChunk)
            assert float(message.chunk_model[0, 0]) == index


def test_batch_waits_up_to_max_wait_ms_to_fill_a_forward(stop_after):
    policy = TagPolicy()
    core, worker = served(policy, max_wait_ms=300)
    stop_after.append(worker)
    acks = open_sessions(core, 3)
    replies = Replies()
    for index, ack in enumerate(acks):
        submit(core, replies, ack, f"robot-{index}", 1, wire.Observation(np.float32([index])))
    wait_for(lambda: replies.count() == 3, what="three replies")
    assert policy.batch_sizes == [3]


def test_robots_answered_by_one_forward_share_the_next_one(stop_after):
    """Four closed-loop robots against a 50 ms forward: the window after the device frees
    catches the robots of the forward that just ended, so they stay in one batch instead of
    settling into two halves that take turns."""
    policy = TagPolicy(fixed_ms=50)
    core, worker = served(policy, max_wait_ms=10.0)
    stop_after.append(worker)
    acks = open_sessions(core, 4)
    replies = Replies()
    rounds = 8

    def closed_loop(index: int):
        deliver = replies.to(f"robot-{index}")

        def on_reply(header: wire.Header, message: wire.Message) -> None:
            deliver(header, message)
            if header.seq_id < rounds:
                obs = wire.Observation(np.float32([index]))
                submit_to(header.seq_id + 1, obs)

        def submit_to(seq: int, obs: wire.Observation) -> None:
            header = wire.Header(
                wire.SCHEMA_VERSION,
                wire.MsgType.OBSERVATION,
                seq_id=seq,
                session_epoch=acks[index].session_epoch,
            )
            core.submit_observation(acks[index].session_id, header, obs, lambda o: o, on_reply)

        return submit_to

    for index in range(4):
        closed_loop(index)(1, wire.Observation(np.float32([index])))
    wait_for(lambda: replies.count() == 4 * rounds, timeout_s=60, what="every round answered")
    assert policy.batch_sizes[-4:] == [4, 4, 4, 4], policy.batch_sizes


def test_exclusive_mode_never_batches(stop_after):
    policy = TagPolicy(fixed_ms=10)
    core, worker = served(policy, max_wait_ms=100, mode="exclusive")
    stop_after.append(worker)
    assert core.batch_limit == 1
    replies = Replies()
    [ack] = open_sessions(core, 1)
    for seq in range(1, 6):
        submit(core, replies, ack, "robot-0", seq, wire.Observation(np.float32([seq])))
        wait_for(lambda seq=seq: replies.count() == seq, what=f"reply {seq}")
    assert set(policy.batch_sizes) == {1}


def test_a_policy_that_does_not_batch_gets_one_request_per_forward(stop_after):
    policy = TagPolicy(fixed_ms=10, limit=1)
    core, worker = served(policy, max_wait_ms=100)
    stop_after.append(worker)
    acks = open_sessions(core, 4)
    replies = Replies()
    for index, ack in enumerate(acks):
        submit(core, replies, ack, f"robot-{index}", 1, wire.Observation(np.float32([index])))
    wait_for(lambda: replies.count() == 4, what="four replies")
    assert policy.batch_sizes == [1, 1, 1, 1]


def make_session(name: str, order: int, arrived_ns: int, playback_ms: float | None) -> Session:
    session = Session(
        name, name, order + 1, 1, SessionProcessor(PassThroughProcessor()), "t", False, order
    )
    session.pending = MailboxRequest(
        wire.Header(1, wire.MsgType.OBSERVATION),
        None,
        lambda o: o,
        lambda h, m: None,
        arrived_ns=arrived_ns,
        playback_left_ms=playback_ms,
    )
    return session


def test_deadline_serves_the_robot_about_to_run_dry_first():
    now = 10_000_000_000
    full = make_session("full", 0, now - 5_000_000, 180.0)
    dry = make_session("dry", 1, now, 15.0)
    mid = make_session("mid", 2, now - 1_000_000, 60.0)
    scheduler = DeadlineScheduler()
    assert [s.session_id for s in scheduler.select([full, dry, mid], 2, now)] == ["dry", "mid"]


def test_deadline_caps_how_long_a_full_buffer_can_be_passed_over():
    now = 10_000_000_000
    patient = make_session("patient", 0, now - 300_000_000, 5_000.0)
    urgent = make_session("urgent", 1, now, 100.0)
    scheduler = DeadlineScheduler(max_defer_ms=200)
    assert scheduler.select([urgent, patient], 1, now)[0].session_id == "patient"


def test_deadline_serves_requests_without_a_playback_report_at_once():
    now = 10_000_000_000
    robot = make_session("robot", 0, now - 1_000_000, 50.0)
    openpi = make_session("openpi", 1, now, None)
    assert DeadlineScheduler().select([robot, openpi], 1, now)[0].session_id == "openpi"


@pytest.mark.parametrize("scheduler", ["round_robin", "batch", "deadline"])
def test_no_session_starves_beside_a_fast_robot_and_mixed_rates(stop_after, scheduler):
    """One robot publishing flat out and nine at 10, 30 and 50 Hz share a device slower than
    their demand; every robot is still served, and no request waits more than a few forwards."""
    policy = TagPolicy(fixed_ms=8, per_row_ms=1, limit=4)
    core, worker = served(policy, scheduler=scheduler)
    stop_after.append(worker)
    acks = open_sessions(core, 10)
    replies = Replies()
    rates = [None] + [10, 30, 50] * 3
    stop = threading.Event()

    def publish(index: int, rate: float | None) -> None:
        seq = 0
        while not stop.is_set():
            seq += 1
            playback = None if rate is None else 100.0 + 50 * index
            obs = wire.Observation(np.float32([index]))
            submit(core, replies, acks[index], f"robot-{index}", seq, obs, playback)
            stop.wait(0.0005 if rate is None else 1 / rate)

    threads = [
        threading.Thread(target=publish, args=(i, rate), name=f"robot-{i}", daemon=True)
        for i, rate in enumerate(rates)
    ]
    for thread in threads:
        thread.start()
    try:
        wait_for(
            lambda: all(replies.count(f"robot-{i}") >= 5 for i in range(10)),
            timeout_s=60,
            what="every robot answered five times",
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
    waits = [
        message.queue_wait_ms
        for answers in replies.by_client.values()
        for _, message in answers
        if isinstance(message, wire.ActionChunk)
    ]
    # A request waits for at most the forwards of a full rotation (10 robots, 4 per forward)
    # plus the one it arrived during; generous for a loaded 2-core machine.
    assert max(waits) < 1000, f"worst queue wait {max(waits):.0f} ms"
    sizes = Counter(policy.batch_sizes)
    if scheduler == "round_robin":
        assert set(sizes) == {1}
    else:
        assert max(sizes) > 1, sizes
