"""A policy whose every action says which replica computed it, for which robot, from what.

Served to replica processes with `policy: {kind: python, factory:
tests.scaleout.policies:build_marked, params: {marker: ...}}`. A robot sends
`state = [robot, tick]` and every row of the chunk it gets back is
`[marker, robot, tick, row]`, so an action a robot *executes* tells a test, with no access to
the server: the replica (and so the model revision) that computed it (`marker`), whether it was
computed for this robot at all (`robot`), and how old the observation behind it is
(`tick`). A wrong-model action, another robot's action or a stale one is then a fact read off
the control loop, not an inference from counters.

Numpy only, and the chunk call reads nothing but its arguments, so the family is registered as
safe to share (`VERIFIED`) in the test process, whose registry the server children copy.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from policylink.policy.base import ChunkBatch, PassThroughProcessor, PolicySpec, Processor

FAMILY = "tests.scaleout.marked"
VERIFIED = {FAMILY: "shared"}
ACTION_NAMES = ("marker", "robot", "obs_tick", "row")
STATE_NAMES = ("robot", "tick")
MAX_BATCH = 32


class MarkedPolicy:
    """`chunk[t] = [marker, state[0], state[1], t]`; each forward sleeps `forward_ms` (a device
    that releases the interpreter lock while it works, as a GPU forward does)."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.marker = float(params["marker"])
        self.forward_s = float(params.get("forward_ms", 0.0)) / 1e3
        self._spec = PolicySpec(
            action_names=ACTION_NAMES,
            chunk_size=int(params.get("chunk_size", 30)),
            state_dim=len(STATE_NAMES),
            family=FAMILY,
            state_names=STATE_NAMES,
            supports_rtc=True,
            max_batch_size=MAX_BATCH,
        )

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def make_processor(self) -> Processor:
        return PassThroughProcessor()

    def reset(self) -> None:
        """Stateless."""

    def predict_chunk(self, batch: ChunkBatch) -> np.ndarray:
        if self.forward_s:
            time.sleep(self.forward_s)
        rows = self._spec.chunk_size
        state = np.stack([np.asarray(s["state"], np.float32) for s in batch.samples])
        chunk = np.empty((len(batch), rows, len(ACTION_NAMES)), np.float32)
        chunk[:, :, 0] = self.marker
        chunk[:, :, 1] = state[:, None, 0]
        chunk[:, :, 2] = state[:, None, 1]
        chunk[:, :, 3] = np.arange(rows, dtype=np.float32)[None, :]
        return chunk


def build_marked(config: Any, device: str, dtype: str) -> MarkedPolicy:
    """Registry builder; `params.marker` is required (which replica this is)."""
    return MarkedPolicy(dict(config.params))
