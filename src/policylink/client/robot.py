"""The robot the control loop drives, typed to match LeRobot's robots so one passes unchanged.

A LeRobot robot describes itself with two ordered dicts: `observation_features` maps each
state entry to `float` and each camera to its `(height, width, channels)` shape, and
`action_features` maps each motor command to `float`. `RobotLayout` turns those into the
contract a session is checked against (action names *in order*, state names, cameras) and
converts between the robot's flat dicts and the wire's arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from policylink.wire.messages import CameraSpec, Observation


@runtime_checkable
class Robot(Protocol):
    @property
    def observation_features(self) -> Mapping[str, Any]: ...

    @property
    def action_features(self) -> Mapping[str, Any]: ...

    def connect(self) -> None: ...

    def disconnect(self) -> None: ...

    def get_observation(self) -> dict[str, Any]: ...

    def send_action(self, action: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class RobotLayout:
    """Ordered action names, state names and cameras: what the robot has.

    The action order is the motor order of every chunk column, which is why it is compared
    exactly (never as a set) against the policy's at session open.
    """

    action_names: tuple[str, ...]
    state_names: tuple[str, ...]
    cameras: tuple[CameraSpec, ...] = ()

    def __post_init__(self) -> None:
        if not self.action_names:
            raise ValueError("a robot layout needs at least one action name")
        for what, names in (
            ("action", self.action_names),
            ("state", self.state_names),
            ("camera", tuple(c.name for c in self.cameras)),
        ):
            if len(set(names)) != len(names):
                raise ValueError(f"duplicate {what} names in robot layout: {list(names)}")

    @classmethod
    def from_features(
        cls, observation_features: Mapping[str, Any], action_features: Mapping[str, Any]
    ) -> RobotLayout:
        state_names, cameras = [], []
        for name, feature in observation_features.items():
            if isinstance(feature, tuple):
                if len(feature) != 3 or feature[2] != 3:
                    raise ValueError(
                        f"observation feature {name!r} has shape {feature}; cameras must be "
                        "(height, width, 3) RGB"
                    )
                cameras.append(CameraSpec(name, int(feature[0]), int(feature[1])))
            else:
                state_names.append(name)
        return cls(tuple(action_features), tuple(state_names), tuple(cameras))

    @classmethod
    def of(cls, robot: Robot) -> RobotLayout:
        return cls.from_features(robot.observation_features, robot.action_features)

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    @property
    def state_dim(self) -> int:
        return len(self.state_names)

    def mismatch(
        self,
        policy: str,
        action_names: Sequence[str],
        state_dim: int,
        cameras: Iterable[CameraSpec],
    ) -> str:
        """Why `policy`, with these outputs and inputs, cannot drive this robot, or ''."""
        if tuple(action_names) != self.action_names:
            return (
                f"{policy} drives {list(action_names)} but this robot's actions are "
                f"{list(self.action_names)}; chunk columns would reach the wrong motors"
            )
        if state_dim != self.state_dim:
            return (
                f"{policy} takes a state of {state_dim} values but this robot reports "
                f"{self.state_dim}"
            )
        offered = {camera.name for camera in self.cameras}
        missing = [camera.name for camera in cameras if camera.name not in offered]
        if missing:
            return f"{policy} needs cameras {missing} that this robot does not have"
        return ""

    def observation(self, raw: Mapping[str, Any], task: str = "") -> Observation:
        """A robot's observation dict → a wire observation (float32 state, camera images)."""
        try:
            state = np.array([raw[name] for name in self.state_names], dtype=np.float32)
            images = {camera.name: raw[camera.name] for camera in self.cameras}
        except KeyError as exc:
            raise ValueError(
                f"robot observation lacks {exc.args[0]!r}, which its observation_features "
                "declare; get_observation() must return every declared feature"
            ) from None
        for camera in self.cameras:
            shape = np.shape(images[camera.name])
            if shape != (camera.height, camera.width, 3):
                raise ValueError(
                    f"camera {camera.name!r} returned shape {shape}; observation_features "
                    f"declare ({camera.height}, {camera.width}, 3)"
                )
        return Observation(state=state, images=images, task=task)

    def action_dict(self, action: np.ndarray) -> dict[str, float]:
        """One robot-space action row → the `{motor: value}` dict `send_action` takes."""
        values = np.asarray(action).tolist()
        if len(values) != len(self.action_names):
            raise ValueError(
                f"action has {len(values)} values but the robot has {len(self.action_names)} motors"
            )
        return dict(zip(self.action_names, values, strict=True))
