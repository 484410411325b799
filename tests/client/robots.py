"""A LeRobot-shaped robot for tests: flat feature dicts, one state reading per call."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

MOTORS = ("shoulder.pos", "elbow.pos", "gripper.pos")


class ScriptedRobot:
    """`get_observation()` reports `state = [n, n + signature, n]` on its n-th call (from
    `first`), and a camera frame filled with n; every `send_action` is recorded. Thread-safe
    for reading `sent` while a loop runs."""

    def __init__(
        self,
        camera: tuple[int, int] | None = None,
        first: float = 0.0,
        motors: tuple[str, ...] = MOTORS,
        signature: float = 0.0,
    ) -> None:
        self.motors = motors
        self.signature = signature
        self.camera = camera
        self.calls = 0
        self.first = first
        self.connected = False
        self.disconnects = 0
        self._lock = threading.Lock()
        # Guarded by _lock: every action dict received, in order.
        self._sent: list[dict[str, float]] = []

    @property
    def observation_features(self) -> dict[str, Any]:
        features: dict[str, Any] = dict.fromkeys(self.motors, float)
        if self.camera is not None:
            features["front"] = (*self.camera, 3)
        return features

    @property
    def action_features(self) -> dict[str, Any]:
        return dict.fromkeys(self.motors, float)

    @property
    def is_connected(self) -> bool:
        return self.connected

    def connect(self) -> None:
        self.connected = True

    def disconnect(self) -> None:
        self.connected = False
        self.disconnects += 1

    def get_observation(self) -> dict[str, Any]:
        value = self.first + self.calls
        self.calls += 1
        obs: dict[str, Any] = dict.fromkeys(self.motors, value)
        obs[self.motors[1]] = value + self.signature
        if self.camera is not None:
            obs["front"] = np.full((*self.camera, 3), int(value) % 256, dtype=np.uint8)
        return obs

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._sent.append(dict(action))
        return action

    @property
    def sent(self) -> list[dict[str, float]]:
        with self._lock:
            return list(self._sent)
