"""A policy for gymnasium's CartPole, served to `policylink run --robot gym:CartPole-v1`.

It pushes the cart toward the side the pole leans to, repeated for a short chunk: enough to
keep a short episode alive, which is all the run command's gym path needs to show.
"""

from __future__ import annotations

import numpy as np

from policylink.policy.base import ChunkBatch, PassThroughProcessor, PolicySpec
from policylink.policy.registry import PolicyConfig
from policylink.wire.messages import CameraSpec

FAMILY = "tests.cartpole"
CHUNK = 4


class CartPoleHeuristic:
    spec = PolicySpec(
        action_names=("action",),
        chunk_size=CHUNK,
        state_dim=4,
        family=FAMILY,
        cameras=(CameraSpec("camera", 400, 600),),
        trained_fps=30.0,
    )

    def make_processor(self) -> PassThroughProcessor:
        return PassThroughProcessor()

    def reset(self) -> None:
        """Stateless."""

    def predict_chunk(self, batch: ChunkBatch) -> np.ndarray:
        pushes = [float(s["state"][2] + 0.5 * s["state"][3] > 0) for s in batch.samples]
        return np.array([[[push]] * CHUNK for push in pushes], dtype=np.float32)


def build(config: PolicyConfig, device: str, dtype: str) -> CartPoleHeuristic:
    return CartPoleHeuristic()
