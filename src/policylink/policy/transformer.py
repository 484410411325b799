"""The built-in chunk policy: a small transformer over state, camera patches and the task.

It exists so the server, benchmarks and demos run a *real* torch forward whose cost can be dialled
from about a millisecond to about a hundred (presets), with no model hub involved. Weights are
seeded at random or loaded from a checkpoint directory (`config.json` + `model.safetensors`) that
`save` writes. The chunk call is batch-shaped and reads nothing but its arguments, which is what
makes the family safe to share between sessions.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional

from policylink.policy.base import (
    BATCH_LIMIT,
    ChunkBatch,
    PassThroughProcessor,
    PolicySpec,
    Processor,
)
from policylink.policy.registry import PolicyConfig
from policylink.wire.messages import CameraSpec

FAMILY = "policylink.transformer"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TASK_BUCKETS = 1024
CAMERA_KEYS = frozenset({"name", "height", "width", "input_height", "input_width"})
_P = TypeVar("_P", bound="TransformerPolicy")


@dataclass(frozen=True)
class Preset:
    d_model: int
    layers: int
    heads: int
    image_size: int
    patch: int


# Forward cost of one sample with two 480x640 cameras on a 2-core CPU, measured by
# `python -m benchmarks server`: tiny ≈ 1.4 ms, small ≈ 5 ms, base ≈ 24 ms, large ≈ 100 ms.
PRESETS: dict[str, Preset] = {
    "tiny": Preset(d_model=64, layers=2, heads=4, image_size=64, patch=16),
    "small": Preset(d_model=128, layers=4, heads=4, image_size=96, patch=16),
    "base": Preset(d_model=256, layers=6, heads=8, image_size=128, patch=16),
    "large": Preset(d_model=384, layers=8, heads=8, image_size=160, patch=16),
}


@dataclass
class TransformerConfig:
    """Everything needed to rebuild the module; written next to the weights as JSON."""

    preset: str = "tiny"
    state_dim: int = 14
    action_names: list[str] = field(default_factory=list)
    chunk_size: int = 50
    cameras: list[dict[str, Any]] = field(default_factory=list)
    trained_fps: float = 30.0

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(
                f"policy.preset {self.preset!r} is unknown; use one of {list(PRESETS)}"
            )
        if not self.action_names:
            self.action_names = [f"joint_{i}" for i in range(self.state_dim)]
        if self.state_dim < 1 or self.chunk_size < 1:
            raise ValueError("policy.params: state_dim and chunk_size must be at least 1")
        for camera in self.cameras:
            if not {"name", "height", "width"} <= set(camera) <= CAMERA_KEYS:
                raise ValueError(
                    "policy.params.cameras entries need name, height, width (and optionally "
                    f"input_height, input_width: the resolution the policy reads); got {camera}"
                )

    @classmethod
    def from_params(cls, preset: str | None, params: dict[str, Any]) -> TransformerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(
                f"policy.params: unknown keys {unknown}; known keys are {sorted(known)}"
            )
        values = dict(params)
        if preset is not None:
            values["preset"] = preset
        return cls(**values)

    @property
    def camera_specs(self) -> tuple[CameraSpec, ...]:
        return tuple(
            CameraSpec(
                c["name"],
                int(c["height"]),
                int(c["width"]),
                int(c.get("input_height", 0)),
                int(c.get("input_width", 0)),
            )
            for c in self.cameras
        )


class CameraEncoder(nn.Module):
    """uint8 HWC frames → patch tokens: resize, normalise, one strided conv, position embedding."""

    def __init__(self, preset: Preset) -> None:
        super().__init__()
        self.image_size = preset.image_size
        self.patch = nn.Conv2d(3, preset.d_model, kernel_size=preset.patch, stride=preset.patch)
        tokens = (preset.image_size // preset.patch) ** 2
        self.position = nn.Parameter(torch.randn(1, tokens, preset.d_model) * 0.02)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # Decimate in uint8 first: converting a full 480x640 frame to float costs more than the
        # rest of a tiny model's forward, and the bilinear resize below discards that detail.
        stride = max(1, min(frames.shape[1], frames.shape[2]) // (2 * self.image_size))
        frames = frames[:, ::stride, ::stride]
        pixels = frames.permute(0, 3, 1, 2).to(self.position.dtype) / 255.0
        pixels = functional.interpolate(
            pixels, size=(self.image_size, self.image_size), mode="bilinear", antialias=False
        )
        tokens = self.patch(pixels).flatten(2).transpose(1, 2)
        return tokens + self.position


class ChunkTransformer(nn.Module):
    """[state, camera patches, task] tokens + one learned query per chunk step → [N, T, A]."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        preset = PRESETS[config.preset]
        width = preset.d_model
        self.state_in = nn.Linear(config.state_dim, width)
        self.task_in = nn.Embedding(TASK_BUCKETS, width)
        self.cameras = nn.ModuleDict({c.name: CameraEncoder(preset) for c in config.camera_specs})
        self.queries = nn.Parameter(torch.randn(1, config.chunk_size, width) * 0.02)
        layer = nn.TransformerEncoderLayer(
            width, preset.heads, dim_feedforward=4 * width, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, preset.layers, enable_nested_tensor=False)
        self.action_out = nn.Linear(width, len(config.action_names))

    def forward(
        self, state: torch.Tensor, frames: dict[str, torch.Tensor], task_ids: torch.Tensor
    ) -> torch.Tensor:
        count = state.shape[0]
        tokens = [self.state_in(state).unsqueeze(1), self.task_in(task_ids).unsqueeze(1)]
        tokens += [encoder(frames[name]) for name, encoder in self.cameras.items()]
        tokens.append(self.queries.expand(count, -1, -1))
        hidden = self.encoder(torch.cat(tokens, dim=1))
        return self.action_out(hidden[:, -self.queries.shape[1] :])


