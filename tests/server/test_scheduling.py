"""Round-robin scheduling and latest-only mailboxes, driven through `ServerCore` directly.

The policy here is gated: each forward waits for the test to release it, so the order in which
requests are served is fully determined by the scheduler, not by timing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from policylink import wire
from policylink.policy.registry import PolicyConfig
from policylink.server.core import ServerCore
from policylink.server.inference_worker import InferenceWorker
from policylink.server.manifest import Manifest
from policylink.server.metrics import LoadMeter
from policylink.server.scheduler import RoundRobinScheduler
from policylink.server.serving_modes import ServingDecision
from policylink.server.session import Session
from tests.server.policies import GatedPolicy
from tests.support.waiting import wait_for


class Served:
    """Records replies in the order the worker sends them."""

    def __init__(self) -> None:
        self.replies: list[tuple[str, wire.Header, wire.Message]] = []

    def to(self, client: str):
        return lambda header, message: self.replies.append((client, header, message))

    def order(self) -> list[tuple[str, int]]:
        return [(client, header.seq_id) for client, header, _ in self.replies]


@pytest.fixture
def gated() -> Iterator[tuple[ServerCore, GatedPolicy]]:
    policy = GatedPolicy(PolicyConfig(params={"state_dim": 2}))
    core = ServerCore(policy, Manifest(), ServingDecision("shared", 8))
    worker = InferenceWorker(core)
    worker.start()
    yield core, policy
    for _ in range(16):
        policy.release()
    worker.stop()


def open_session(core: ServerCore, client: str) -> wire.SessionAck:
    caps = core.capabilities
    ack = core.open_session(wire.SessionOpen(client, caps.action_names, caps.state_dim), "test")
    assert isinstance(ack, wire.SessionAck)
    return ack


def submit(core: ServerCore, served: Served, ack: wire.SessionAck, client: str, seq: int) -> None:
    header = wire.Header(
        wire.SCHEMA_VERSION, wire.MsgType.OBSERVATION, seq_id=seq, session_epoch=ack.session_epoch
    )
    obs = wire.Observation(state=np.full(2, seq, np.float32))
    core.submit_observation(ack.session_id, header, obs, lambda o: o, served.to(client))


def busy_then_waiting(
    core: ServerCore,
    policy: GatedPolicy,
    busy: tuple[str, wire.SessionAck],
    waiting: tuple[str, wire.SessionAck],
) -> list[tuple[str, int]]:
    """`busy` sends #1 and, while #1 is in the forward, #2; `waiting` sends #1 meanwhile.
    Returns the order the three requests were served in."""
    served = Served()
    (busy_client, busy_ack), (waiting_client, waiting_ack) = busy, waiting
    submit(core, served, busy_ack, busy_client, 1)
    assert policy.entered.acquire(timeout=10)  # busy#1 is in the forward
    submit(core, served, busy_ack, busy_client, 2)
    submit(core, served, waiting_ack, waiting_client, 1)
    for _ in range(3):
        policy.release()
    wait_for(lambda: len(served.replies) == 3, what="three replies")
    return served.order()


def test_waiting_session_is_served_before_a_busy_one_goes_again(gated):
    core, policy = gated
    fast, slow = open_session(core, "fast"), open_session(core, "slow")
    order = busy_then_waiting(core, policy, ("fast", fast), ("slow", slow))
    assert order == [("fast", 1), ("slow", 1), ("fast", 2)]


def test_rotation_wraps_to_sessions_opened_earlier(gated):
    core, policy = gated
    early, late = open_session(core, "early"), open_session(core, "late")
    order = busy_then_waiting(core, policy, ("late", late), ("early", early))
    assert order == [("late", 1), ("early", 1), ("late", 2)]


def test_newer_observation_supersedes_unserved_one_and_is_reported(gated):
    core, policy = gated
    served = Served()
    ack = open_session(core, "arm")
    submit(core, served, ack, "arm", 1)
    assert policy.entered.acquire(timeout=10)
    for seq in (2, 3, 4):
        submit(core, served, ack, "arm", seq)
    policy.release()
    policy.release()
    wait_for(lambda: len(served.replies) == 2, what="two replies")
    assert served.order() == [("arm", 1), ("arm", 4)]
    chunks = [message for _, _, message in served.replies]
    assert [c.superseded for c in chunks] == [0, 2]
    assert core.metrics.superseded._value.get() == 2


def test_round_robin_serves_every_ready_session_once_per_round():
    scheduler = RoundRobinScheduler()
    sessions = [
        Session(f"s{i}", f"c{i}", i + 1, 1, None, "test", False, order=i)  # type: ignore[arg-type]
        for i in range(3)
    ]
    picks = [scheduler.select(sessions, 1, 0)[0].session_id for _ in range(4)]
    assert picks == ["s0", "s1", "s2", "s0"]
    not_ready_s1 = [sessions[0], sessions[2]]
    assert [scheduler.select(not_ready_s1, 1, 0)[0].session_id for _ in range(3)] == [
        "s2",
        "s0",
        "s2",
    ]
    assert scheduler.select([], 1, 0) == []


def test_load_meter_reports_the_busy_fraction_and_decays_when_idle():
    meter = LoadMeter(window_s=0.05)
    opened = time.monotonic_ns()
    wait_for(lambda: time.monotonic_ns() - opened > 50_000_000, what="one window to pass")
    meter.add_busy(40_000_000)
    assert 0.0 < meter.current() <= 1.0
    wait_for(lambda: meter.current() == 0.0, what="the load to decay while idle")
