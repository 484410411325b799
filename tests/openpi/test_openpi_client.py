"""policylink's client driving OpenPI servers: a minimal stock one, and policylink's own."""

from __future__ import annotations

import queue
from collections.abc import Iterator

import numpy as np
import pytest

from policylink.client import ClientConfig, RemoteEngine, RobotLayout
from policylink.client.link import ServerUnreachable
from policylink.client.links import make_link
from policylink.client.links.openpi import CANNOT_CARRY, OpenPILink
from policylink.net.ports import free_port
from policylink.wire import (
    SCHEMA_VERSION,
    ActionChunk,
    CameraSpec,
    ErrorCode,
    ErrorReply,
    Header,
    MsgType,
    Observation,
    Reset,
    ResetAck,
    SessionAck,
    SessionOpen,
)
from tests.openpi.conftest import IMAGE_SIZE
from tests.openpi.stock_server import StockServer, libero_echo
from tests.support.waiting import wait_for

CAMERAS = (CameraSpec("front", IMAGE_SIZE, IMAGE_SIZE), CameraSpec("wrist", IMAGE_SIZE, IMAGE_SIZE))
ARM = RobotLayout(("j0", "j1", "j2"), ("s0", "s1", "s2"), CAMERAS)
PROBE_LAYOUT = RobotLayout(
    ("joint_0", "joint_1", "joint_2", "front_mean", "wrist_mean", "episode_requests"),
    ("s0", "s1", "s2"),
    CAMERAS,
)
"""What the probe policy serves with `state_dim: 3`: its action names, in order."""


def open_request(layout: RobotLayout = ARM) -> SessionOpen:
    return SessionOpen("arm", list(layout.action_names), layout.state_dim, list(layout.cameras))


def observation(state: list[float]) -> Observation:
    image = np.full((IMAGE_SIZE, IMAGE_SIZE, 3), 40, np.uint8)
    return Observation(
        state=np.asarray(state, np.float32), images={"front": image, "wrist": image}, task="stack"
    )


def header(seq_id: int, episode_id: int = 0) -> Header:
    return Header(SCHEMA_VERSION, MsgType.OBSERVATION, seq_id=seq_id, episode_id=episode_id)


class Replies:
    def __init__(self) -> None:
        self.queue: queue.Queue[tuple[Header, ActionChunk | ErrorReply]] = queue.Queue()

    def __call__(self, header: Header, msg: ActionChunk | ErrorReply) -> None:
        self.queue.put((header, msg))

    def next(self) -> tuple[Header, ActionChunk | ErrorReply]:
        return self.queue.get(timeout=20)


@pytest.fixture
def stock() -> Iterator[StockServer]:
    server = StockServer(libero_echo(horizon=4)).start()
    yield server
    server.stop()


@pytest.fixture
def transports() -> Iterator[list[OpenPILink]]:
    made: list[OpenPILink] = []
    yield made
    for transport in made:
        transport.close()


def connected(url: str, made: list, replies: Replies | None = None, **options) -> OpenPILink:
    transport = OpenPILink(url, **options)
    made.append(transport)
    transport.connect(replies or Replies())
    return transport


def test_stock_server_session_echoes_the_robot_layout_and_says_what_is_lost(stock, transports):
    transport = connected(stock.url, transports, key_map="libero")
    ack = transport.handshake(open_request(), timeout_s=5)
    assert isinstance(ack, SessionAck)
    assert ack.capabilities.action_names == ["j0", "j1", "j2"]
    assert ack.rtc_enabled is False
    assert CANNOT_CARRY in ack.warnings
    assert any("declares no action names" in warning for warning in ack.warnings)


def test_chunks_from_a_stock_server_answer_the_request_they_belong_to(stock, transports):
    replies = Replies()
    transport = connected(stock.url, transports, replies, key_map="libero")
    transport.handshake(open_request(), timeout_s=5)
    transport.send(header(1), observation([1.0, 2.0, 3.0]))
    transport.send(header(2), observation([5.0, 5.0, 5.0]))
    first, second = replies.next(), replies.next()
    assert first[0].seq_id == 1 and first[0].msg_type is MsgType.ACTION_CHUNK
    assert isinstance(first[1], ActionChunk) and isinstance(second[1], ActionChunk)
    np.testing.assert_array_equal(first[1].chunk_robot[:, 0], [1, 2, 3, 4])
    assert second[0].seq_id == 2 and second[1].chunk_robot[0, 0] == 5
    assert first[1].inference_ms == 1.5
    sent = stock.frames[0]
    assert set(sent) == {
        "observation/state",
        "observation/image",
        "observation/wrist_image",
        "prompt",
    }
    assert sent["prompt"] == "stack" and sent["observation/image"].shape == (8, 8, 3)


def test_action_response_key_reads_single_action_servers(transports):
    server = StockServer(lambda obs: {"action": np.arange(3.0)}).start()
    try:
        replies = Replies()
        transport = connected(
            server.url, transports, replies, key_map="libero", response_key="action"
        )
        transport.handshake(open_request(), timeout_s=5)
        transport.send(header(1), observation([0.0, 0.0, 0.0]))
        _, chunk = replies.next()
        assert isinstance(chunk, ActionChunk) and chunk.chunk_robot.shape == (1, 3)
    finally:
        server.stop()


def test_reply_without_the_response_key_is_an_error_naming_the_setting(stock, transports):
    replies = Replies()
    transport = connected(stock.url, transports, replies, key_map="libero", response_key="action")
    transport.handshake(open_request(), timeout_s=5)
    transport.send(header(1), observation([0.0, 0.0, 0.0]))
    _, error = replies.next()
    assert isinstance(error, ErrorReply) and "response_key" in error.message


