"""Session-open checks and per-observation checks: the sync-safety contract, enforced.

Chunk columns map to motors by position, so a robot whose ordered action names differ from the
policy's by a single swap would drive the wrong joints; such a session never opens. Cameras,
state dimension and schema are hard checks too. Capacity is checked last, so a robot that could
never be served here is told what is wrong with it rather than to try another replica. Soft
mismatches (control rate, RTC) open the session with warnings in the ack.

Per observation, whichever protocol carried it: the state and both prefixes must be finite
(NaN or Inf in the input makes no sense to a policy and would likely come back as NaN actions)
and the cameras exactly the policy's, at its sizes (or at a camera's input resolution, to which
a full frame is then resized here, so the policy reads one size whichever side resized). The
inference delay and the prefixes are bounded by the chunk, not refused beyond it: a robot whose
latency grew past a chunk asks for a delay its next chunk cannot cover, and refusing it would
starve it of the chunks that bring its latency estimate back down.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from policylink.wire.errors import ErrorCode, SchemaError, WireError
from policylink.wire.image import resize_image
from policylink.wire.keys import client_segment
from policylink.wire.limits import DEFAULT_LIMITS
from policylink.wire.messages import CameraSpec, Capabilities, ErrorReply, Observation, SessionOpen
from policylink.wire.schema import negotiate_schema

FPS_TOLERANCE = 0.05


@dataclass(frozen=True)
class OpenPolicy:
    """What the server enforces at open, derived from the policy spec and the manifest."""

    capabilities: Capabilities
    strict_fps: bool
    rtc_available: bool


@dataclass
class OpenTerms:
    """What a session open that passed the contract checks is granted."""

    client: str
    schema_version: int
    rtc_enabled: bool
    warnings: list[str] = field(default_factory=list)


def reject(code: ErrorCode, message: str, **details: float | int | str) -> ErrorReply:
    return ErrorReply(code=code, message=message, details=dict(details))


def check_session_open(req: SessionOpen, rules: OpenPolicy) -> OpenTerms | ErrorReply:
    """Every hard check except capacity (which needs the registry); soft ones become warnings."""
    caps = rules.capabilities
    try:
        client = client_segment(req.client_id)
    except WireError as exc:
        return reject(exc.code, str(exc))
    bounds_error = _open_bounds_error(req)
    if bounds_error:
        return reject(ErrorCode.BAD_MESSAGE, bounds_error)
    try:
        schema = negotiate_schema(req.schema_min, req.schema_max, caps.schema_min, caps.schema_max)
    except SchemaError as exc:
        return reject(exc.code, str(exc), server_min=caps.schema_min, server_max=caps.schema_max)
    mismatch = _action_mismatch(list(req.action_names), list(caps.action_names))
    if mismatch:
        return reject(ErrorCode.ACTION_MISMATCH, mismatch)
    if req.state_dim != caps.state_dim:
        return reject(
            ErrorCode.STATE_MISMATCH,
            f"state_dim {req.state_dim} differs from the policy's {caps.state_dim}; send a state "
            f"vector of exactly {caps.state_dim} values",
            expected=caps.state_dim,
        )
    camera_error = _camera_mismatch(req.cameras, caps.cameras)
    if camera_error:
        return reject(ErrorCode.CAMERA_MISMATCH, camera_error)
    if caps.pin_task and req.task and req.task != caps.default_task:
        return reject(
            ErrorCode.TASK_PINNED,
            f"task {req.task!r} refused: this server is pinned to {caps.default_task!r}; "
            "send that task or none",
            pinned=caps.default_task,
        )
    warnings = []
    if req.fps > 0 and caps.trained_fps > 0:
        off = abs(req.fps - caps.trained_fps) / caps.trained_fps
        if off > FPS_TOLERANCE:
            message = (
                f"fps {req.fps:g} differs from the policy's trained rate {caps.trained_fps:g}; "
                "chunks will play back at a different speed than trained"
            )
            if rules.strict_fps:
                return reject(ErrorCode.FPS_MISMATCH, message, trained_fps=caps.trained_fps)
            warnings.append(message)
    rtc_enabled = req.rtc and rules.rtc_available
    if req.rtc and not rules.rtc_available:
        warnings.append(
            "RTC requested but not available here; chunks will be appended, not blended"
        )
    extra = sorted({c.name for c in req.cameras} - {c.name for c in caps.cameras})
    if extra:
        warnings.append(
            f"cameras {extra} are not used by this policy, and an observation that carries them "
            f"is refused: send only {[c.name for c in caps.cameras]}"
        )
    return OpenTerms(client, schema, rtc_enabled, warnings)


def _open_bounds_error(req: SessionOpen) -> str:
    """Free-form fields of a session open are kept with the session, so they are bounded."""
    limits = DEFAULT_LIMITS
    if len(req.task.encode()) > limits.max_text_bytes:
        return f"task is longer than {limits.max_text_bytes} bytes; shorten it"
    if len(req.tags) > limits.max_tags:
        return f"{len(req.tags)} tags exceed the cap of {limits.max_tags}"
    for key, value in req.tags.items():
        if max(len(key.encode()), len(value.encode())) > limits.max_tag_bytes:
            return f"tag {key[:32]!r} is longer than {limits.max_tag_bytes} bytes"
    return ""


def _action_mismatch(got: list[str], expected: list[str]) -> str:
    if got == expected:
        return ""
    if sorted(got) == sorted(expected):
        index = next(i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b)
        return (
            f"action_names have the right names in the wrong order: position {index} is "
            f"{got[index]!r}, the policy's is {expected[index]!r}; reorder to {expected}"
        )
    missing = [n for n in expected if n not in got]
    unknown = [n for n in got if n not in expected]
    return (
        f"action_names do not match the policy's: missing {missing}, unknown {unknown}; "
        f"the policy drives {expected} in that order"
    )


def _camera_mismatch(got: list[CameraSpec], required: list[CameraSpec]) -> str:
    offered = {c.name: c for c in got}
    for camera in required:
        have = offered.get(camera.name)
        if have is None:
            return (
                f"camera {camera.name!r} ({camera.height}x{camera.width}) is required but not "
                f"offered; the policy needs {[c.name for c in required]}"
            )
        if not _sizes_agree(have, camera):
            return (
                f"camera {camera.name!r} is {have.height}x{have.width} but the policy expects "
                f"{camera.height}x{camera.width}; resize on the robot"
            )
    return ""


def _sizes_agree(a: CameraSpec, b: CameraSpec) -> bool:
    """A zero height or width means 'any' on either side."""
    return all(0 in (x, y) or x == y for x, y in ((a.height, b.height), (a.width, b.width)))


def check_observation(obs: Observation, caps: Capabilities) -> None:
    """The per-request half of the contract; raises `WireError` naming the field to fix.
    Bounds the delay and the prefixes to the chunk in place (see the module doc)."""
    state = np.asarray(obs.state)
    if state.ndim != 1 or state.shape[0] != caps.state_dim:
        raise WireError(
            f"observation.state has shape {state.shape}; the policy needs ({caps.state_dim},)",
            ErrorCode.STATE_MISMATCH,
        )
    _check_finite(state, "state")
    prefix = obs.prefix_model
    if prefix is not None and (prefix.ndim != 2 or prefix.shape[1] != len(caps.action_names)):
        raise WireError(
            f"observation.prefix_model has shape {prefix.shape}; it must be "
            f"[steps, {len(caps.action_names)}] in the policy's action order",
            ErrorCode.BAD_TENSOR,
        )
    for name, tail in (("prefix_model", prefix), ("prefix_robot", obs.prefix_robot)):
        if tail is not None:
            _check_finite(np.asarray(tail), name)
    _bound_to_chunk(obs, caps.chunk_size)
    if len(obs.task.encode("utf-8", "surrogatepass")) > DEFAULT_LIMITS.max_text_bytes:
        raise WireError(
            f"observation.task is longer than {DEFAULT_LIMITS.max_text_bytes} bytes",
            ErrorCode.BAD_MESSAGE,
        )
    known = {camera.name for camera in caps.cameras}
    unknown = [name for name in obs.images if name not in known]
    if unknown:
        raise WireError(
            f"observation.images has cameras {sorted(unknown)[:8]} that the policy does not "
            f"read; send only {sorted(known)}",
            ErrorCode.CAMERA_MISMATCH,
        )
    for camera in caps.cameras:
        image = obs.images.get(camera.name)
        if image is None:
            raise WireError(
                f"observation.images is missing camera {camera.name!r}", ErrorCode.CAMERA_MISMATCH
            )
        height, width = image.shape[:2]
        target = camera.input_size
        if target is not None and (height, width) == target:
            continue
        if not _sizes_agree(CameraSpec(camera.name, height, width), camera):
            raise WireError(
                f"observation.images.{camera.name} is {height}x{width}; the policy expects "
                f"{camera.height}x{camera.width}",
                ErrorCode.CAMERA_MISMATCH,
            )
        if target is not None:
            obs.images[camera.name] = resize_image(image, *target, f"images.{camera.name}")


def _check_finite(values: np.ndarray, name: str) -> None:
    if values.dtype.kind in "fc" and not np.isfinite(values).all():
        raise WireError(
            f"observation.{name} holds NaN or infinite values; send finite numbers",
            ErrorCode.BAD_MESSAGE,
        )


def _bound_to_chunk(obs: Observation, chunk_size: int) -> None:
    """At most a chunk of delay, and of unexecuted prefix (its first rows: those executed next)."""
    obs.inference_delay_steps = min(max(obs.inference_delay_steps, 0), chunk_size)
    if obs.prefix_model is not None and obs.prefix_model.shape[0] > chunk_size:
        obs.prefix_model = obs.prefix_model[:chunk_size]
    robot = obs.prefix_robot
    if robot is not None and np.ndim(robot) >= 1 and len(robot) > chunk_size:
        obs.prefix_robot = robot[:chunk_size]
