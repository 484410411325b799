"""Per-robot rate limits and bounded bookkeeping: a flooding peer is refused at the door, unused
sessions give their capacity back, and nothing a client sends becomes a metrics label."""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import pytest

from policylink import wire
from policylink.policy.registry import PolicyConfig
from policylink.server import audit
from policylink.server import core as core_module
from policylink.server.core import ServerCore
from policylink.server.manifest import Manifest
from policylink.server.metrics import CLOSE_REASONS, OTHER
from policylink.server.rate_limit import FailureThrottle, RateLimiter
from policylink.server.serving_modes import ServingDecision
from tests.server.policies import EchoPolicy
from tests.support.waiting import wait_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --- token buckets -----------------------------------------------------------------------------


def test_a_bucket_allows_its_burst_then_its_rate():
    clock = FakeClock()
    limiter = RateLimiter(4.0, 5, clock=clock)
    assert [limiter.allow("arm") for _ in range(6)] == [True] * 5 + [False]
    clock.now += 0.25  # one token back
    assert [limiter.allow("arm") for _ in range(2)] == [True, False]
    clock.now += 60.0  # refills up to the burst, no further
    assert sum(limiter.allow("arm") for _ in range(10)) == 5


def test_each_robot_has_its_own_bucket():
    limiter = RateLimiter(1.0, 1, clock=FakeClock())
    assert limiter.allow("arm-1") and limiter.allow("arm-2")
    assert not limiter.allow("arm-1")


def test_a_rate_of_zero_allows_everything():
    limiter = RateLimiter(0.0, 1)
    assert all(limiter.allow("arm") for _ in range(1000))
    assert len(limiter) == 0


def test_the_bucket_table_is_bounded_whatever_keys_peers_invent():
    limiter = RateLimiter(1.0, 1, max_keys=100, clock=FakeClock())
    for index in range(10_000):
        limiter.allow(f"robot-{index}")
    assert len(limiter) == 100


def test_failures_lock_an_address_out_for_a_while():
    clock = FakeClock()
    throttle = FailureThrottle(3, window_s=60.0, lockout_s=30.0, clock=clock)
    assert [throttle.failed("10.0.0.9") for _ in range(3)] == [False, False, True]
    assert throttle.locked_for_s("10.0.0.9") == pytest.approx(30.0)
    assert throttle.locked_for_s("10.0.0.10") == 0.0
    clock.now += 31.0
    assert throttle.locked_for_s("10.0.0.9") == 0.0


def test_failures_spread_beyond_the_window_do_not_lock_out():
    clock = FakeClock()
    throttle = FailureThrottle(3, window_s=10.0, lockout_s=30.0, clock=clock)
    for _ in range(10):
        assert throttle.failed("10.0.0.9") is False
        clock.now += 6.0


def test_a_success_forgets_earlier_failures():
    throttle = FailureThrottle(2, window_s=60.0, lockout_s=30.0, clock=FakeClock())
    throttle.failed("10.0.0.9")
    throttle.succeeded("10.0.0.9")
    assert throttle.failed("10.0.0.9") is False


# --- the core enforces them --------------------------------------------------------------------


def make_core(max_sessions: int = 8, **manifest: object) -> ServerCore:
    policy = EchoPolicy(PolicyConfig(params={"state_dim": 2}))
    return ServerCore(policy, Manifest.from_data(manifest), ServingDecision("shared", max_sessions))


def open_request(core: ServerCore, client: str) -> wire.SessionOpen:
    caps = core.capabilities
    return wire.SessionOpen(client, caps.action_names, caps.state_dim)


def opened(core: ServerCore, client: str) -> wire.SessionAck:
    ack = core.open_session(open_request(core, client), "test")
    assert isinstance(ack, wire.SessionAck), ack
    return ack


def header(ack: wire.SessionAck, seq_id: int) -> wire.Header:
    return wire.Header(
        wire.SCHEMA_VERSION,
        wire.MsgType.OBSERVATION,
        seq_id=seq_id,
        session_epoch=ack.session_epoch,
    )


