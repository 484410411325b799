"""Where a policy's inputs sit in an OpenPI observation dict, with presets for common layouts.

OpenPI has no fixed observation schema: each robot family's clients use their own keys. A
`KeyMap` names them so a stock client works unchanged:

- `libero`: state `observation/state`; images `observation/image`, `observation/wrist_image`
  (HWC).
- `aloha`: state `state`; images `images/{cam}`, a nested `images` map keyed by camera name
  (CHW, as openpi's ALOHA clients send them).
- `droid`: state `observation/joint_position` (7 values) + `observation/gripper_position` (1);
  images `observation/exterior_image_1_left`, `observation/wrist_image_left`,
  `observation/exterior_image_2_left` (HWC).

The prompt is `prompt` in all three. Image keys bind to the policy's cameras in one of three
ways: a pattern with `{cam}` is filled in with each camera name; a list binds to the policy's
cameras in their declared order (the first key to the first camera); a map
`{camera: key}` binds explicitly. A key with `/` is looked up flat first (`"observation/image"`
as one key, the LIBERO and DROID convention) and then as a path through nested maps (ALOHA's
`images` map), so both conventions decode. Several state keys are concatenated in order;
`state_sizes` says how many values each holds, which is how the client side splits a state
vector back into them.

Decoding accepts images as HWC or CHW, uint8 or float in [0, 1] (what openpi clients send);
what reaches the policy is always uint8 HWC RGB, as on the native path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from policylink.wire.errors import DecodeError, ErrorCode, ImageError, WireError
from policylink.wire.messages import CameraSpec, Observation

LAYOUTS = ("hwc", "chw")
CAMERA_SLOT = "{cam}"


@dataclass(frozen=True)
class KeyMap:
    """A layout of OpenPI observation keys; `bind` fits it to one policy's cameras and state.

    `images` is a tuple of keys (ordered, or one `{cam}` pattern) or a `{camera: key}` map.
    `nested` says how the client side writes `a/b` keys: as a nested map (ALOHA) or flat.
    """

    name: str = "custom"
    state: tuple[str, ...] = ("state",)
    state_sizes: tuple[int, ...] = ()
    images: tuple[str, ...] | Mapping[str, str] = ("images/{cam}",)
    image_layout: str = "hwc"
    prompt: str = "prompt"
    nested: bool = False

    def __post_init__(self) -> None:
        if not self.state:
            raise ValueError("openpi.key_map.state must name at least one key")
        if self.state_sizes and len(self.state_sizes) != len(self.state):
            raise ValueError(
                f"openpi.key_map.state_sizes has {len(self.state_sizes)} sizes for "
                f"{len(self.state)} state keys {list(self.state)}; give one size per key"
            )
        if any(size <= 0 for size in self.state_sizes):
            raise ValueError(f"openpi.key_map.state_sizes must be positive, got {self.state_sizes}")
        if not all(isinstance(key, str) and key for key in self.state):
            raise ValueError(f"openpi.key_map.state must hold key names, got {self.state!r}")
        if not isinstance(self.prompt, str) or not self.prompt:
            raise ValueError(f"openpi.key_map.prompt must be a key name, got {self.prompt!r}")
        keys = self.images.values() if isinstance(self.images, Mapping) else self.images
        if not all(isinstance(key, str) and key for key in keys):
            raise ValueError(f"openpi.key_map.images must hold key names, got {self.images!r}")
        if self.image_layout not in LAYOUTS:
            raise ValueError(
                f"openpi.key_map.image_layout must be one of {LAYOUTS}, got {self.image_layout!r}"
            )
        if not isinstance(self.images, Mapping):
            patterns = [key for key in self.images if CAMERA_SLOT in key]
            if patterns and len(self.images) != 1:
                raise ValueError(
                    f"openpi.key_map.images: a {CAMERA_SLOT} pattern must be the only entry, "
                    f"got {list(self.images)}"
                )

    @classmethod
    def from_config(cls, config: str | Mapping[str, Any] | KeyMap | None) -> KeyMap:
        """A preset name, or a map of fields over a preset (`preset:`, default `aloha`)."""
        if config is None:
            return PRESETS[DEFAULT_PRESET]
        if isinstance(config, KeyMap):
            return config
        if isinstance(config, str):
            return preset(config)
        overrides = dict(config)
        base = preset(str(overrides.pop("preset", DEFAULT_PRESET)))
        known = {f.name for f in fields(cls)} - {"name"}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"openpi.key_map: unknown fields {unknown}; use {sorted(known)}")
        for key in ("state", "state_sizes"):
            if key in overrides:
                value = overrides[key]
                overrides[key] = (value,) if isinstance(value, str | int) else tuple(value)
        if "images" in overrides and not isinstance(overrides["images"], Mapping):
            value = overrides["images"]
            overrides["images"] = (value,) if isinstance(value, str) else tuple(value)
        name = base.name if not overrides else f"{base.name}+custom"
        return replace(base, name=name, **overrides)

    def bind(self, cameras: Sequence[CameraSpec], state_dim: int) -> BoundKeyMap:
        """Fix every key for one policy; a mismatch is an error at start-up, not per request."""
        names = [camera.name for camera in cameras]
        if isinstance(self.images, Mapping):
            missing = [name for name in names if name not in self.images]
            extra = sorted(set(self.images) - set(names))
            if missing or extra:
                raise ValueError(
                    f"openpi.key_map.images maps cameras {sorted(self.images)} but the policy "
                    f"has {names}; give exactly one key per policy camera"
                )
            images = {name: self.images[name] for name in names}
        elif len(self.images) == 1 and CAMERA_SLOT in self.images[0]:
            images = {name: self.images[0].replace(CAMERA_SLOT, name) for name in names}
        else:
            if len(self.images) < len(names):
                raise ValueError(
                    f"openpi key map {self.name!r} has image keys {list(self.images)} but the "
                    f"policy needs cameras {names}; set openpi.key_map.images to "
                    "{camera: key} for each camera"
                )
            images = dict(zip(names, self.images, strict=False))
        if self.state_sizes:
            if sum(self.state_sizes) != state_dim:
                parts = " + ".join(
                    f"{key} ({size})"
                    for key, size in zip(self.state, self.state_sizes, strict=True)
                )
                raise ValueError(
                    f"openpi key map {self.name!r} builds the state from {parts} = "
                    f"{sum(self.state_sizes)} values but the policy's state_dim is {state_dim}; "
                    "set openpi.key_map.state and state_sizes"
                )
            sizes = self.state_sizes
        elif len(self.state) == 1:
            sizes = (state_dim,)
        else:
            raise ValueError(
                f"openpi.key_map.state names {list(self.state)}: give state_sizes, one per key"
            )
        return BoundKeyMap(
            name=self.name,
            state=tuple(zip(self.state, sizes, strict=True)),
            images=images,
            image_layout=self.image_layout,
            prompt=self.prompt,
            nested=self.nested,
        )


PRESETS: dict[str, KeyMap] = {
    "libero": KeyMap(
        name="libero",
        state=("observation/state",),
        images=("observation/image", "observation/wrist_image"),
    ),
    "aloha": KeyMap(
        name="aloha",
        state=("state",),
        images=("images/{cam}",),
        image_layout="chw",
        nested=True,
    ),
    "droid": KeyMap(
        name="droid",
        state=("observation/joint_position", "observation/gripper_position"),
        state_sizes=(7, 1),
        images=(
            "observation/exterior_image_1_left",
            "observation/wrist_image_left",
            "observation/exterior_image_2_left",
        ),
    ),
}
DEFAULT_PRESET = "aloha"


def preset(name: str) -> KeyMap:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(
            f"openpi key map preset {name!r} is unknown; use one of {sorted(PRESETS)}"
        ) from None


_MISSING: Any = object()


def lookup(payload: Mapping[str, Any], key: str) -> Any:
    """`key` as one flat entry, else as a `/`-separated path through nested maps."""
    if key in payload:
        return payload[key]
    node: Any = payload
    for part in key.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _missing(payload: Mapping[str, Any], key: str, map_name: str) -> DecodeError:
    present = sorted(str(k) for k in payload)[:12]
    return DecodeError(
        f"observation has no {key!r} (key map {map_name!r}); it has {present}. Send that key "
        "or configure openpi.key_map on the server"
    )


def to_rgb_hwc(value: object, key: str, layout: str = "hwc") -> np.ndarray:
    """uint8 HWC RGB from what OpenPI clients send: HWC or CHW, uint8 or float in [0, 1]."""
    if not isinstance(value, np.ndarray):
        raise ImageError(f"{key}: an image must be a numpy array, got {type(value).__name__}")
    if value.ndim != 3 or 3 not in (value.shape[0], value.shape[-1]):
        raise ImageError(f"{key}: an image must be HxWx3 or 3xHxW, got shape {value.shape}")
    is_chw = value.shape[0] == 3 and (value.shape[-1] != 3 or layout == "chw")
    image = value.transpose(1, 2, 0) if is_chw else value
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"{key}: image shape {value.shape} is empty")
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if image.dtype.kind == "f":
        # np.clip passes NaN through, and NaN cast to uint8 is whatever the platform makes of
        # it: a camera that sends NaN pixels is broken, and the robot hears so.
        if not np.isfinite(image).all():
            raise ImageError(f"{key}: a float image must hold finite values in [0, 1]")
        scaled = np.rint(np.clip(image, 0.0, 1.0) * 255.0)
        return np.ascontiguousarray(scaled, dtype=np.uint8)
    raise ImageError(f"{key}: images must be uint8 (0-255) or float (0-1), got {image.dtype}")


def _state_part(value: object, key: str, size: int) -> np.ndarray:
    try:
        part = np.asarray(value, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        raise DecodeError(f"{key}: state must be numbers, got {type(value).__name__}") from None
    if part.size != size:
        raise DecodeError(f"{key}: expected {size} state values, got {part.size}")
    if not np.isfinite(part).all():
        raise DecodeError(f"{key}: state values must be finite")
    return part


@dataclass(frozen=True)
class BoundKeyMap:
    """A key map fitted to one policy: every key fixed, state sizes known."""

    name: str
    state: tuple[tuple[str, int], ...]
    images: dict[str, str] = field(default_factory=dict)
    image_layout: str = "hwc"
    prompt: str = "prompt"
    nested: bool = False

    @property
    def state_dim(self) -> int:
        return sum(size for _, size in self.state)

    def to_observation(
        self, payload: Mapping[str, Any], episode_start: bool = False
    ) -> Observation:
        """An OpenPI observation dict as the native `Observation`; unknown keys are ignored."""
        parts = []
        for key, size in self.state:
            value = lookup(payload, key)
            if value is _MISSING:
                raise _missing(payload, key, self.name)
            parts.append(_state_part(value, key, size))
        images = {}
        for camera, key in self.images.items():
            value = lookup(payload, key)
            if value is _MISSING:
                raise _missing(payload, key, self.name)
            images[camera] = to_rgb_hwc(value, key, self.image_layout)
        prompt = lookup(payload, self.prompt)
        if prompt is _MISSING or prompt is None:
            prompt = ""
        if not isinstance(prompt, str):
            raise DecodeError(
                f"{self.prompt}: the prompt must be a string, got {type(prompt).__name__}"
            )
        return Observation(
            state=np.concatenate(parts) if len(parts) > 1 else parts[0],
            images=images,
            task=prompt,
            episode_start=episode_start,
        )

    def to_openpi(self, obs: Observation) -> dict[str, Any]:
        """The client side: a native `Observation` as the dict a stock OpenPI server expects."""
        state = np.asarray(obs.state, dtype=np.float32).reshape(-1)
        if state.size != self.state_dim:
            raise WireError(
                f"observation state has {state.size} values; key map {self.name!r} expects "
                f"{self.state_dim}",
                ErrorCode.STATE_MISMATCH,
            )
        out: dict[str, Any] = {}
        offset = 0
        for key, size in self.state:
            self._put(out, key, state[offset : offset + size])
            offset += size
        for camera, key in self.images.items():
            if camera not in obs.images:
                raise WireError(
                    f"observation has no image for camera {camera!r}; it has {sorted(obs.images)}",
                    ErrorCode.CAMERA_MISMATCH,
                )
            image = np.asarray(obs.images[camera])
            self._put(out, key, image.transpose(2, 0, 1) if self.image_layout == "chw" else image)
        if obs.task:
            self._put(out, self.prompt, obs.task)
        return out

    def _put(self, out: dict[str, Any], key: str, value: object) -> None:
        if not self.nested:
            out[key] = value
            return
        *parents, leaf = key.split("/")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value

    def describe(self) -> dict[str, Any]:
        """The binding as plain data, sent in the metadata frame so a client can check it."""
        return {
            "name": self.name,
            "state": [{"key": key, "size": size} for key, size in self.state],
            "images": dict(self.images),
            "image_layout": self.image_layout,
            "prompt": self.prompt,
        }
