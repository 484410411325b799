"""The marked policy with its action layout changed: what a server swapped in by mistake
serves (same model id and revision, columns in another order)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from policylink.policy.base import ChunkBatch, PolicySpec
from tests.scaleout.policies import ACTION_NAMES, MarkedPolicy


class ReorderedPolicy(MarkedPolicy):
    """`chunk[t] = [t, tick, robot, marker]`, under action names in that order."""

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        self._spec = replace(self._spec, action_names=tuple(reversed(ACTION_NAMES)))

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def predict_chunk(self, batch: ChunkBatch) -> np.ndarray:
        return super().predict_chunk(batch)[:, :, ::-1].copy()


def build_reordered(config: Any, device: str, dtype: str) -> ReorderedPolicy:
    """Registry builder, as `tests.scaleout.policies.build_marked`."""
    return ReorderedPolicy(dict(config.params))