def test_session_opens_beyond_the_burst_are_refused_as_rate_limited():
    core = make_core(limits={"session_opens_per_s": 1, "session_open_burst": 3})
    replies = [core.open_session(open_request(core, "arm"), "test") for _ in range(5)]
    assert [type(reply).__name__ for reply in replies] == ["SessionAck"] * 3 + ["ErrorReply"] * 2
    assert replies[-1].code is wire.ErrorCode.RATE_LIMITED
    assert "limits.session_opens_per_s" in replies[-1].message
    assert core.metrics.sessions_rejected.labels("rate_limited")._value.get() == 2
    assert isinstance(core.open_session(open_request(core, "arm-2"), "test"), wire.SessionAck)


def test_resets_beyond_the_burst_are_refused_as_rate_limited():
    core = make_core(limits={"resets_per_s": 1, "reset_burst": 2})
    ack = opened(core, "arm")
    replies = [core.reset_session(wire.Reset(ack.session_id, episode)) for episode in (1, 2, 3)]
    assert isinstance(replies[1], wire.ResetAck)
    assert replies[2].code is wire.ErrorCode.RATE_LIMITED


def test_a_robot_that_waits_for_its_answers_is_never_rate_limited():
    core = make_core(limits={"observations_per_s": 1, "observation_burst": 1})
    ack = opened(core, "arm")
    session = core.registry.get(ack.session_id)
    obs = wire.Observation(state=np.zeros(2, np.float32))
    for seq in range(1, 501):
        core.submit_observation(ack.session_id, header(ack, seq), obs, lambda o: o, print)
        with core.registry.ready:
            work = session.take()
        assert work is not None and work.request.header.seq_id == seq
        core.registry.finished(session)
    assert core.metrics.dropped.labels("rate_limited")._value.get() == 0


def test_a_robot_that_floods_has_its_extra_observations_dropped(caplog):
    core = make_core(limits={"observations_per_s": 1, "observation_burst": 10})
    ack = opened(core, "arm")
    obs = wire.Observation(state=np.zeros(2, np.float32))
    with caplog.at_level(logging.INFO, logger="policylink.audit"):
        for seq in range(1, 101):
            core.submit_observation(
                ack.session_id, header(ack, seq), obs, lambda o: o, print, client="arm"
            )
    # The first fills the idle mailbox for free, ten more supersede it, the rest are dropped.
    assert core.metrics.dropped.labels("rate_limited")._value.get() == 89
    assert core.metrics.superseded._value.get() == 10
    lines = [json.loads(r.message) for r in caplog.records if r.name == "policylink.audit"]
    assert {"event": "observation", "outcome": "rate_limited", "client": "arm"}.items() <= lines[
        0
    ].items()


def test_observations_without_a_session_are_rate_limited_too():
    core = make_core(limits={"observations_per_s": 1, "observation_burst": 5})
    answered: list[wire.ErrorReply] = []
    stranger = wire.SessionAck("", 7, 1, core.capabilities)
    obs = wire.Observation(state=np.zeros(2, np.float32))
    for seq in range(1, 51):
        core.submit_observation(
            "", header(stranger, seq), obs, lambda o: o, lambda h, m: answered.append(m), client="x"
        )
    # Five pass the robot's observation bucket; of those, one is answered (once a second).
    assert len(answered) == 1
    assert core.metrics.dropped.labels("rate_limited")._value.get() == 49


def test_observations_under_ever_new_ids_cost_no_more_than_the_total_answer_budget():
    core = make_core()
    answered: list[wire.ErrorReply] = []
    stranger = wire.SessionAck("", 7, 1, core.capabilities)
    obs = wire.Observation(state=np.zeros(2, np.float32))
    for seq in range(1, 1001):
        core.submit_observation(
            "",
            header(stranger, seq),
            obs,
            lambda o: o,
            lambda h, m: answered.append(m),
            client=f"made-up-{seq}",
        )
    assert len(answered) == core_module.SESSIONLESS_ANSWERS_PER_S
    assert {reply.code for reply in answered} == {wire.ErrorCode.UNKNOWN_SESSION}


# --- unused sessions give their capacity back --------------------------------------------------


def send_first_observation(core: ServerCore, ack: wire.SessionAck) -> None:
    observation = wire.Observation(state=np.zeros(2, np.float32))
    core.submit_observation(ack.session_id, header(ack, 1), observation, lambda o: o, print)


def test_a_session_that_never_sends_an_observation_is_closed_early():
    core = make_core(session_first_observation_timeout_s=0.05, session_idle_timeout_s=60)
    unused, used = opened(core, "unused"), opened(core, "used")
    send_first_observation(core, used)
    time.sleep(0.1)
    assert core.close_idle_sessions() == [unused.session_id]
    assert core.metrics.sessions_closed.labels("never_used")._value.get() == 1
    assert core.session_id_for_client("used") == used.session_id


