"""What LeRobot itself computes for one observation: the golden side of every parity test."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from policylink.wire.messages import Observation
from tests.lerobot import checkpoints
from tests.lerobot.checkpoints import CAMERA


def observation(seed: int) -> Observation:
    state, image = checkpoints.observation_arrays(seed)
    return Observation(state=state, images={CAMERA: image})


def lerobot_rollout(
    path: Path, obs: Observation, steps: int, seed: int | None = None
) -> np.ndarray:
    """LeRobot's own rollout for this observation, in robot space: a freshly loaded policy,
    reset, torch seeded (when given), then `select_action` once per step, each action through
    the postprocessor — exactly what `lerobot-record` executes on a robot."""
    import torch
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors
    from lerobot.policies.utils import prepare_observation_for_inference

    config = PreTrainedConfig.from_pretrained(path)
    policy = get_policy_class(config.type).from_pretrained(path, config=config)
    preprocessor, postprocessor = make_pre_post_processors(config, pretrained_path=str(path))
    frame = {"observation.state": obs.state, f"observation.images.{CAMERA}": obs.images[CAMERA]}
    batch = preprocessor(prepare_observation_for_inference(frame, torch.device("cpu")))
    policy.reset()
    if seed is not None:
        torch.manual_seed(seed)
    actions = [postprocessor(policy.select_action(dict(batch))) for _ in range(steps)]
    return torch.stack(actions, dim=1)[0].numpy()
