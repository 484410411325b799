"""Session-open checks and per-observation checks: the sync-safety contract, enforced.

Chunk columns map to motors by position, so a robot whose ordered action names differ from the
policy's by a single swap would drive the wrong joints; such a session never opens. Cameras,
state dimension and schema are hard checks too. Capacity is checked last, so a robot that could
never be served here is told what is wrong with it rather than to try another replica. Soft
mismatches (control rate, RTC) open the session with warnings in the ack.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from policylink.wire.errors import ErrorCode, SchemaError, WireError
from policylink.wire.keys import client_segment
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
            f"cameras {extra} are not used by this policy; stop sending them to save bandwidth"
        )
    return OpenTerms(client, schema, rtc_enabled, warnings)


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
    """The per-request half of the contract; raises `WireError` naming the field to fix."""
    state = np.asarray(obs.state)
    if state.ndim != 1 or state.shape[0] != caps.state_dim:
        raise WireError(
            f"observation.state has shape {state.shape}; the policy needs ({caps.state_dim},)",
            ErrorCode.STATE_MISMATCH,
        )
    prefix = obs.prefix_model
    if prefix is not None and (prefix.ndim != 2 or prefix.shape[1] != len(caps.action_names)):
        raise WireError(
            f"observation.prefix_model has shape {prefix.shape}; it must be "
            f"[steps, {len(caps.action_names)}] in the policy's action order",
            ErrorCode.BAD_TENSOR,
        )
    for camera in caps.cameras:
        image = obs.images.get(camera.name)
        if image is None:
            raise WireError(
                f"observation.images is missing camera {camera.name!r}", ErrorCode.CAMERA_MISMATCH
            )
        height, width = image.shape[:2]
        if not _sizes_agree(CameraSpec(camera.name, height, width), camera):
            raise WireError(
                f"observation.images.{camera.name} is {height}x{width}; the policy expects "
                f"{camera.height}x{camera.width}",
                ErrorCode.CAMERA_MISMATCH,
            )
