"""A robot's identity is its certificate, and Zenoh's access control holds it to its own keys.

Robot B holds a valid certificate of its own (and can open its own session: it is no outsider)
and tries everything against robot A: open a session as A, publish A's observations, receive
A's actions, close or reset A's session, even knowing A's session id. Each attempt is refused
by the transport — the query gets no answer, the sample never reaches the server, the
subscription hears nothing — while A, a real `RemoteEngine`, keeps streaming. A client without
a certificate the fleet CA signed cannot connect at all. Both deployment shapes are covered:
via a `policylink router --acl`, and straight to a server that enforces the ACL itself.

"Nothing arrived" is only ever asserted after a positive event that proves there was time for
it to arrive: robot A got more chunks, or the server saw more of A's own observations.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import zenoh

from policylink import wire
from policylink.client import EngineState
from policylink.net.zenoh_session import open_zenoh_session
from policylink.net.zenoh_settings import ZenohSettings
from policylink.server.app import ServerApp
from tests.security.attacker import RawRobot
from tests.security.conftest import ROBOT_A, ROBOT_B, STATE_DIM, Deployment
from tests.support.waiting import wait_for

# A refused query is dropped by Zenoh: the querier's get ends with no replies (at once, as
# measured; the timeout only bounds a test that would otherwise wait for a reply that came).
NO_ANSWER_S = 2.0
ANSWER_S = 10.0


@pytest.fixture
def robot_b(deployment: Deployment) -> Iterator[RawRobot]:
    """Robot B with its own valid certificate: in client mode via a router, as a peer of the
    server in peer mode (each the way a robot attaches in that shape)."""
    mode = "client" if deployment.topology == "router" else "peer"
    settings = deployment.fleet.robot_settings(ROBOT_B, deployment.endpoint, mode=mode)
    robot = RawRobot(settings, deployment.namespace, deployment.replica)
    yield robot
    robot.close()


def server_of(deployment: Deployment) -> ServerApp:
    assert isinstance(deployment.app, ServerApp)
    return deployment.app


def assert_a_undisturbed(deployment: Deployment) -> None:
    deployment.robot_a.wait_more_chunks()
    session = server_of(deployment).core.session_for_client(ROBOT_A)
    assert session is not None and session.session_id == deployment.session_a


def test_robot_b_is_a_valid_robot_with_a_session_of_its_own(
    deployment: Deployment, robot_b: RawRobot
) -> None:
    """The control: B is authenticated and allowed its own keys, so every refusal below is
    about whose keys it touched, not about B being unknown."""
    (ack,) = robot_b.open_as(ROBOT_B, ROBOT_B, ANSWER_S)
    assert isinstance(ack, wire.SessionAck), ack
    robot_b.eavesdrop(deployment.namespace.action(ROBOT_B, deployment.replica))
    robot_b.observe(ROBOT_B, ack, [1.0] * STATE_DIM)
    wait_for(robot_b.heard_so_far, 30.0, "robot B's own chunk")
    close = wire.SessionClose(ack.session_id, "done")
    (closed,) = robot_b.ask(deployment.namespace.session(ROBOT_B, deployment.replica), close, 10)
    assert not isinstance(closed, wire.ErrorReply), closed


def test_robot_b_cannot_open_a_session_as_robot_a(
    deployment: Deployment, robot_b: RawRobot
) -> None:
    assert robot_b.open_as(ROBOT_A, ROBOT_A, NO_ANSWER_S) == []
    assert robot_b.open_as(ROBOT_A, ROBOT_B, NO_ANSWER_S) == []
    # On its own key B may ask, and the server refuses a body that names another robot.
    (refused,) = robot_b.open_as(ROBOT_B, ROBOT_A, ANSWER_S)
    assert isinstance(refused, wire.ErrorReply), refused
    assert_a_undisturbed(deployment)


def test_robot_b_cannot_publish_robot_a_observations(
    deployment: Deployment, robot_b: RawRobot
) -> None:
    """A witness on the server's own Zenoh session hears everything that reaches the server on
    A's observation key: A's observations do, B's never."""
    app = server_of(deployment)
    assert app.zenoh is not None and app.zenoh.session is not None
    key = deployment.namespace.obs(ROBOT_A, deployment.replica)
    reached: list[bytes] = []
    witness = app.zenoh.session.declare_subscriber(
        key, lambda sample: reached.append(sample.payload.to_bytes())
    )
    forged = b"arm-b speaking for arm-a"
    try:
        for _ in range(3):
            target = len(reached) + 3
            robot_b.put(key, forged)
            wait_for(lambda: len(reached) >= target, 30.0, "robot A's own observations")  # noqa: B023
        assert forged not in reached
    finally:
        witness.undeclare()
    assert_a_undisturbed(deployment)


