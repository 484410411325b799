"""One admission rule for every surface: the core's session opens and the OpenPI upgrade check."""

from __future__ import annotations

from policylink import wire
from policylink.policy.registry import PolicyConfig
from policylink.server.core import ServerCore
from policylink.server.manifest import Manifest
from policylink.server.serving_modes import ServingDecision
from policylink.wire.errors import ErrorCode
from tests.server.policies import GatedPolicy


def core_with(max_sessions: int) -> ServerCore:
    policy = GatedPolicy(PolicyConfig(params={"state_dim": 2}))
    return ServerCore(policy, Manifest(), ServingDecision("shared", max_sessions))


def open_for(core: ServerCore, client: str) -> wire.SessionAck | wire.ErrorReply:
    caps = core.capabilities
    return core.open_session(wire.SessionOpen(client, caps.action_names, caps.state_dim), "test")


def test_a_new_robot_is_admitted_while_there_is_room():
    core = core_with(2)
    assert core.admission.refusal() is None
    assert isinstance(open_for(core, "a"), wire.SessionAck)
    assert core.admission.refusal() is None


def test_a_full_server_refuses_with_the_figures_a_robot_needs_to_go_elsewhere():
    core = core_with(2)
    open_for(core, "a"), open_for(core, "b")
    refusal = core.admission.refusal()
    assert refusal is not None and refusal.code is ErrorCode.CAPACITY
    assert refusal.details["active_sessions"] == 2
    assert refusal.details["max_sessions"] == 2
    assert refusal.details["load"] == 1.0
    assert "try another replica" in refusal.message
    refused = open_for(core, "c")
    assert isinstance(refused, wire.ErrorReply) and refused.code is ErrorCode.CAPACITY


def test_a_robot_that_holds_a_session_reopens_in_its_own_slot_on_a_full_server():
    core = core_with(1)
    open_for(core, "a")
    assert core.admission.refusal("a") is None
    assert core.admission.refusal("b") is not None
    assert isinstance(open_for(core, "a"), wire.SessionAck)


def test_a_draining_server_admits_nobody_whatever_its_room():
    core = core_with(8)
    core.begin_drain()
    refusal = core.admission.refusal()
    assert refusal is not None and refusal.code is ErrorCode.DRAINING
    assert core.status().draining
    refused = open_for(core, "a")
    assert isinstance(refused, wire.ErrorReply) and refused.code is ErrorCode.DRAINING
