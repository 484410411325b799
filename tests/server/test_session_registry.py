"""The session registry's identity rules, without a network."""

from __future__ import annotations

import itertools

import numpy as np

from policylink import wire
from policylink.policy.registry import PolicyConfig
from policylink.server.core import ServerCore
from policylink.server.manifest import Manifest
from policylink.server.serving_modes import ServingDecision
from tests.server.policies import EchoPolicy


def make_core() -> ServerCore:
    # Unlimited opens: these tests open one client's session many times back to back.
    manifest = Manifest.from_data({"limits": {"session_opens_per_s": 0}})
    return ServerCore(EchoPolicy(PolicyConfig()), manifest, ServingDecision("shared", 4))


def open_as(core: ServerCore, client: str) -> wire.SessionAck:
    caps = core.capabilities
    ack = core.open_session(wire.SessionOpen(client, caps.action_names, caps.state_dim), "test")
    assert isinstance(ack, wire.SessionAck)
    return ack


def test_stale_close_never_removes_the_newer_session_of_the_same_client():
    core = make_core()
    old = open_as(core, "arm")
    new = open_as(core, "arm")
    assert core.close_session(old.session_id, "late close") is False
    assert core.session_id_for_client("arm") == new.session_id


def test_replaced_session_is_reported_closed_as_replaced():
    core = make_core()
    closed = []
    core.add_close_listener(lambda session, reason: closed.append((session.session_id, reason)))
    old = open_as(core, "arm")
    open_as(core, "arm")
    assert closed == [(old.session_id, "replaced")]


def test_epochs_and_session_ids_are_unguessable():
    """A peer that can publish on a robot's key still has to guess a 32-bit epoch."""
    core = make_core()
    acks = [open_as(core, "arm") for _ in range(64)]
    epochs = [ack.session_epoch for ack in acks]
    assert 0 not in epochs
    assert all(a != b for a, b in itertools.pairwise(epochs))
    assert max(epochs) - min(epochs) > 2**20, epochs
    assert len({ack.session_id for ack in acks}) == 64
    assert all(len(ack.session_id) == 32 for ack in acks)


def test_reset_drops_the_old_episodes_unserved_observation():
    core = make_core()
    ack = open_as(core, "arm")
    header = wire.Header(
        wire.SCHEMA_VERSION, wire.MsgType.OBSERVATION, seq_id=1, session_epoch=ack.session_epoch
    )
    obs = wire.Observation(state=np.zeros(4, np.float32))
    core.submit_observation(ack.session_id, header, obs, lambda o: o, lambda h, m: None)
    assert core.registry.get(ack.session_id).pending is not None
    core.reset_session(wire.Reset(ack.session_id, episode_id=1))
    assert core.registry.get(ack.session_id).pending is None


def test_idle_sessions_are_those_silent_past_the_timeout():
    core = make_core()
    quiet, busy = open_as(core, "quiet"), open_as(core, "busy")
    now = core.registry.get(busy.session_id).last_seen_ns + int(5e9)
    core.registry.get(busy.session_id).last_seen_ns = now
    idle = core.registry.idle_sessions(timeout_s=1.0, now_ns=now)
    assert [s.session_id for s in idle] == [quiet.session_id]
