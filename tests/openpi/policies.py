"""A probe policy for the OpenPI tests, served with `kind: python`.

Every chunk tells the test what produced it: the first columns echo the state plus the step
index, two columns carry the mean pixel of the `front` and `wrist` images (so a key-map mix-up
shows), and the last column is how many requests this session's processor has served since
its episode began (so a reset or a session switch that failed to free state shows). With
`delay_s` each forward takes that long; with `started_file` the file appears when a forward
begins, so a test can act mid-forward; with `max_batch_size` it takes that many requests per
forward, and `batch_sizes` records how many each forward got.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from policylink.policy.base import ChunkBatch, PolicySpec, Processor, Sample
from policylink.policy.registry import PolicyConfig
from policylink.wire.messages import CameraSpec, Observation

FAMILY = "tests.openpi.probe"
RAISE_MARKER = 666.0


class CountingProcessor:
    """Per-session state: requests served in the current episode."""

    def __init__(self) -> None:
        self.requests = 0

    def preprocess(self, obs: Observation) -> Sample:
        self.requests += 1
        return {"state": obs.state, "images": obs.images}

    def postprocess(self, chunk_model: np.ndarray) -> np.ndarray:
        chunk = np.array(chunk_model, dtype=np.float32)
        chunk[:, -1] = self.requests
        return chunk

    def reset(self) -> None:
        self.requests = 0


class ProbePolicy:
    def __init__(self, config: PolicyConfig) -> None:
        params = config.params
        state_dim = int(params.get("state_dim", 3))
        size = int(params.get("image_size", 8))
        cameras = (CameraSpec("front", size, size), CameraSpec("wrist", size, size))
        self._spec = PolicySpec(
            action_names=(
                *(f"joint_{i}" for i in range(state_dim)),
                "front_mean",
                "wrist_mean",
                "episode_requests",
            ),
            chunk_size=int(params.get("chunk_size", 5)),
            state_dim=state_dim,
            family=FAMILY,
            cameras=cameras,
            trained_fps=30.0,
            max_batch_size=int(params.get("max_batch_size", 1)),
        )
        self.batch_sizes: list[int] = []
        self.delay_s = float(params.get("delay_s", 0.0))
        started = params.get("started_file")
        self.started_file = Path(started) if started else None

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def make_processor(self) -> Processor:
        return CountingProcessor()

    def reset(self) -> None:
        """Stateless: per-session state lives in the processor."""

    def predict_chunk(self, batch: ChunkBatch) -> np.ndarray:
        self.batch_sizes.append(len(batch))
        if self.started_file is not None:
            self.started_file.touch()
        if self.delay_s:
            time.sleep(self.delay_s)
        state = torch.as_tensor(np.stack([s["state"] for s in batch.samples]))
        if bool((state[:, 0] == RAISE_MARKER).any()):
            raise ValueError(f"state[0] == {RAISE_MARKER}: the marker this policy refuses")
        means = torch.tensor(
            [
                [float(np.mean(s["images"][name])) for name in ("front", "wrist")]
                for s in batch.samples
            ]
        )
        steps = torch.arange(self._spec.chunk_size, dtype=torch.float32)[None, :, None]
        joints = state[:, None, :] + steps
        extra = torch.cat([means, torch.zeros(len(batch), 1)], dim=1)[:, None, :]
        extra = extra.expand(-1, self._spec.chunk_size, -1)
        return torch.cat([joints, extra], dim=2).numpy()


def build_probe(config: PolicyConfig, device: str, dtype: str) -> ProbePolicy:
    return ProbePolicy(config)