def test_chunk_of_the_wrong_width_is_refused(transports):
    server = StockServer(lambda obs: {"actions": np.zeros((4, 7))}).start()
    try:
        replies = Replies()
        transport = connected(server.url, transports, replies, key_map="libero")
        transport.handshake(open_request(), timeout_s=5)
        transport.send(header(1), observation([0.0, 0.0, 0.0]))
        _, error = replies.next()
        assert isinstance(error, ErrorReply) and "7 action columns" in error.message
    finally:
        server.stop()


def test_stock_traceback_becomes_an_error_reply_and_the_link_is_reported_down(stock, transports):
    replies = Replies()
    transport = connected(stock.url, transports, replies, key_map="libero")
    transport.handshake(open_request(), timeout_s=5)
    transport.send(header(1), observation([666.0, 0.0, 0.0]))
    reply_header, error = replies.next()
    assert reply_header.seq_id == 1 and reply_header.msg_type is MsgType.ERROR
    assert isinstance(error, ErrorReply) and error.code is ErrorCode.POLICY_ERROR
    assert "refuses 666" in error.message
    wait_for(lambda: not transport.server_alive(), what="the closed link to be noticed")


def test_reset_on_a_stock_server_stays_local(stock, transports):
    transport = connected(stock.url, transports, key_map="libero")
    ack = transport.handshake(open_request(), timeout_s=5)
    reply = transport.reset(Reset(ack.session_id, 3), timeout_s=5)
    assert reply == ResetAck(ack.session_id, 3)
    assert stock.frames == []


def test_unreachable_server_raises_server_unreachable(transports):
    transport = connected(f"ws://127.0.0.1:{free_port()}", transports)
    with pytest.raises(ServerUnreachable, match="no OpenPI server at"):
        transport.handshake(open_request(), timeout_s=2)


def test_policylink_server_declares_its_policy_and_keys(serve, transports):
    served = serve(policy_params={"state_dim": 3})
    replies = Replies()
    transport = connected(served.url(), transports, replies)
    ack = transport.handshake(open_request(PROBE_LAYOUT), timeout_s=5)
    transport.send(header(1), observation([7.0, 0.0, 0.0]))
    _, chunk = replies.next()
    assert isinstance(ack, SessionAck) and ack.capabilities.action_names == list(
        PROBE_LAYOUT.action_names
    )
    assert ack.capabilities.chunk_size == 5
    assert isinstance(chunk, ActionChunk) and chunk.chunk_robot[0, 0] == 7
    np.testing.assert_array_equal(chunk.chunk_robot[0, 3:5], [40, 40])


def test_reset_reaches_a_policylink_server_and_starts_a_new_episode(serve, transports):
    served = serve(policy_params={"state_dim": 3})
    replies = Replies()
    transport = connected(served.url(), transports, replies)
    ack = transport.handshake(open_request(PROBE_LAYOUT), timeout_s=5)
    counts = []
    for seq in (1, 2):
        transport.send(header(seq), observation([0.0, 0.0, 0.0]))
        counts.append(replies.next()[1].chunk_robot[0, -1])
    reset = transport.reset(Reset(ack.session_id, 1), timeout_s=5)
    transport.send(header(3, episode_id=1), observation([0.0, 0.0, 0.0]))
    counts.append(replies.next()[1].chunk_robot[0, -1])
    assert reset == ResetAck(ack.session_id, 1)
    assert counts == [1, 2, 1]


def test_wrong_api_key_is_a_contract_refusal(serve, transports):
    served = serve(api_key="s3cret")
    transport = connected(served.url(), transports, api_key="nope")
    reply = transport.handshake(open_request(), timeout_s=5)
    assert isinstance(reply, ErrorReply) and reply.code is ErrorCode.UNAUTHORIZED


def test_a_locked_out_address_hears_rate_limited_not_an_internal_error(serve, transports):
    served = serve(api_key="s3cret", openpi={"auth_max_failures": 1, "auth_lockout_s": 30.0})
    wrong = connected(served.url(), transports, api_key="nope").handshake(open_request(), 5)
    assert isinstance(wrong, ErrorReply) and wrong.code is ErrorCode.UNAUTHORIZED
    locked = connected(served.url(), transports, api_key="s3cret").handshake(open_request(), 5)
    assert isinstance(locked, ErrorReply) and locked.code is ErrorCode.RATE_LIMITED
    assert "locked this address out" in locked.message


def test_api_key_is_read_from_the_variable_the_config_names(serve, monkeypatch):
    served = serve(api_key="s3cret")
    monkeypatch.setenv("ROBOT_OPENPI_KEY", "s3cret")
    transport = make_link(ClientConfig(endpoint=served.url(), api_key_env="ROBOT_OPENPI_KEY"))
    try:
        transport.connect(Replies())
        assert isinstance(transport.handshake(open_request(), timeout_s=5), SessionAck)
    finally:
        transport.close()


def test_remote_engine_drives_a_stock_openpi_server(stock):
    config = ClientConfig(endpoint=stock.url, openpi_key_map="libero", fps=100.0)
    engine = RemoteEngine(config, ARM)
    assert isinstance(engine._transport, OpenPILink)
    engine.start()
    actions: list[np.ndarray] = []

    def next_action() -> bool:
        engine.notify_observation(observation([10.0, 20.0, 30.0]))
        action = engine.get_action()
        if action is not None:
            actions.append(action)
        return bool(actions)

    try:
        wait_for(next_action, what="a first action from the stock server")
    finally:
        engine.stop()
    np.testing.assert_array_equal(actions[0], [10, 20, 30])
    assert stock.frames[0]["prompt"] == "stack"
