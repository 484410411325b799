"""Test-only policies, served with `policy: {kind: python, factory: tests.server.policies:...}`.

Each one is a real torch computation whose output reveals something a test asserts on: what
input it answered (echo), whether one bad input stays isolated (raising), how a slow forward is
scheduled and drained (slow), and whether state leaks between episodes (stateful).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import numpy as np
import torch

from policylink.policy.base import ChunkBatch, PassThroughProcessor, PolicySpec, Processor
from policylink.policy.registry import PolicyConfig
from policylink.wire.messages import CameraSpec

ECHO_FAMILY = "tests.echo"
STATEFUL_FAMILY = "tests.stateful"
RAISE_MARKER = 666.0


def _spec(config: PolicyConfig, family: str) -> PolicySpec:
    state_dim = int(config.params.get("state_dim", 4))
    cameras = tuple(CameraSpec(**c) for c in config.params.get("cameras", []))
    return PolicySpec(
        action_names=tuple(f"joint_{i}" for i in range(state_dim)),
        chunk_size=int(config.params.get("chunk_size", 8)),
        state_dim=state_dim,
        family=family,
        cameras=cameras,
        supports_rtc=bool(config.params.get("supports_rtc", True)),
        trained_fps=float(config.params.get("trained_fps", 30.0)),
    )


class EchoPolicy:
    """`chunk[t, a] = state[a] + t + 1000 * inference_delay`: every chunk names its request.

    With `delay_s` set, every forward also takes that long (a slow GPU model), and with
    `started_file` set, the file is created when a forward begins (so a test can act mid-forward).
    """

    def __init__(self, config: PolicyConfig, family: str = ECHO_FAMILY) -> None:
        self._spec = _spec(config, family)
        self.delay_s = float(config.params.get("delay_s", 0.0))
        started = config.params.get("started_file")
        self.started_file = Path(started) if started else None
        self.forwards = 0

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def make_processor(self) -> Processor:
        return PassThroughProcessor()

    def reset(self) -> None:
        """Stateless."""

    def predict_chunk(self, batch: ChunkBatch) -> np.ndarray:
        self.forwards += 1
        if self.started_file is not None:
            self.started_file.write_text(str(self.forwards))
        if self.delay_s:
            time.sleep(self.delay_s)
        state = torch.from_numpy(np.stack([np.asarray(s["state"]) for s in batch.samples]))
        if bool((state[:, 0] == RAISE_MARKER).any()):
            raise ValueError(f"state[0] == {RAISE_MARKER}: the marker this policy refuses")
        steps = torch.arange(self._spec.chunk_size, dtype=torch.float32)
        delay = torch.tensor(batch.inference_delay, dtype=torch.float32)
        chunk = state[:, None, :] + steps[None, :, None] + 1000 * delay[:, None, None]
        return chunk.numpy()


class StatefulPolicy(EchoPolicy):
    """Adds how many forwards ran since the last `reset` to every action: hidden memory, the
    kind that makes a policy unsafe to share."""

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__(config, STATEFUL_FAMILY)
        self.since_reset = 0

    def reset(self) -> None:
        self.since_reset = 0

    def predict_chunk(self, batch: ChunkBatch) -> np.ndarray:
        chunk = super().predict_chunk(batch)
        self.since_reset += 1
        return chunk + self.since_reset * 100_000


class SingleActionPolicy(EchoPolicy):
    """Emits one action per call: no chunk API, which the server must refuse to serve."""

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__(config, "tests.single_action")
        self._spec = dataclasses.replace(self._spec, has_chunk_api=False)


def build_echo(config: PolicyConfig, device: str, dtype: str) -> EchoPolicy:
    return EchoPolicy(config)


def build_stateful(config: PolicyConfig, device: str, dtype: str) -> StatefulPolicy:
    return StatefulPolicy(config)


def build_single_action(config: PolicyConfig, device: str, dtype: str) -> SingleActionPolicy:
    return SingleActionPolicy(config)


class GatedPolicy(EchoPolicy):
    """Each forward waits for one `release()`: lets a test decide exactly when forwards finish."""

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__(config)
        self._gate = threading.Semaphore(0)
        self.entered = threading.Semaphore(0)

    def release(self) -> None:
        self._gate.release()

    def predict_chunk(self, batch: ChunkBatch) -> np.ndarray:
        self.entered.release()
        if not self._gate.acquire(timeout=30):
            raise TimeoutError("GatedPolicy was never released")
        return super().predict_chunk(batch)


def build_gated(config: PolicyConfig, device: str, dtype: str) -> GatedPolicy:
    return GatedPolicy(config)