def test_robot_b_cannot_receive_robot_a_actions(deployment: Deployment, robot_b: RawRobot) -> None:
    ns, replica = deployment.namespace, deployment.replica
    robot_b.eavesdrop(ns.action(ROBOT_A, replica))
    robot_b.eavesdrop(f"{ns.base}/robot/{ROBOT_A}/**")
    robot_b.eavesdrop("@policylink/**")
    deployment.robot_a.wait_more_chunks(5)
    assert robot_b.heard_so_far() == []


def test_robot_b_cannot_close_or_reset_robot_a_session(
    deployment: Deployment, robot_b: RawRobot
) -> None:
    """Even knowing A's session id (the worst case: ids are unguessable)."""
    ns, replica, session_a = deployment.namespace, deployment.replica, deployment.session_a
    hijack = wire.SessionClose(session_a, "hijack")
    assert robot_b.ask(ns.session(ROBOT_A, replica), hijack, NO_ANSWER_S) == []
    assert robot_b.ask(ns.reset(ROBOT_A, replica), wire.Reset(session_a, 4242), NO_ANSWER_S) == []
    # Through its own keys B reaches the server, which holds a session to the key's robot.
    for key, message in (
        (ns.session(ROBOT_B, replica), hijack),
        (ns.reset(ROBOT_B, replica), wire.Reset(session_a, 4242)),
    ):
        (refused,) = robot_b.ask(key, message, ANSWER_S)
        assert isinstance(refused, wire.ErrorReply), refused
    assert_a_undisturbed(deployment)
    session = server_of(deployment).core.session_for_client(ROBOT_A)
    assert session is not None and session.min_episode_id != 4242


def test_robot_b_cannot_answer_for_the_server(deployment: Deployment, robot_b: RawRobot) -> None:
    """B offers a replica's status queryable; a robot gathering replicas hears only the real
    one. In peer mode this also needs that robots never link to each other directly: the
    server's access control would not stand between them."""
    ns, endpoint, fleet = deployment.namespace, deployment.endpoint, deployment.fleet
    robot_b.pose_as_replica("impostor")
    mode = "client" if deployment.topology == "router" else "peer"
    another = RawRobot(fleet.robot_settings(ROBOT_A, endpoint, mode=mode), ns, deployment.replica)
    try:
        deployment.robot_a.wait_more_chunks()
        assert another.answering_replicas(ns.all_status) == [deployment.replica]
        assert robot_b.session.zid() not in another.session.info.peers_zid()
        assert another.session.zid() not in robot_b.session.info.peers_zid()
    finally:
        another.close()
    assert_a_undisturbed(deployment)


def test_robot_b_holds_tokens_only_under_its_own_id(
    deployment: Deployment, robot_b: RawRobot
) -> None:
    """Tokens under robot A's id or an invented one never reach the server: a certified robot
    cannot pose as A's process, nor churn invented robot ids through Zenoh's routing tables
    (README: "What Zenoh itself leaves open")."""
    ns, invented = deployment.namespace, "flood-0123456789ab"
    surface = server_of(deployment).zenoh
    assert surface is not None
    robot_b.hold_token(ns.robot_alive(ROBOT_A, "b-posing-as-a"))
    robot_b.hold_token(ns.robot_alive(invented, "i0"))
    # Declared last, on the same link: once the server sees it, it saw whatever came before.
    robot_b.hold_token(ns.robot_alive(ROBOT_B, "b-own"))
    wait_for(lambda: "b-own" in surface.live_instances(ROBOT_B), 30.0, "robot B's own token")
    assert "b-posing-as-a" not in surface.live_instances(ROBOT_A)
    assert surface.live_instances(invented) == set()
    assert_a_undisturbed(deployment)


def test_a_client_without_a_valid_certificate_cannot_connect(deployment: Deployment) -> None:
    endpoint, fleet = deployment.endpoint, deployment.fleet
    forged = fleet.robot_settings(ROBOT_A, endpoint, rogue=True)  # another CA's "arm-a"
    anonymous = ZenohSettings(mode="client", connect=[endpoint], tls_root_ca=fleet.ca)
    for settings in (forged, anonymous):
        with pytest.raises(zenoh.ZError, match="Unable to connect"):
            open_zenoh_session(settings).close()
    assert_a_undisturbed(deployment)


def test_robot_a_streamed_throughout_and_still_resets_its_own_episode(
    deployment: Deployment,
) -> None:
    """Last in the module: every attack above ran while A streamed, and A never noticed; its
    own reset goes through the same access control that refused B's."""
    deployment.robot_a.reset_episode()
    session = server_of(deployment).core.session_for_client(ROBOT_A)
    assert session is not None
    wait_for(lambda: session.min_episode_id == 1, 30.0, "robot A's reset on the server")
    deployment.robot_a.wait_more_chunks()
    stats = deployment.robot_a.engine.stats
    assert stats.episode_id == 1
    assert stats.reconnects == 0
    assert stats.session_id == deployment.session_a
    assert stats.error_replies == 0
    assert stats.state is EngineState.STREAMING
