"""The expert policy for `SimArm`, served like any other policy (kind `sim_expert`).

The chunk comes from the analytic planner, so the task's success rate measures how well the
chunks were delivered and executed, not how well a model was trained. What a learned model
would add is cost: with `backbone` set to a preset of the built-in transformer, every chunk
call also runs that transformer's forward on the same observation (its output is not used), so
"policy size" is a real knob and a blocking client really pays the forward on every chunk.
The chunk call reads nothing but its arguments, so one instance serves many robots.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from policylink.policy.base import BATCH_LIMIT, ChunkBatch, PolicySpec, Processor, Sample
from policylink.policy.registry import PolicyConfig
from policylink.sim.planner import plan_chunk
from policylink.sim.robot import ACTION_NAMES, STATE_NAMES
from policylink.sim.task import ReachTrackConfig
from policylink.wire.messages import CameraSpec, Observation

if TYPE_CHECKING:
    from policylink.policy.transformer import TransformerPolicy

FAMILY = "policylink.sim_expert"
BACKBONES = ("none", "tiny", "small", "base", "large")


@dataclass
class ExpertConfig:
    """The manifest's `policy.params` for kind `sim_expert`; must match the robots' layout."""

    chunk_size: int = 30
    fps: float = 30.0
    cameras: list[dict[str, Any]] = field(
        default_factory=lambda: [{"name": "top", "height": 480, "width": 640}]
    )
    backbone: str = "none"

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(f"policy.params.chunk_size must be at least 1, got {self.chunk_size}")
        if self.fps <= 0:
            raise ValueError(f"policy.params.fps must be positive, got {self.fps}")
        if self.backbone not in BACKBONES:
            raise ValueError(
                f"policy.params.backbone {self.backbone!r} is unknown; use one of {BACKBONES}"
            )
        for camera in self.cameras:
            if set(camera) != {"name", "height", "width"}:
                raise ValueError(
                    f"policy.params.cameras entries need exactly name, height, width; got {camera}"
                )

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ExpertConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(
                f"policy.params: unknown keys {unknown} for kind sim_expert; known: {sorted(known)}"
            )
        return cls(**params)

    @property
    def camera_specs(self) -> tuple[CameraSpec, ...]:
        return tuple(CameraSpec(c["name"], int(c["height"]), int(c["width"])) for c in self.cameras)


class ExpertProcessor:
    """Model space is robot space (joint radians); the processor only checks and shapes."""

    def preprocess(self, obs: Observation) -> Sample:
        if obs.state.shape != (len(STATE_NAMES),):
            raise ValueError(
                f"observation.state must hold {len(STATE_NAMES)} values {list(STATE_NAMES)}, "
                f"got shape {obs.state.shape}"
            )
        return {"state": obs.state, "images": obs.images, "task": obs.task}

    def postprocess(self, chunk_model: np.ndarray) -> np.ndarray:
        return chunk_model

    def reset(self) -> None:
        """Nothing is kept between requests."""


class ExpertPolicy:
    family = FAMILY

    def __init__(self, config: ExpertConfig, backbone: TransformerPolicy | None = None) -> None:
        self.config = config
        self.task = ReachTrackConfig(fps=config.fps)
        self._backbone = backbone
        self._spec = PolicySpec(
            action_names=ACTION_NAMES,
            chunk_size=config.chunk_size,
            state_dim=len(STATE_NAMES),
            family=FAMILY,
            state_names=STATE_NAMES,
            cameras=config.camera_specs,
            supports_rtc=True,
            trained_fps=config.fps,
            max_batch_size=BATCH_LIMIT,
        )

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    @property
    def backbone_parameters(self) -> int:
        """The size a demo reports for this policy; 0 without a backbone."""
        if self._backbone is None:
            return 0
        return sum(p.numel() for p in self._backbone.model.parameters())

    def make_processor(self) -> Processor:
        return ExpertProcessor()

    def reset(self) -> None:
        """The chunk call keeps no state between requests."""

    def predict_chunk(self, batch: ChunkBatch) -> np.ndarray:
        if self._backbone is not None:
            self._backbone.predict_chunk(batch)
        return np.stack(
            [
                plan_chunk(
                    np.asarray(sample["state"], dtype=np.float64),
                    self.task.geometry,
                    self.config.fps,
                    self.config.chunk_size,
                    prefix=prefix,
                    delay=delay,
                )
                for sample, prefix, delay in zip(
                    batch.samples, batch.prefix, batch.inference_delay, strict=True
                )
            ]
        )


def build(config: PolicyConfig, device: str = "cpu", dtype: str = "float32") -> ExpertPolicy:
    """`policy.preset` names the backbone too, so a manifest sets "policy size" in one place."""
    params = dict(config.params)
    if config.preset is not None and params.setdefault("backbone", config.preset) != config.preset:
        raise ValueError(
            f"policy.preset {config.preset!r} and policy.params.backbone "
            f"{params['backbone']!r} disagree; set one of them"
        )
    expert = ExpertConfig.from_params(params)
    backbone = None
    if expert.backbone != "none":
        from policylink.policy.transformer import TransformerConfig, TransformerPolicy

        backbone = TransformerPolicy(
            TransformerConfig(
                preset=expert.backbone,
                state_dim=len(STATE_NAMES),
                action_names=list(ACTION_NAMES),
                chunk_size=expert.chunk_size,
                cameras=expert.cameras,
                trained_fps=expert.fps,
            ),
            device,
            dtype,
            config.seed,
        )
    return ExpertPolicy(expert, backbone)
