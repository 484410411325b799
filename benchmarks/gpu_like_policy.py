"""A policy whose forward costs what a GPU forward costs: `a + b·N` ms for a batch of N.

On a GPU a large model's forward is dominated by reading its weights once per call, so a batch
of N costs little more than a batch of one. This policy reproduces that curve without a GPU by
sleeping (which releases the interpreter lock, as a CUDA forward does while the device works),
so the server's scheduling is measured against a realistic device, not this machine's CPU.

Default coefficients: published OpenVLA-class 7B on H100: batch 1 18 ms, batch 8 24 ms, so
`b = (24 - 18) / 7 ≈ 0.86` ms per row and `a = 18 - b ≈ 17.1` ms. Served with
`policy: {kind: python, factory: "benchmarks.gpu_like_policy:build", params: {...}}`; params
`fixed_ms` / `per_row_ms` override `a` / `b` (`per_row_ms: 0` gives a flat forward).

The chunk call reads nothing but its arguments (its output is the state repeated along the
chunk), so the family is safe to share between sessions; `VERIFIED` is what a server process
adds to its serving-mode registry to serve it shared.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from policylink.policy.base import ChunkBatch, PassThroughProcessor, PolicySpec, Processor
from policylink.policy.registry import PolicyConfig

FAMILY = "benchmarks.gpu_like"
VERIFIED = {FAMILY: "shared"}
FIXED_MS = 18.0 - (24.0 - 18.0) / 7
PER_ROW_MS = (24.0 - 18.0) / 7
MAX_BATCH = 64


class GpuLikePolicy:
    """Sleeps `fixed_ms + per_row_ms * N` per chunk call; returns the state held for T steps."""

    def __init__(self, params: dict[str, Any]) -> None:
        state_dim = int(params.get("state_dim", 14))
        self.fixed_ms = float(params.get("fixed_ms", FIXED_MS))
        self.per_row_ms = float(params.get("per_row_ms", PER_ROW_MS))
        self._spec = PolicySpec(
            action_names=tuple(f"joint_{i}" for i in range(state_dim)),
            chunk_size=int(params.get("chunk_size", 50)),
            state_dim=state_dim,
            family=FAMILY,
            state_names=tuple(f"state_{i}" for i in range(state_dim)),
            supports_rtc=True,
            trained_fps=float(params.get("trained_fps", 0.0)),
            max_batch_size=MAX_BATCH,
        )

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def make_processor(self) -> Processor:
        return PassThroughProcessor()

    def reset(self) -> None:
        """Stateless."""

    def forward_ms(self, batch_size: int) -> float:
        return self.fixed_ms + self.per_row_ms * batch_size

    def predict_chunk(self, batch: ChunkBatch) -> np.ndarray:
        time.sleep(self.forward_ms(len(batch)) / 1e3)
        state = np.stack([np.asarray(s["state"], np.float32) for s in batch.samples])
        return np.repeat(state[:, None, :], self._spec.chunk_size, axis=1)


def build(config: PolicyConfig, device: str, dtype: str) -> GpuLikePolicy:
    return GpuLikePolicy(config.params)