def test_a_full_server_gives_the_slot_of_a_long_unused_session_to_a_new_robot(monkeypatch):
    monkeypatch.setattr(core_module, "NEVER_USED_YIELD_S", 0.05)
    core = make_core(max_sessions=2)
    squatter, used = opened(core, "squatter"), opened(core, "used")
    send_first_observation(core, used)
    time.sleep(0.1)
    newcomer = opened(core, "newcomer")
    assert core.session_id_for_client("squatter") is None
    assert core.session_id_for_client("used") == used.session_id
    assert core.session_id_for_client("newcomer") == newcomer.session_id
    assert core.metrics.sessions_closed.labels("never_used")._value.get() == 1
    assert squatter.session_id != newcomer.session_id


def test_a_full_server_keeps_a_just_opened_session_and_refuses_the_newcomer():
    core = make_core(max_sessions=1)
    opened(core, "just-opened")
    reply = core.open_session(open_request(core, "newcomer"), "test")
    assert isinstance(reply, wire.ErrorReply) and reply.code is wire.ErrorCode.CAPACITY
    assert core.session_id_for_client("just-opened") is not None


def test_a_client_switching_sessions_on_a_full_server_keeps_its_slot():
    core = make_core(max_sessions=1)
    first = opened(core, "openpi-1")
    switched = core.open_session(
        open_request(core, "openpi-1"), "openpi", replaced_reason="session_switch"
    )
    assert isinstance(switched, wire.SessionAck) and switched.session_id != first.session_id
    assert core.registry.get(first.session_id) is None
    assert core.metrics.sessions_closed.labels("session_switch")._value.get() == 1


def test_an_unused_zenoh_session_is_reclaimed_over_the_network(start_server, connect):
    app = start_server(session_first_observation_timeout_s=0.3, max_sessions=1)
    connect(app, "idler").opened()
    never_used = app.metrics.sessions_closed.labels("never_used")
    wait_for(lambda: never_used._value.get() == 1, what="the unused session to be closed")
    assert connect(app, "worker").opened()  # its slot is free again


# --- bookkeeping stays bounded -----------------------------------------------------------------


def test_close_reasons_count_under_a_fixed_set_of_labels():
    core = make_core()
    for index, reason in enumerate(
        ["closed by client", "client liveliness lost", "idle", "a reason a client made up 42"]
    ):
        ack = opened(core, f"arm-{index}")
        core.close_session(ack.session_id, reason)
    exposition = core.metrics.exposition().decode()
    labels = {
        line.split('reason="')[1].split('"')[0]
        for line in exposition.splitlines()
        if line.startswith("policylink_sessions_closed_total{")
    }
    assert labels == {"client", "liveliness", "idle", OTHER}
    assert labels <= {*CLOSE_REASONS, OTHER}
    assert "made up" not in exposition


def test_refusal_audit_lines_are_rate_limited_and_count_what_they_left_out(monkeypatch, caplog):
    monkeypatch.setattr(audit, "_refusals", audit._RefusalLog(5.0))
    with caplog.at_level(logging.INFO, logger="policylink.audit"):
        for seq in range(200):
            audit.audit_refusal(event="observation", outcome="rate_limited", seq_id=seq)
        time.sleep(0.25)
        audit.audit_refusal(event="observation", outcome="rate_limited", seq_id=999)
    lines = [json.loads(r.message) for r in caplog.records if r.name == "policylink.audit"]
    assert len(lines) == 6
    assert lines[-1]["seq_id"] == 999
    assert lines[-1]["suppressed"] == 195


def test_the_printed_default_manifest_spells_out_the_limits_and_openpi_security_fields():
    import dataclasses

    import yaml

    from policylink.server.manifest import LimitsBlock, default_manifest_text
    from policylink.server.openpi_settings import OpenPISettings

    printed = yaml.safe_load(default_manifest_text())
    assert set(printed["limits"]) == set(LimitsBlock.model_fields)
    assert set(printed["openpi"]) == {f.name for f in dataclasses.fields(OpenPISettings)}
    assert printed["session_first_observation_timeout_s"] == 10.0
    assert Manifest.from_data(printed).limits == LimitsBlock()
