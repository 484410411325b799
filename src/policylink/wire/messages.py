"""The messages of the native protocol, as plain dataclasses.

Identity (`seq_id`, `episode_id`, `session_epoch`, the client's clock stamp) lives in the header,
not here; bodies hold content only. Unknown keys in a body are ignored on decode, so a newer
peer can add fields without breaking an older one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from policylink.wire.errors import ErrorCode
from policylink.wire.header import MsgType
from policylink.wire.schema import SCHEMA_MAX, SCHEMA_MIN


@dataclass
class Observation:
    """One robot observation plus what the server needs to answer it statelessly.

    `inference_delay_steps` and the prefixes travel with every request so the server holds no
    control state: the unexecuted tail of the previous chunk, in model space (for RTC) and in
    robot space (for policies that post-process relative to it). `playback_left_ms` is how much
    buffered playback the robot had when it sent this — a duration, never an instant — which a
    deadline scheduler serves by; None when the robot does not say.
    """

    MSG_TYPE: ClassVar[MsgType] = MsgType.OBSERVATION

    state: np.ndarray
    images: dict[str, np.ndarray] = field(default_factory=dict)
    task: str = ""
    inference_delay_steps: int = 0
    prefix_model: np.ndarray | None = None
    prefix_robot: np.ndarray | None = None
    episode_start: bool = False
    playback_left_ms: float | None = None


@dataclass
class ActionChunk:
    """Future actions for one observation; the server reports durations, never instants."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.ACTION_CHUNK

    chunk_model: np.ndarray
    chunk_robot: np.ndarray
    queue_wait_ms: float = 0.0
    inference_ms: float = 0.0
    superseded: int = 0
    server_load: float = 0.0


@dataclass
class CameraSpec:
    """A camera by name and frame size (0 = any). In a server's capabilities, `input_height`
    and `input_width` are the resolution the policy reads the camera at (0 = as sent): a robot
    may send frames already resized to it, which the server accepts beside the camera's own
    size, and the server resizes full frames to it before the policy sees them, so both paths
    feed the policy the same pixels up to JPEG noise. On the wire these two keys appear only
    when set, so peers that predate them exchange the same bytes as before.
    """

    name: str
    height: int
    width: int
    input_height: int = 0
    input_width: int = 0

    @property
    def input_size(self) -> tuple[int, int] | None:
        """(height, width) the policy reads, when it differs from the frame size; else None."""
        if not (self.input_height and self.input_width):
            return None
        if (self.input_height, self.input_width) == (self.height, self.width):
            return None
        return self.input_height, self.input_width


@dataclass
class Capabilities:
    """What a served policy needs and produces; the client checks it before streaming."""

    model_id: str
    revision: str
    task_slug: str
    action_names: list[str]
    chunk_size: int
    state_dim: int
    state_names: list[str] = field(default_factory=list)
    cameras: list[CameraSpec] = field(default_factory=list)
    supports_rtc: bool = False
    rtc_execution_horizon: int = 0
    trained_fps: float = 0.0
    serving_mode: str = "shared"
    default_task: str = ""
    pin_task: bool = False
    schema_min: int = SCHEMA_MIN
    schema_max: int = SCHEMA_MAX
    server_version: str = ""


@dataclass
class StatusRequest:
    MSG_TYPE: ClassVar[MsgType] = MsgType.STATUS_REQUEST


@dataclass
class Status:
    """A server's answer to `status`: what it serves and how loaded it is.

    `replica_id` names the server process among the replicas of its namespace (its keys carry
    it); `forward_ms` maps batch size to the median forward time measured while serving;
    `capacity_robots` is the fleet size that implies at the server's planning request rate;
    `device_busy` is the fraction of the last second spent in forwards.
    """

    MSG_TYPE: ClassVar[MsgType] = MsgType.STATUS

    capabilities: Capabilities
    replica_id: str = ""
    active_sessions: int = 0
    max_sessions: int = 0
    draining: bool = False
    max_batch_size: int = 1
    forward_ms: dict[int, float] = field(default_factory=dict)
    device_busy: float = 0.0
    capacity_robots: int = 0

    @property
    def load(self) -> float:
        return self.active_sessions / self.max_sessions if self.max_sessions else 0.0


@dataclass
class SessionOpen:
    """What the robot has; the server refuses a session whose layout does not match exactly.

    `instance` names the robot's process (its liveliness token carries it), so the server can
    tell a restarted robot from a second process claiming a live robot's id.
    """

    MSG_TYPE: ClassVar[MsgType] = MsgType.SESSION_OPEN

    client_id: str
    action_names: list[str]
    state_dim: int
    cameras: list[CameraSpec] = field(default_factory=list)
    fps: float = 0.0
    task: str = ""
    rtc: bool = False
    schema_min: int = SCHEMA_MIN
    schema_max: int = SCHEMA_MAX
    tags: dict[str, str] = field(default_factory=dict)
    instance: str = ""


@dataclass
class SessionAck:
    MSG_TYPE: ClassVar[MsgType] = MsgType.SESSION_ACK

    session_id: str
    session_epoch: int
    schema_version: int
    capabilities: Capabilities
    rtc_enabled: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass
class SessionClose:
    MSG_TYPE: ClassVar[MsgType] = MsgType.SESSION_CLOSE

    session_id: str
    reason: str = ""


@dataclass
class Reset:
    """Episode boundary; `episode_id` is the new episode's id."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.RESET

    session_id: str
    episode_id: int


@dataclass
class ResetAck:
    MSG_TYPE: ClassVar[MsgType] = MsgType.RESET_ACK

    session_id: str
    episode_id: int


@dataclass
class ErrorReply:
    """A refusal or failure; `details` carries data a client acts on (e.g. current load)."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.ERROR

    code: ErrorCode
    message: str
    details: dict[str, float | int | str] = field(default_factory=dict)


Message = (
    Observation
    | ActionChunk
    | StatusRequest
    | Status
    | SessionOpen
    | SessionAck
    | SessionClose
    | Reset
    | ResetAck
    | ErrorReply
)
