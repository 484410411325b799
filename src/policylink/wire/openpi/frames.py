"""The frames of the OpenPI protocol, as plain dicts built from native messages.

A connection starts with one metadata frame from the server; then each client frame is an
observation dict (or a control dict such as `{"endpoint": "reset"}`) answered by one reply
dict, all msgpack-numpy. A failure is answered with a *text* frame, which openpi-client raises
as `RuntimeError("Error in inference server: ...")`. Timings follow openpi's names
(`server_timing.infer_ms`, `policy_timing.infer_ms`, `server_timing.prev_total_ms`) so scripts
that print them keep working; the extra policylink timings sit beside them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from policylink.wire.errors import DecodeError, ErrorCode, WireError
from policylink.wire.messages import ActionChunk, Capabilities, ErrorReply
from policylink.wire.openpi.keymap import BoundKeyMap

RESPONSE_KEYS = ("actions", "action")
RESET = "reset"
INFER = "infer"
SERVER_NAME = "policylink"


def metadata_frame(caps: Capabilities, key_map: BoundKeyMap, session_id: str) -> dict[str, Any]:
    """What the served policy needs and returns, sent once when a connection opens."""
    cameras = [
        {
            "name": camera.name,
            "height": camera.height,
            "width": camera.width,
            "key": key_map.images.get(camera.name, ""),
        }
        for camera in caps.cameras
    ]
    return {
        "server": SERVER_NAME,
        "server_version": caps.server_version,
        "model_id": caps.model_id,
        "revision": caps.revision,
        "task_slug": caps.task_slug,
        "action_names": list(caps.action_names),
        "action_horizon": caps.chunk_size,
        "action_dim": len(caps.action_names),
        "state_dim": caps.state_dim,
        "state_names": list(caps.state_names),
        "cameras": cameras,
        "fps": float(caps.trained_fps),
        "default_task": caps.default_task,
        "pin_task": caps.pin_task,
        "serving_mode": caps.serving_mode,
        "key_map": key_map.describe(),
        "session_id": session_id,
    }


def action_reply(
    chunk: ActionChunk, session_id: str, total_ms: float, prev_total_ms: float | None
) -> dict[str, Any]:
    """`actions` is the robot-space chunk `[T, A]` float32, ready to execute."""
    server_timing: dict[str, float] = {
        "infer_ms": float(chunk.inference_ms),
        "queue_wait_ms": float(chunk.queue_wait_ms),
        "total_ms": float(total_ms),
    }
    if prev_total_ms is not None:
        server_timing["prev_total_ms"] = float(prev_total_ms)
    return {
        "actions": np.ascontiguousarray(chunk.chunk_robot, dtype=np.float32),
        "server_timing": server_timing,
        "policy_timing": {"infer_ms": float(chunk.inference_ms)},
        "superseded": int(chunk.superseded),
        "server_load": float(chunk.server_load),
        "session_id": session_id,
    }


def reset_ack(session_id: str, episode_id: int) -> dict[str, Any]:
    return {"endpoint": RESET, "ok": True, "session_id": session_id, "episode_id": episode_id}


def error_text(code: ErrorCode, message: str) -> str:
    """The text frame for a failure: the code a script can grep, the message a person can act on."""
    return f"policylink error [{code.value}]: {message}"


def error_text_of(error: ErrorReply | WireError) -> str:
    return error_text(error.code, error.message)


def parse_error_text(text: str) -> ErrorReply:
    """A text frame from any OpenPI server as an `ErrorReply` (stock servers send tracebacks)."""
    prefix = "policylink error ["
    if text.startswith(prefix) and "]: " in text:
        raw_code, _, message = text[len(prefix) :].partition("]: ")
        try:
            return ErrorReply(ErrorCode(raw_code), message)
        except ValueError:
            pass
    return ErrorReply(ErrorCode.POLICY_ERROR, f"OpenPI server error: {text.strip()[-2000:]}")


def _timing(reply: Mapping[str, Any], group: str, key: str) -> float:
    section = reply.get(group)
    value = section.get(key) if isinstance(section, Mapping) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def chunk_from_reply(
    reply: object, response_key: str = "actions", action_dim: int | None = None
) -> ActionChunk:
    """The client side: a reply dict from any OpenPI server as an `ActionChunk`.

    OpenPI carries only the executable chunk, so it fills both the model-space and the
    robot-space chunk; a single action `[A]` is read as a one-step chunk.
    """
    if not isinstance(reply, Mapping):
        raise DecodeError(f"OpenPI reply must be a map, got {type(reply).__name__}")
    if response_key not in reply:
        raise DecodeError(
            f"OpenPI reply has no {response_key!r}; it has {sorted(map(str, reply))}. "
            f"Set response_key to one of {list(RESPONSE_KEYS)} to match the server"
        )
    try:
        actions = np.asarray(reply[response_key], dtype=np.float32)
    except (TypeError, ValueError):
        raise DecodeError(f"OpenPI reply {response_key!r} is not numeric") from None
    if actions.ndim == 1:
        actions = actions[None, :]
    if actions.ndim != 2 or actions.shape[0] == 0:
        raise DecodeError(
            f"OpenPI reply {response_key!r} must be [T, A] actions, got shape {actions.shape}"
        )
    if action_dim is not None and actions.shape[1] != action_dim:
        raise DecodeError(
            f"OpenPI reply {response_key!r} has {actions.shape[1]} action columns but the robot "
            f"has {action_dim} motors; the server serves a different action space"
        )
    if not np.isfinite(actions).all():
        raise DecodeError(f"OpenPI reply {response_key!r} holds non-finite actions")
    superseded = reply.get("superseded", 0)
    load = reply.get("server_load", 0.0)
    return ActionChunk(
        chunk_model=actions,
        chunk_robot=actions,
        queue_wait_ms=_timing(reply, "server_timing", "queue_wait_ms"),
        inference_ms=_timing(reply, "server_timing", "infer_ms"),
        superseded=superseded if isinstance(superseded, int) and superseded >= 0 else 0,
        server_load=float(load) if isinstance(load, int | float) else 0.0,
    )
