"""Numpy test policies for engines that need no torch and no network.

`TracePolicy` answers `chunk[t, a] = state[a] + step * t + 1000 * inference_delay`, so every
action names the observation (and delay) it came from. A forward can be held at a gate, which
lets a test act while a request is in flight.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from policylink.policy.base import ChunkBatch, PolicySpec, Processor, Sample
from policylink.wire import CameraSpec
from policylink.wire.messages import Observation
from tests.client.robots import MOTORS

RAISE_MARKER = 666.0


class IdentityProcessor:
    def __init__(self) -> None:
        self.resets = 0

    def preprocess(self, obs: Observation) -> Sample:
        return {"state": obs.state, "images": obs.images, "task": obs.task}

    def postprocess(self, chunk_model: np.ndarray) -> np.ndarray:
        return chunk_model

    def reset(self) -> None:
        self.resets += 1


class TracePolicy:
    def __init__(
        self,
        *,
        chunk_size: int = 8,
        step: float = 1.0,
        supports_rtc: bool = True,
        gated: bool = False,
        always_raise: bool = False,
        cameras: tuple[CameraSpec, ...] = (),
    ) -> None:
        self._spec = PolicySpec(
            action_names=MOTORS,
            chunk_size=chunk_size,
            state_dim=len(MOTORS),
            family="tests.trace",
            supports_rtc=supports_rtc,
            cameras=cameras,
        )
        self.step = step
        self.always_raise = always_raise
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.started = threading.Event()
        self.processors: list[IdentityProcessor] = []
        self._lock = threading.Lock()
        # Guarded by _lock: every batch seen, in call order.
        self._batches: list[ChunkBatch] = []

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    @property
    def batches(self) -> list[ChunkBatch]:
        with self._lock:
            return list(self._batches)

    def make_processor(self) -> Processor:
        processor = IdentityProcessor()
        self.processors.append(processor)
        return processor

    def reset(self) -> None:
        """Stateless."""

    def predict_chunk(self, batch: ChunkBatch) -> np.ndarray:
        with self._lock:
            self._batches.append(batch)
        self.started.set()
        if not self.gate.wait(30):
            raise TimeoutError("test never opened the gate")
        state = np.stack([np.asarray(sample["state"], np.float32) for sample in batch.samples])
        if self.always_raise or bool((state[:, 0] == RAISE_MARKER).any()):
            raise ValueError(f"state[0] == {RAISE_MARKER}: the marker this policy refuses")
        steps = self.step * np.arange(self._spec.chunk_size, dtype=np.float32)
        delay = np.asarray(batch.inference_delay, np.float32)
        return state[:, None, :] + steps[None, :, None] + 1000 * delay[:, None, None]


class SlowPolicy:
    """Sleeps before every forward of `inner`: a request stays in flight long enough for a test
    to play actions meanwhile, deterministically."""

    def __init__(self, inner: Any, delay_s: float) -> None:
        self.inner = inner
        self.delay_s = delay_s

    @property
    def spec(self) -> PolicySpec:
        return self.inner.spec

    def make_processor(self) -> Processor:
        return self.inner.make_processor()

    def reset(self) -> None:
        self.inner.reset()

    def predict_chunk(self, batch: ChunkBatch) -> np.ndarray:
        time.sleep(self.delay_s)
        return self.inner.predict_chunk(batch)


def build_slow_transformer(config: Any, device: str, dtype: str) -> SlowPolicy:
    """The built-in transformer behind `SlowPolicy`; `params.delay_s` is the added time."""
    from policylink.policy.registry import PolicyConfig, build_policy

    params = dict(config.params)
    delay_s = float(params.pop("delay_s", 0.0))
    inner = build_policy(
        PolicyConfig(kind="transformer", seed=config.seed, params=params), device, dtype
    )
    return SlowPolicy(inner, delay_s)


def build_trace(config: Any, device: str, dtype: str) -> TracePolicy:
    """Registry builder (`policy: {kind: python, factory: tests.client.policies:build_trace}`)."""
    return TracePolicy(**config.params)
