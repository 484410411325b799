"""OpenPI frames: metadata, replies and errors as openpi-client users read them."""

import numpy as np
import pytest
from openpi_client import msgpack_numpy as openpi_msgpack

from policylink.wire import ActionChunk, CameraSpec, Capabilities, DecodeError, ErrorCode
from policylink.wire.openpi.frames import (
    action_reply,
    chunk_from_reply,
    error_text,
    metadata_frame,
    parse_error_text,
)
from policylink.wire.openpi.keymap import KeyMap
from policylink.wire.openpi.msgpack_numpy import packb

CAPS = Capabilities(
    model_id="org/pi0",
    revision="main",
    task_slug="default",
    action_names=["j0", "j1", "gripper"],
    chunk_size=10,
    state_dim=8,
    cameras=[CameraSpec("front", 224, 224), CameraSpec("wrist", 224, 224)],
    trained_fps=15.0,
    server_version="0.1.0",
)


def test_metadata_frame_describes_the_policy_and_its_keys():
    bound = KeyMap.from_config("libero").bind(CAPS.cameras, CAPS.state_dim)
    meta = openpi_msgpack.unpackb(packb(metadata_frame(CAPS, bound, "s-1")))
    assert meta["action_names"] == ["j0", "j1", "gripper"]
    assert (meta["action_horizon"], meta["action_dim"], meta["state_dim"]) == (10, 3, 8)
    assert meta["fps"] == 15.0 and meta["server_version"] == "0.1.0"
    assert meta["cameras"][1] == {
        "name": "wrist",
        "height": 224,
        "width": 224,
        "key": "observation/wrist_image",
    }
    assert meta["session_id"] == "s-1"


def test_action_reply_carries_float32_actions_and_openpi_timings():
    chunk = ActionChunk(
        chunk_model=np.zeros((10, 3)),
        chunk_robot=np.ones((10, 3), np.float64),
        queue_wait_ms=1.5,
        inference_ms=20.0,
    )
    reply = openpi_msgpack.unpackb(packb(action_reply(chunk, "s-1", 25.0, 30.0)))
    assert reply["actions"].dtype == np.float32 and reply["actions"].shape == (10, 3)
    assert reply["server_timing"] == {
        "infer_ms": 20.0,
        "queue_wait_ms": 1.5,
        "total_ms": 25.0,
        "prev_total_ms": 30.0,
    }
    assert reply["policy_timing"] == {"infer_ms": 20.0}


def test_first_reply_has_no_previous_total():
    chunk = ActionChunk(chunk_model=np.zeros((1, 1)), chunk_robot=np.zeros((1, 1)))
    assert "prev_total_ms" not in action_reply(chunk, "s", 1.0, None)["server_timing"]


def test_our_error_text_parses_back_to_its_code():
    reply = parse_error_text(error_text(ErrorCode.BAD_IMAGE, "observation/image: bad"))
    assert reply.code is ErrorCode.BAD_IMAGE and reply.message == "observation/image: bad"


def test_a_stock_server_traceback_becomes_a_policy_error():
    reply = parse_error_text("Traceback (most recent call last):\n  KeyError: 'x'\n")
    assert reply.code is ErrorCode.POLICY_ERROR and "KeyError: 'x'" in reply.message


def test_stock_reply_becomes_a_chunk_with_its_timing():
    reply = {"actions": np.ones((50, 7)), "server_timing": {"infer_ms": 42.0}}
    chunk = chunk_from_reply(reply, "actions", action_dim=7)
    assert chunk.chunk_robot.shape == (50, 7) and chunk.chunk_robot.dtype == np.float32
    assert chunk.inference_ms == 42.0


def test_single_action_reply_under_action_key_is_a_one_step_chunk():
    chunk = chunk_from_reply({"action": np.arange(7.0)}, "action", action_dim=7)
    assert chunk.chunk_robot.shape == (1, 7)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ({"action": np.ones((2, 7))}, "has no 'actions'.*response_key"),
        ({"actions": np.ones((2, 6))}, "6 action columns but the robot has 7"),
        ({"actions": np.ones((2, 3, 7))}, r"must be \[T, A\]"),
        ({"actions": "left"}, "not numeric"),
        ({"actions": np.full((1, 7), np.nan)}, "non-finite"),
        ([1, 2], "must be a map"),
    ],
)
def test_unusable_replies_are_refused_with_the_reason(reply: object, message: str):
    with pytest.raises(DecodeError, match=message):
        chunk_from_reply(reply, "actions", action_dim=7)
