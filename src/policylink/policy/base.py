"""The interface the server (and `LocalEngine`) drives; policy code knows nothing of networks.

A policy is split in two so one model can serve many robots: the `Policy` holds weights and a
*batch-shaped* chunk call that touches no cross-request state, while each session gets its own
`Processor` holding whatever per-robot state pre/post-processing needs (normalisation buffers,
the state a relative-action policy adds back). Observations arrive as numpy; converting to torch
happens once, inside the policy, never on the decode path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from policylink.wire.messages import CameraSpec, Observation

Sample = Mapping[str, Any]
# Rows a batch-shaped built-in policy takes in one chunk call; the manifest's max_batch_size
# usually binds first.
BATCH_LIMIT = 64


@dataclass(frozen=True)
class PolicySpec:
    """What a policy consumes and produces; the contract a session is checked against.

    `action_names` order is the motor order of every chunk column. `family` keys the
    serving-mode registry (is the chunk call verified free of cross-request state?);
    `has_chunk_api` is False for policies that can only emit one action per call.
    `max_batch_size` is the most rows one chunk call takes (1: the policy does not batch, so
    the server never gives it more than one request per forward).
    """

    action_names: tuple[str, ...]
    chunk_size: int
    state_dim: int
    family: str
    state_names: tuple[str, ...] = ()
    cameras: tuple[CameraSpec, ...] = ()
    supports_rtc: bool = False
    trained_fps: float = 0.0
    has_chunk_api: bool = True
    max_batch_size: int = 1

    @property
    def action_dim(self) -> int:
        return len(self.action_names)


@dataclass
class ChunkBatch:
    """N samples for one forward: `[N, ...]` in, `[N, T, A]` out.

    `inference_delay[i]` is how many steps of sample i's chunk will already be stale when it
    arrives; `prefix[i]` is the robot's unexecuted tail in model space (RTC guidance), or None.
    """

    samples: list[Sample]
    inference_delay: list[int] = field(default_factory=list)
    prefix: list[np.ndarray | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        count = len(self.samples)
        if not self.inference_delay:
            self.inference_delay = [0] * count
        if not self.prefix:
            self.prefix = [None] * count
        if len(self.inference_delay) != count or len(self.prefix) != count:
            raise ValueError("ChunkBatch: samples, inference_delay and prefix differ in length")

    def __len__(self) -> int:
        return len(self.samples)


@runtime_checkable
class Processor(Protocol):
    """Per-session pre/post-processing; one instance per session, never shared."""

    def preprocess(self, obs: Observation) -> Sample:
        """Observation (numpy, RGB uint8 HWC images) → one model input sample."""
        ...

    def postprocess(self, chunk_model: np.ndarray) -> np.ndarray:
        """`[T, A]` model-space chunk → `[T, A]` robot-space chunk for this session."""
        ...

    def reset(self) -> None:
        """Episode boundary: forget per-episode state."""
        ...


class PassThroughProcessor:
    """For policies whose model space is robot space: the sample is the observation's state,
    images and task, and the chunk goes back to the robot as it is."""

    def preprocess(self, obs: Observation) -> Sample:
        return {"state": obs.state, "images": obs.images, "task": obs.task}

    def postprocess(self, chunk_model: np.ndarray) -> np.ndarray:
        return chunk_model

    def reset(self) -> None:
        """Nothing is kept between requests."""


@runtime_checkable
class Policy(Protocol):
    @property
    def spec(self) -> PolicySpec: ...

    def make_processor(self) -> Processor: ...

    def predict_chunk(self, batch: ChunkBatch) -> np.ndarray:
        """`[N, T, A]` float32 model-space chunks, row i answering sample i."""
        ...

    def reset(self) -> None:
        """Episode boundary for policies served exclusively; a no-op for stateless ones."""
        ...


def dummy_observation(spec: PolicySpec, seed: int = 0) -> Observation:
    """A plausible observation for warm-up forwards and benchmarks."""
    rng = np.random.default_rng(seed)
    return Observation(
        state=rng.standard_normal(spec.state_dim).astype(np.float32),
        images={
            cam.name: rng.integers(0, 256, (cam.height, cam.width, 3), dtype=np.uint8)
            for cam in spec.cameras
        },
    )