def task_bucket(task: str) -> int:
    """Stable across processes (unlike `hash`), so a checkpoint means the same on every host."""
    return zlib.crc32(task.encode()) % TASK_BUCKETS


def blend_prefix(chunk: np.ndarray, prefix: np.ndarray | None, delay: int) -> np.ndarray:
    """Real-time chunking guidance: keep the steps the robot will execute anyway, then hand over.

    Steps inside the inference delay are taken from the robot's unexecuted prefix verbatim (they
    run before this chunk arrives); the rest of the prefix fades linearly into the new chunk, so
    consecutive chunks join without a jump.
    """
    if prefix is None or prefix.shape[0] == 0:
        return chunk
    overlap = min(prefix.shape[0], chunk.shape[0])
    steps = np.arange(overlap, dtype=np.float32)
    fade = overlap - min(delay, overlap)
    weight = np.where(steps < delay, 1.0, 1.0 - (steps - delay + 1) / (fade + 1))
    blended = chunk.copy()
    blended[:overlap] = weight[:, None] * prefix[:overlap] + (1 - weight[:, None]) * chunk[:overlap]
    return blended


class TransformerPolicy:
    """A `Policy`: shared weights, a stateless batch-shaped chunk call, pass-through processors."""

    family = FAMILY

    def __init__(
        self, config: TransformerConfig, device: str = "cpu", dtype: str = "float32", seed: int = 0
    ) -> None:
        self.config = config
        self.device = torch.device(device)
        self.dtype = getattr(torch, dtype)
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        self.model = ChunkTransformer(config)
        torch.random.set_rng_state(generator_state)
        self.model.to(self.device, self.dtype).eval()
        self._spec = PolicySpec(
            action_names=tuple(config.action_names),
            chunk_size=config.chunk_size,
            state_dim=config.state_dim,
            family=self.family,
            state_names=tuple(f"state_{i}" for i in range(config.state_dim)),
            cameras=config.camera_specs,
            supports_rtc=True,
            trained_fps=config.trained_fps,
            max_batch_size=BATCH_LIMIT,
        )

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def make_processor(self) -> Processor:
        return PassThroughProcessor()

    def reset(self) -> None:
        """The chunk call keeps no state between requests."""

    def predict_chunk(self, batch: ChunkBatch) -> np.ndarray:
        state = torch.from_numpy(np.stack([np.asarray(s["state"]) for s in batch.samples]))
        frames = {
            name: torch.from_numpy(np.stack([s["images"][name] for s in batch.samples])).to(
                self.device
            )
            for name in self.model.cameras
        }
        task_ids = torch.tensor([task_bucket(s.get("task", "")) for s in batch.samples])
        with torch.inference_mode():
            out = self.model(state.to(self.device, self.dtype), frames, task_ids.to(self.device))
        chunks = out.float().cpu().numpy()
        return np.stack(
            [
                blend_prefix(chunks[i], batch.prefix[i], batch.inference_delay[i])
                for i in range(len(batch))
            ]
        )

    def save(self, directory: str | Path) -> Path:
        """Write a checkpoint directory `load` (and `policy.path` in a manifest) reads back."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        (path / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2))
        tensors = {
            k: v.detach().float().cpu().contiguous() for k, v in self.model.state_dict().items()
        }
        save_file(tensors, str(path / WEIGHTS_FILE))
        return path

    @classmethod
    def load(
        cls: type[_P], directory: str | Path, device: str = "cpu", dtype: str = "float32"
    ) -> _P:
        path = Path(directory)
        config_file, weights_file = path / CONFIG_FILE, path / WEIGHTS_FILE
        for required in (config_file, weights_file):
            if not required.is_file():
                raise ValueError(
                    f"policy.path {str(path)!r} has no {required.name}; point it at a directory "
                    "written by TransformerPolicy.save"
                )
        policy = cls(TransformerConfig(**json.loads(config_file.read_text())), device, dtype)
        policy.model.load_state_dict(load_file(str(weights_file)))
        policy.model.to(policy.device, policy.dtype)
        return policy


def build(config: PolicyConfig, device: str, dtype: str) -> TransformerPolicy:
    if config.path:
        return TransformerPolicy.load(config.path, device, dtype)
    return TransformerPolicy(
        TransformerConfig.from_params(config.preset, config.params), device, dtype, config.seed
    )
