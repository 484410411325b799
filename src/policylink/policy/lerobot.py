"""Serves LeRobot checkpoints: LeRobot loads the policy and its processors, this module adapts them.

Loading goes through LeRobot's own API (`from_pretrained`, `make_pre_post_processors(...,
pretrained_path=...)`, `prepare_observation_for_inference`), so a checkpoint is served exactly as
LeRobot runs it in-process; that parity is tested, not assumed. What policylink adds is the split
that lets one policy serve many robots: one policy instance, and a deep copy of the checkpoint's
pre/post-processor pipelines per session, because a pipeline may keep per-robot state between
its two halves.

Model space is LeRobot's normalised action space (the policy's raw output, before the
postprocessor), which is also the space LeRobot's RTC prefixes live in.

How a chunk is computed is decided per family from `FAMILIES`; each entry was checked against
LeRobot 0.6.1's code (its `predict_action_chunk`, `select_action` and `reset`), and the
serving-mode registry repeats the verdict (a test keeps the two equal):

- shared, "chunk": `predict_action_chunk` reads only its batch (the families whose `_queues`
  hold nothing but the action queue, which the chunk call never reads), so one call may hold
  any mix of sessions. Families that take LeRobot's RTC arguments (`inference_delay`,
  `prev_chunk_left_over`) get them per row; they are scalar per call, so rows that disagree run
  in separate calls.
- exclusive, "rollout": `predict_action_chunk` reads observation queues that only
  `select_action` fills. Every request therefore resets the policy and runs `select_action` over
  one chunk, so the queues hold this request's observation alone and a chunk never depends on an
  earlier request. The queues are instance state, so the family is served exclusively.
- refused (`REFUSED`): no chunk call, or a chunk call that needs the episode's history, which a
  request does not carry.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policylink.policy.base import BATCH_LIMIT, ChunkBatch, PolicySpec, Sample
from policylink.policy.registry import PolicyConfig
from policylink.wire.messages import CameraSpec, Observation

STATE_KEY = "observation.state"
IMAGE_PREFIX = "observation.images."
SINGLE_IMAGE_KEY = "observation.image"
ACTION_KEY = "action"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Family:
    """How one LeRobot policy type makes a chunk.

    `call` is "chunk" (`predict_action_chunk`, stateless: served shared) or "rollout" (reset,
    then `select_action` once per row of the chunk: served exclusive); `chunk_length` names the
    config field that gives the rows of one chunk; `rtc` says the chunk call takes LeRobot's RTC
    arguments; `offline` says a checkpoint can be built from its config alone (no hub weights),
    so tests/lerobot serves a real one; the others are verified from their code and a stand-in.
    """

    call: str
    chunk_length: str
    rtc: bool = False
    offline: bool = False

    @property
    def mode(self) -> str:
        return "shared" if self.call == "chunk" else "exclusive"


FAMILIES: dict[str, Family] = {
    "act": Family("chunk", "chunk_size", offline=True),
    "diffusion": Family("rollout", "n_action_steps", offline=True),
    "vqbet": Family("rollout", "action_chunk_size", offline=True),
    "multi_task_dit": Family("rollout", "n_action_steps"),
    "pi0": Family("chunk", "chunk_size", rtc=True),
    "pi05": Family("chunk", "chunk_size", rtc=True),
    "smolvla": Family("chunk", "chunk_size", rtc=True),
    "groot": Family("chunk", "n_action_steps", rtc=True),
    "evo1": Family("chunk", "chunk_size", rtc=True),
    "molmoact2": Family("chunk", "n_action_steps", rtc=True),
    "pi0_fast": Family("chunk", "n_action_steps"),
    "xvla": Family("chunk", "chunk_size"),
    "wall_x": Family("chunk", "chunk_size"),
    "vla_jepa": Family("chunk", "chunk_size"),
    "eo1": Family("chunk", "chunk_size"),
    "fastwam": Family("chunk", "action_horizon"),
}

REFUSED: dict[str, str] = {
    "gaussian_actor": (
        "its predict_action_chunk raises NotImplementedError: it emits one action per call"
    ),
    "tdmpc": (
        "it plans one action per call by default (n_action_steps 1) and warm-starts each plan "
        "from the previous call's (_prev_mean), so a chunk depends on the episode so far"
    ),
    "lingbot_va": (
        "each chunk after the first is decoded from a KV cache fed with the episode's executed "
        "actions and observed keyframes, which a request does not carry"
    ),
    "sac": "SAC is an RL algorithm (RLAlgorithmConfig), not a policy with a chunk API",
    "sarm": "SARM is a reward model; it predicts no actions",
    "robometer": "Robometer is a reward model; it predicts no actions",
    "topreward": "TopReward is a reward model; it predicts no actions",
    "reward_classifier": "a reward classifier predicts rewards, not actions",
}


@dataclass(frozen=True)
class LeRobotParams:
    """The `policy.params` block of kind `lerobot`.

    LeRobot checkpoints record the action *dimension* but not the motor names, so the
    manifest supplies them (in the order of the dataset's `action` feature); a count that
    differs from the checkpoint's is an error. `fixed_noise` makes a diffusion policy draw the
    same noise for every request (torch reseeded with `policy.seed`), so its chunk is a pure
    function of the observation and captured requests replay byte-exact; otherwise noise comes
    from torch's global generator, as in LeRobot's own rollout.
    """

    action_names: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ()
    fixed_noise: bool = False

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> LeRobotParams:
        allowed = {"action_names", "state_names", "fixed_noise"}
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise ValueError(
                f"policy.params {unknown} unknown for kind 'lerobot'; allowed: {sorted(allowed)}"
            )
        names = {}
        for field_name in ("action_names", "state_names"):
            value = params.get(field_name, [])
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"policy.params.{field_name} must be a list of strings")
            names[field_name] = tuple(value)
        fixed_noise = params.get("fixed_noise", False)
        if not isinstance(fixed_noise, bool):
            raise ValueError(
                f"policy.params.fixed_noise must be true or false, got {fixed_noise!r}"
            )
        return cls(**names, fixed_noise=fixed_noise)


def refuse_unservable(policy_type: str) -> None:
    """Raise the reason a refused LeRobot type cannot be served; pass any other type."""
    if policy_type in REFUSED:
        raise ValueError(
            f"LeRobot policy type {policy_type!r} cannot be served: {REFUSED[policy_type]}; "
            "policylink serves chunking policies whose chunk depends on the request only"
        )


def family_of(policy_type: str, config: Any) -> tuple[str, Family]:
    """The serving family name and the verified family of a LeRobot policy type, or a refusal
    that says why.

    A configuration that makes a shared family stateful gets a family name of its own, which the
    serving-mode registry does not list, so it is served exclusive.
    """
    refuse_unservable(policy_type)
    family = FAMILIES.get(policy_type)
    if family is None:
        raise ValueError(
            f"LeRobot policy type {policy_type!r} is not verified for serving: nobody has checked "
            "that its chunk call reads only its own request; verified types: "
            f"{sorted(FAMILIES)}"
        )
    name = f"lerobot.{policy_type}"
    if policy_type == "molmoact2":
        # RTC guidance exists for continuous decoding only; and a per-episode seed is a
        # generator that advances with every chunk of the policy instance (one robot's episode).
        continuous = getattr(config, "inference_action_mode", None) == "continuous"
        family = dataclasses.replace(family, rtc=continuous)
        if getattr(config, "per_episode_seed", False):
            name = f"{name}.per_episode_seed"
    return name, family


@dataclass(frozen=True)
class InputLayout:
    """Where each wire field goes in LeRobot's observation dict."""

    state_dim: int
    camera_keys: dict[str, str]
    cameras: tuple[CameraSpec, ...]


def input_layout(input_features: Mapping[str, Any]) -> InputLayout:
    """State and cameras from the checkpoint's `input_features`; anything else is refused."""
    state_dim = 0
    camera_keys: dict[str, str] = {}
    cameras = []
    for key, feature in input_features.items():
        kind = str(getattr(feature.type, "value", feature.type))
        shape = tuple(feature.shape)
        if key == STATE_KEY:
            state_dim = int(shape[0])
        elif kind == "VISUAL" and (key.startswith(IMAGE_PREFIX) or key == SINGLE_IMAGE_KEY):
            name = key.removeprefix(IMAGE_PREFIX) if key != SINGLE_IMAGE_KEY else "image"
            if len(shape) != 3 or shape[0] != 3:
                raise ValueError(f"checkpoint camera {key!r} has shape {shape}; expected (3, H, W)")
            camera_keys[name] = key
            cameras.append(CameraSpec(name, int(shape[1]), int(shape[2])))
        else:
            raise ValueError(
                f"checkpoint input feature {key!r} ({kind}) has no place on the wire, which "
                f"carries one state vector ({STATE_KEY!r}) and RGB cameras ({IMAGE_PREFIX}<name>)"
            )
    return InputLayout(state_dim, camera_keys, tuple(cameras))


def checked_names(names: tuple[str, ...], count: int, field_name: str, what: str) -> tuple:
    if len(names) != count:
        raise ValueError(
            f"policy.params.{field_name} lists {len(names)} names but the checkpoint's {what} has "
            f"{count} dimensions; list one name per dimension, in the dataset's order"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"policy.params.{field_name} repeats a name: {list(names)}")
    return names


class LeRobotProcessor:
    """One session's copies of the checkpoint's pipelines; never shared between sessions."""

    def __init__(self, preprocessor: Any, postprocessor: Any, layout: InputLayout, device: str):
        self._pre = preprocessor
        self._post = postprocessor
        self._layout = layout
        self._device = torch.device(device)

    def preprocess(self, obs: Observation) -> Sample:
        from lerobot.policies.utils import prepare_observation_for_inference

        frame: dict[str, np.ndarray] = {}
        if self._layout.state_dim:
            state = np.array(obs.state, dtype=np.float32)
            if state.shape != (self._layout.state_dim,):
                raise ValueError(
                    f"observation state has shape {state.shape}; the policy expects "
                    f"({self._layout.state_dim},)"
                )
            frame[STATE_KEY] = state
        for camera in self._layout.cameras:
            image = obs.images.get(camera.name)
            if image is None:
                raise ValueError(
                    f"observation lacks camera {camera.name!r}, which the policy reads"
                )
            if image.shape != (camera.height, camera.width, 3) or image.dtype != np.uint8:
                raise ValueError(
                    f"camera {camera.name!r} sent {image.dtype} {image.shape}; the policy expects "
                    f"uint8 ({camera.height}, {camera.width}, 3)"
                )
            # Decoded frames may be read-only views of the message buffer; torch wants its own.
            frame[self._layout.camera_keys[camera.name]] = (
                image if image.flags.writeable else image.copy()
            )
        return self._pre(prepare_observation_for_inference(frame, self._device, task=obs.task))

    def postprocess(self, chunk_model: np.ndarray) -> np.ndarray:
        action = torch.from_numpy(np.ascontiguousarray(chunk_model, dtype=np.float32))
        robot = self._post(action.unsqueeze(0))
        return robot[0].to(torch.float32).cpu().numpy()

    def reset(self) -> None:
        self._pre.reset()
        self._post.reset()


class LeRobotPolicy:
    """A loaded LeRobot policy behind policylink's batch-shaped `Policy` interface."""

    def __init__(
        self,
        policy: Any,
        *,
        family: Family,
        spec: PolicySpec,
        pipelines: tuple[Any, Any],
        layout: InputLayout,
        device: str,
        dtype: torch.dtype,
        fixed_seed: int | None = None,
    ):
        self._policy = policy
        self._family = family
        self._spec = spec
        self._pipelines = pipelines
        self._layout = layout
        self._device = device
        self._dtype = dtype
        self._fixed_seed = fixed_seed

    @property
    def spec(self) -> PolicySpec:
        return self._spec

    def make_processor(self) -> LeRobotProcessor:
        preprocessor, postprocessor = copy.deepcopy(self._pipelines)
        return LeRobotProcessor(preprocessor, postprocessor, self._layout, self._device)

    @torch.no_grad()
    def predict_chunk(self, batch: ChunkBatch) -> np.ndarray:
        rows = len(batch)
        out = np.empty((rows, self._spec.chunk_size, self._spec.action_dim), dtype=np.float32)
        for indices, delay, prefix in self._call_groups(batch):
            inputs = self._collate([batch.samples[i] for i in indices])
            with self._precision():
                chunk = self._call(inputs, delay, prefix)
            expected = (len(indices), self._spec.chunk_size, self._spec.action_dim)
            if tuple(chunk.shape) != expected:
                raise RuntimeError(
                    f"LeRobot {self._spec.family} returned a chunk of shape {tuple(chunk.shape)}, "
                    f"expected {expected}"
                )
            out[indices] = chunk.to(torch.float32).cpu().numpy()
        return out

    def reset(self) -> None:
        self._policy.reset()

    def _call_groups(self, batch: ChunkBatch) -> list[tuple[list[int], int, np.ndarray | None]]:
        """Rows that can share one call: all of them, unless RTC arguments differ between rows."""
        if not self._family.rtc:
            return [(list(range(len(batch))), 0, None)]
        groups: dict[tuple, list[int]] = {}
        for i, prefix in enumerate(batch.prefix):
            key = (None,) if prefix is None else (batch.inference_delay[i], np.shape(prefix))
            groups.setdefault(key, []).append(i)
        result = []
        for key, indices in groups.items():
            if key == (None,):
                result.append((indices, 0, None))
            else:
                stacked = np.stack([batch.prefix[i] for i in indices])
                result.append((indices, int(key[0]), stacked))
        return result

    def _call(self, inputs: dict, delay: int, prefix: np.ndarray | None) -> torch.Tensor:
        if self._family.call == "rollout":
            if self._fixed_seed is None:
                return self._rollout(inputs)
            # Diffusion draws its initial noise and every denoising step's noise from torch's
            # global generator; a forked, reseeded one keeps that draw identical per request
            # without disturbing anyone else's random stream.
            with torch.random.fork_rng(devices=self._rng_devices()):
                torch.manual_seed(self._fixed_seed)
                return self._rollout(inputs)
        kwargs: dict[str, Any] = {}
        if prefix is not None:
            kwargs["inference_delay"] = delay
            kwargs["prev_chunk_left_over"] = torch.from_numpy(
                np.ascontiguousarray(prefix, dtype=np.float32)
            ).to(self._device)
        return self._policy.predict_action_chunk(dict(inputs), **kwargs)

    def _rollout(self, inputs: dict) -> torch.Tensor:
        # reset → populate → predict: the queues hold this observation only.
        self._policy.reset()
        steps = [self._policy.select_action(dict(inputs)) for _ in range(self._spec.chunk_size)]
        return torch.stack(steps, dim=1)

    def _rng_devices(self) -> list[int]:
        device = torch.device(self._device)
        return [device.index or 0] if device.type == "cuda" else []

    def _precision(self) -> Any:
        """Reduced precision by autocast, weights kept float32: LeRobot models build float32
        tensors internally (ACT's latent, for one), so casting the weights would break them."""
        device_type = torch.device(self._device).type
        return torch.autocast(device_type, self._dtype, enabled=self._dtype != torch.float32)

    def _collate(self, samples: list[Sample]) -> dict[str, Any]:
        """Per-session samples (batch dim 1) → one batch."""
        merged: dict[str, Any] = {}
        for key, value in samples[0].items():
            if isinstance(value, torch.Tensor):
                merged[key] = value if len(samples) == 1 else torch.cat([s[key] for s in samples])
            elif isinstance(value, list):
                merged[key] = [item for s in samples for item in s[key]]
            else:
                merged[key] = value
        return merged


def build(config: PolicyConfig, device: str, dtype: str) -> LeRobotPolicy:
    params = LeRobotParams.parse(config.params)
    if not config.path:
        raise ValueError(
            "policy.path is required for kind 'lerobot': a local checkpoint directory or a hub id"
        )
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported for kind 'lerobot'; use {list(DTYPES)}")
    try:
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors
    except ImportError as exc:
        raise ValueError(
            f"policy kind 'lerobot' needs LeRobot ({exc}); install policylink[lerobot]"
        ) from exc

    refuse_unservable(declared_type(config.path))
    lerobot_config = load_config(PreTrainedConfig, config.path)
    policy_type = lerobot_config.type
    family_name, family = family_of(policy_type, lerobot_config)
    layout = input_layout(lerobot_config.input_features)
    action_feature = lerobot_config.output_features.get(ACTION_KEY)
    if action_feature is None:
        raise ValueError(f"checkpoint {config.path!r} has no {ACTION_KEY!r} output feature")
    action_names = checked_names(
        params.action_names, int(action_feature.shape[0]), "action_names", "action"
    )
    state_names = (
        checked_names(params.state_names, layout.state_dim, "state_names", STATE_KEY)
        if params.state_names
        else ()
    )
    if family.rtc:
        enable_rtc(lerobot_config)
    lerobot_config.device = device
    torch_dtype = DTYPES[dtype]

    policy = get_policy_class(policy_type).from_pretrained(
        config.path, config=lerobot_config, strict=True
    )
    policy.to(device)
    policy.eval()
    pipelines = make_pre_post_processors(
        lerobot_config,
        pretrained_path=config.path,
        preprocessor_overrides={"device_processor": {"device": device}},
    )
    spec = PolicySpec(
        action_names=action_names,
        chunk_size=int(getattr(lerobot_config, family.chunk_length)),
        state_dim=layout.state_dim,
        family=family_name,
        state_names=state_names,
        cameras=layout.cameras,
        supports_rtc=family.rtc,
        max_batch_size=BATCH_LIMIT if family.call == "chunk" else 1,
    )
    fixed_seed = config.seed if params.fixed_noise and family.call == "rollout" else None
    return LeRobotPolicy(
        policy,
        family=family,
        spec=spec,
        pipelines=pipelines,
        layout=layout,
        device=device,
        dtype=torch_dtype,
        fixed_seed=fixed_seed,
    )


def declared_type(path: str) -> str:
    """The `type` a local checkpoint's config.json declares ("" for a hub id or no such file).

    Read before LeRobot parses the config: reward models and RL algorithms are not
    `PreTrainedConfig` types, and their refusal should say what they are, not that parsing
    failed.
    """
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        return ""
    try:
        declared = json.loads(config_file.read_text()).get("type", "")
    except (OSError, ValueError, AttributeError):
        return ""
    return declared if isinstance(declared, str) else ""


def load_config(config_class: Any, path: str) -> Any:
    """The checkpoint's LeRobot config, with errors that say which kind of path was meant."""
    looks_like_hub_id = path.count("/") == 1 and not path.startswith((".", "/", "~"))
    if not Path(path).is_dir() and not looks_like_hub_id:
        raise ValueError(
            f"policy.path {path!r} is not a checkpoint directory (and not a hub id: user/repo)"
        )
    try:
        return config_class.from_pretrained(path)
    except Exception as exc:
        raise ValueError(f"policy.path {path!r}: cannot load a LeRobot config ({exc})") from exc


def enable_rtc(lerobot_config: Any) -> None:
    """Turn LeRobot's RTC guidance on; without a prefix it changes nothing, so plain chunks stay.

    The server decides per session whether a prefix travels (manifest `rtc`, client request);
    the policy only has to honour one when it arrives.
    """
    from lerobot.policies.rtc.configuration_rtc import RTCConfig

    if lerobot_config.rtc_config is None:
        lerobot_config.rtc_config = RTCConfig(enabled=True)
    else:
        lerobot_config.rtc_config.enabled = True
