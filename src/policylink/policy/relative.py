"""A relative-action policy: the model predicts offsets, the robot receives `state + offset`.

Its postprocessor needs the state of the observation it answers, cached at preprocess. That is
exactly the per-session state that must never be shared: were two robots to share a processor,
one would receive actions relative to the other's pose. Serving it proves the isolation.
"""

from __future__ import annotations

import numpy as np

from policylink.policy.base import Processor, Sample
from policylink.policy.registry import PolicyConfig
from policylink.policy.transformer import TransformerConfig, TransformerPolicy
from policylink.wire.messages import Observation

FAMILY = "policylink.relative"


class RelativeProcessor:
    """Holds the state of the request in flight for its own session, and nothing else."""

    def __init__(self) -> None:
        self._anchor: np.ndarray | None = None

    def preprocess(self, obs: Observation) -> Sample:
        self._anchor = np.array(obs.state, dtype=np.float32)
        return {"state": obs.state, "images": obs.images, "task": obs.task}

    def postprocess(self, chunk_model: np.ndarray) -> np.ndarray:
        if self._anchor is None:
            raise RuntimeError("RelativeProcessor.postprocess called before preprocess")
        return chunk_model + self._anchor[None, :]

    def reset(self) -> None:
        self._anchor = None


class RelativePolicy(TransformerPolicy):
    family = FAMILY

    def __init__(
        self, config: TransformerConfig, device: str = "cpu", dtype: str = "float32", seed: int = 0
    ) -> None:
        if len(config.action_names) != config.state_dim:
            raise ValueError(
                f"policy kind 'relative' adds actions to the state, so it needs as many actions "
                f"as state entries; got {len(config.action_names)} actions and state_dim "
                f"{config.state_dim}"
            )
        super().__init__(config, device, dtype, seed)

    def make_processor(self) -> Processor:
        return RelativeProcessor()


def build(config: PolicyConfig, device: str, dtype: str) -> RelativePolicy:
    if config.path:
        return RelativePolicy.load(config.path, device, dtype)
    return RelativePolicy(
        TransformerConfig.from_params(config.preset, config.params), device, dtype, config.seed
    )
