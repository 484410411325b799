"""`GymRobot`: any gymnasium environment with image observations, as a robot.

Vector observations become named state features, image observations (or, for environments
that observe vectors only, the `rgb_array` render) become cameras, and the action space becomes
named action features. A gymnasium environment advances one step per action rather than with
a clock, so a tick on which the control loop sends nothing does not move it.

An episode succeeds when the environment reports `info["is_success"]`; environments that do
not report it (classic control) succeed when they reach their time limit without terminating,
which is what "keep the pole up" means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces


@dataclass
class GymEpisodeResult:
    episode: int
    success: bool
    steps: int
    total_reward: float

    def describe(self) -> str:
        outcome = "succeeded" if self.success else "failed"
        return f"{outcome} after {self.steps} steps, return {self.total_reward:g}"


def _is_image(space: spaces.Space) -> bool:
    return (
        isinstance(space, spaces.Box)
        and space.dtype == np.uint8
        and len(space.shape) == 3
        and space.shape[2] == 3
    )


def _is_vector(space: spaces.Space) -> bool:
    return isinstance(space, spaces.Box) and len(space.shape) == 1


class GymRobot:
    """Wraps `env` (an id for `gymnasium.make`, or an environment made with rgb_array render)."""

    name = "gym"

    def __init__(self, env: str | gymnasium.Env, camera: str = "camera", seed: int = 0) -> None:
        self.env = gymnasium.make(env, render_mode="rgb_array") if isinstance(env, str) else env
        self.seed = seed
        self.results: list[GymEpisodeResult] = []
        self._camera = camera
        self._state_keys, self._image_keys = self._split_observation_space()
        self._render_camera = not self._image_keys
        if self._render_camera and self.env.render_mode != "rgb_array":
            raise ValueError(
                f"{self.env}: observations hold no image, so GymRobot renders one; make the "
                "environment with render_mode='rgb_array'"
            )
        self._action_names = self._describe_actions()
        self._connected = False
        self._observation: Any = None
        self._episode = -1
        self._done = True
        self._steps = 0
        self._total_reward = 0.0

    def _split_observation_space(self) -> tuple[list[tuple[str | None, int]], list[str | None]]:
        """Which observation entries are state vectors and which are camera images."""
        space = self.env.observation_space
        entries = list(space.spaces.items()) if isinstance(space, spaces.Dict) else [(None, space)]
        state: list[tuple[str | None, int]] = []
        images: list[str | None] = []
        for key, sub in entries:
            if _is_image(sub):
                images.append(key)
            elif _is_vector(sub):
                state.append((key, sub.shape[0]))
            else:
                raise ValueError(
                    f"observation {key or 'space'} is {sub}; GymRobot handles uint8 HxWx3 images "
                    "and 1-D Box vectors (wrap the environment to flatten anything else)"
                )
        return state, images

    def _describe_actions(self) -> list[str]:
        space = self.env.action_space
        if isinstance(space, spaces.Discrete):
            return ["action"]
        if _is_vector(space):
            return [f"action.{i}" for i in range(space.shape[0])]
        raise ValueError(f"action space {space} is not Discrete or a 1-D Box")

    @property
    def state_names(self) -> list[str]:
        return [f"{key or 'state'}.{i}" for key, size in self._state_keys for i in range(size)]

    @property
    def observation_features(self) -> dict[str, Any]:
        features: dict[str, Any] = dict.fromkeys(self.state_names, float)
        for name, image in self._images(self._observation_or_reset()).items():
            features[name] = image.shape
        return features

    @property
    def action_features(self) -> dict[str, type]:
        return dict.fromkeys(self._action_names, float)

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self, calibrate: bool = True) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False
        self.env.close()

    @property
    def episode_done(self) -> bool:
        self._observation_or_reset()
        return self._done

    def reset(self) -> None:
        """Start the next episode; each episode has its own seed so runs are repeatable."""
        self._episode += 1
        self._observation, _ = self.env.reset(seed=self.seed + self._episode)
        self._done = False
        self._steps = 0
        self._total_reward = 0.0

    def _observation_or_reset(self) -> Any:
        if self._observation is None:
            self.reset()
        return self._observation

    def _images(self, observation: Any) -> dict[str, np.ndarray]:
        if self._render_camera:
            return {self._camera: np.asarray(self.env.render(), dtype=np.uint8)}
        return {
            key or self._camera: observation if key is None else observation[key]
            for key in self._image_keys
        }

    def get_observation(self) -> dict[str, Any]:
        observation = self._observation_or_reset()
        values: list[float] = []
        for key, _ in self._state_keys:
            vector = observation[key] if key is not None else observation
            values.extend(np.asarray(vector, dtype=np.float64).tolist())
        return dict(zip(self.state_names, values, strict=True)) | self._images(observation)

    def send_action(self, action: dict[str, Any]) -> dict[str, float]:
        missing = [name for name in self._action_names if name not in action]
        if missing:
            raise ValueError(f"action lacks {missing}; this environment needs {self._action_names}")
        self._observation_or_reset()
        values = np.array([float(action[name]) for name in self._action_names])
        if not np.all(np.isfinite(values)):
            raise ValueError(f"action has non-finite values: {dict(action)}")
        space = self.env.action_space
        if isinstance(space, spaces.Discrete):
            first, last = int(space.start), int(space.start + space.n - 1)
            env_action: Any = int(np.clip(round(values[0]), first, last))
            sent = {"action": float(env_action)}
        else:
            env_action = np.clip(values.astype(space.dtype), space.low, space.high)
            sent = dict(zip(self._action_names, env_action.tolist(), strict=True))
        if self._done:
            return sent
        self._observation, reward, terminated, truncated, info = self.env.step(env_action)
        self._steps += 1
        self._total_reward += float(reward)
        if terminated or truncated:
            self._done = True
            success = bool(info.get("is_success", truncated and not terminated))
            self.results.append(
                GymEpisodeResult(self._episode, success, self._steps, self._total_reward)
            )
        return sent
