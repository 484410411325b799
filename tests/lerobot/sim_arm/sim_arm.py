"""A position-controlled arm behind LeRobot's `Robot` base class: no hardware, real interface."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from lerobot.robots import Robot

from tests.lerobot.checkpoints import ACTION_NAMES, IMAGE_SHAPE, observation_arrays
from tests.lerobot.sim_arm.config_sim_arm import ROBOT_TYPE, SimArmConfig


class SimArm(Robot):
    config_class = SimArmConfig
    name = ROBOT_TYPE

    def __init__(self, config: SimArmConfig) -> None:
        super().__init__(config)
        self.config = config
        self._positions, self._frame = observation_arrays(config.seed)
        self._log: Any = None
        self._connected = False

    @property
    def observation_features(self) -> dict[str, Any]:
        height, width = IMAGE_SHAPE[1], IMAGE_SHAPE[2]
        return {**dict.fromkeys(ACTION_NAMES, float), self.config.camera: (height, width, 3)}

    @property
    def action_features(self) -> dict[str, type]:
        return dict.fromkeys(ACTION_NAMES, float)

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def is_calibrated(self) -> bool:
        return True

    def connect(self, calibrate: bool = True) -> None:
        if self.config.action_log:
            self._log = open(self.config.action_log, "w")  # noqa: SIM115 (closed in disconnect)
        self._connected = True

    def calibrate(self) -> None:
        """Nothing to calibrate: the joints report exact positions."""

    def configure(self) -> None:
        """Nothing to configure."""

    def get_observation(self) -> dict[str, Any]:
        if not self._connected:
            raise ConnectionError(f"{self} is not connected")
        joints = dict(zip(ACTION_NAMES, self._positions.tolist(), strict=True))
        return {**joints, self.config.camera: self._frame.copy()}

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        if not self._connected:
            raise ConnectionError(f"{self} is not connected")
        self._positions = np.array([action[name] for name in ACTION_NAMES], dtype=np.float32)
        if self._log is not None:
            self._log.write(json.dumps({name: float(action[name]) for name in ACTION_NAMES}) + "\n")
            self._log.flush()
        return action

    def disconnect(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        self._connected = False
