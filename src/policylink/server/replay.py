"""Offline replay of a server capture through another checkpoint or configuration.

The regression check before a new checkpoint reaches a robot: every captured request goes
through the same `RequestStep` the server runs, per session in capture order, with the
session's own processor, its episode boundaries (explicit resets, `episode_start`, a new
episode id) and its RTC flag — so a policy that holds per-session state sees exactly the
sequence it saw live. No network, no threads: the policy is built from the manifest and called
directly. Rows run one at a time; a capture made at larger batch sizes compares its forward
times against batch-1 forwards here, which the report says.

What is compared is the robot-space chunk (what a robot would have executed), over the steps
both chunks have, per action dimension and per request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from policylink.policy.registry import build_policy
from policylink.policy.request_step import RequestStep, SessionProcessor, StepRequest
from policylink.server.capture import CapturedRequest, capture_files, read_captured
from policylink.server.core import build_capabilities
from policylink.server.inference_worker import warm_up
from policylink.server.manifest import Manifest
from policylink.server.serving_modes import EXCLUSIVE, decide_serving_mode
from policylink.server.validation import check_observation
from policylink.wire.codec import decode_observation
from policylink.wire.errors import WireError
from policylink.wire.limits import DecodeLimits
from policylink.wire.messages import ActionChunk, Capabilities, ErrorReply

Progress = Callable[[int, int], None]


class ReplayError(ValueError):
    """The capture and the replay policy cannot be compared; the message says why."""


@dataclass
class RequestDiff:
    """One replayed request. `outcome`: `compared`, `captured_error` (the server answered an
    error; nothing to compare), `replay_error` (the replay policy failed where the capture had
    a chunk: a regression), `undecodable`."""

    file: str
    protocol: str
    session_id: str
    client: str
    seq_id: int
    episode_id: int
    outcome: str
    steps_compared: int = 0
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    captured_forward_ms: float | None = None
    replayed_forward_ms: float | None = None
    message: str = ""


@dataclass
class DimensionDiff:
    name: str
    max_abs_diff: float
    mean_abs_diff: float


@dataclass
class ForwardTimes:
    captured_p50_ms: float | None
    captured_p95_ms: float | None
    replayed_p50_ms: float | None
    replayed_p95_ms: float | None
    captured_batch_sizes: list[int]

    @property
    def p50_ratio(self) -> float | None:
        if not self.captured_p50_ms or self.replayed_p50_ms is None:
            return None
        return self.replayed_p50_ms / self.captured_p50_ms


@dataclass
class ReplayReport:
    capture_dir: str
    policy: dict[str, Any]
    requests: int
    outcomes: dict[str, int]
    chunk_steps: dict[str, int]
    dimensions: list[DimensionDiff]
    forward: ForwardTimes
    per_request: list[RequestDiff] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> float:
        return max((d.max_abs_diff for d in self.dimensions), default=0.0)

    @property
    def regressions(self) -> int:
        """Requests the capture answered with a chunk and the replay could not."""
        return self.outcomes.get("replay_error", 0)

    def exceeds(self, max_diff: float) -> bool:
        return self.regressions > 0 or self.max_abs_diff > max_diff

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["max_abs_diff"] = self.max_abs_diff
        data["forward"]["p50_ratio"] = self.forward.p50_ratio
        return data


def replay_capture(
    capture_dir: str | Path, manifest: Manifest, progress: Progress | None = None
) -> ReplayReport:
    """Replay every request of `capture_dir` through the policy `manifest` builds."""
    files = capture_files(capture_dir)
    if manifest.torch_threads is not None:
        import torch

        torch.set_num_threads(manifest.torch_threads)
    policy = build_policy(manifest.policy.to_config(), manifest.device, manifest.dtype)
    decision = decide_serving_mode(policy.spec, manifest.serving_mode, manifest.max_sessions)
    caps = build_capabilities(policy, manifest, decision)
    spec = policy.spec
    if manifest.warmup_inferences:
        warm_up(policy, manifest.warmup_inferences)
    replayer = _Replayer(
        RequestStep(policy, reset_policy_on_episode=decision.mode == EXCLUSIVE),
        caps,
        DecodeLimits.for_policy(spec.cameras, spec.state_dim, spec.action_dim, spec.chunk_size),
        policy.make_processor,
    )
    for index, path in enumerate(files):
        replayer.replay(read_captured(path))
        if progress is not None:
            progress(index + 1, len(files))
    return replayer.report(str(capture_dir), manifest)


class _Replayer:
    """Runs captured requests in order and keeps the sums the report is made of."""

    def __init__(
        self,
        step: RequestStep,
        caps: Capabilities,
        limits: DecodeLimits,
        make_processor: Callable[[], Any],
    ) -> None:
        self.step = step
        self.caps = caps
        self.limits = limits
        self.make_processor = make_processor
        self.sessions: dict[str, SessionProcessor] = {}
        self.diffs: list[RequestDiff] = []
        action_dim = len(caps.action_names)
        self.max = np.zeros(action_dim)
        self.total = np.zeros(action_dim)
        self.steps = 0
        self.chunk_steps = {"captured": 0, "replayed": caps.chunk_size}
        self.batch_sizes: set[int] = set()

    def replay(self, captured: CapturedRequest) -> None:
        header = captured.header
        diff = RequestDiff(
            file=captured.path.name,
            protocol=captured.protocol,
            session_id=captured.session_id,
            client=captured.client,
            seq_id=header.seq_id,
            episode_id=header.episode_id,
            outcome="compared",
        )
        self.diffs.append(diff)
        reply = captured.reply
        if isinstance(reply, ErrorReply):
            diff.outcome, diff.message = "captured_error", f"{reply.code.value}: {reply.message}"
            return
        self._check_actions(captured, reply)
        diff.captured_forward_ms = reply.inference_ms
        self.batch_sizes.add(captured.batch_size)
        self.chunk_steps["captured"] = reply.chunk_robot.shape[0]
        replayed = self._run(captured)
        if isinstance(replayed, str):
            diff.outcome, diff.message = "undecodable", replayed
            return
        if isinstance(replayed, ErrorReply):
            diff.outcome = "replay_error"
            diff.message = f"{replayed.code.value}: {replayed.message}"
            return
        diff.replayed_forward_ms = replayed.inference_ms
        steps = min(reply.chunk_robot.shape[0], replayed.chunk_robot.shape[0])
        delta = np.abs(
            replayed.chunk_robot[:steps].astype(np.float64)
            - reply.chunk_robot[:steps].astype(np.float64)
        )
        diff.steps_compared = steps
        diff.max_abs_diff = float(delta.max()) if steps else 0.0
        diff.mean_abs_diff = float(delta.mean()) if steps else 0.0
        if steps:
            self.max = np.maximum(self.max, delta.max(axis=0))
            self.total += delta.sum(axis=0)
            self.steps += steps

    def _run(self, captured: CapturedRequest) -> ActionChunk | ErrorReply | str:
        """The replay policy's answer, or why the captured request cannot be decoded."""
        if captured.request is None:
            return "the capture holds no request body (it never decoded on the server)"
        try:
            obs = decode_observation(captured.request, self.limits)
            check_observation(obs, self.caps)
        except WireError as exc:
            return f"{exc.code.value}: {exc}"
        if not obs.task:
            obs.task = self.caps.default_task
        session = self.sessions.get(captured.session_id)
        if session is None:
            session = self.sessions[captured.session_id] = SessionProcessor(self.make_processor())
        request = StepRequest(
            obs,
            session,
            captured.header.episode_id,
            new_episode=captured.reset,
            rtc=captured.rtc and self.caps.supports_rtc,
        )
        [reply] = self.step.run([request])
        return reply

    def _check_actions(self, captured: CapturedRequest, reply: ActionChunk) -> None:
        width = reply.chunk_robot.shape[1] if reply.chunk_robot.ndim == 2 else -1
        names = self.caps.action_names
        if width != len(names):
            raise ReplayError(
                f"{captured.path}: the captured chunk has {width} action columns but the replay "
                f"policy acts on {len(names)} ({', '.join(names)}); replay against a policy for "
                "the same robot"
            )

    def report(self, capture_dir: str, manifest: Manifest) -> ReplayReport:
        outcomes: dict[str, int] = {}
        for diff in self.diffs:
            outcomes[diff.outcome] = outcomes.get(diff.outcome, 0) + 1
        mean = self.total / self.steps if self.steps else self.total
        captured_ms = [
            d.captured_forward_ms for d in self.diffs if d.replayed_forward_ms is not None
        ]
        replayed_ms = [
            d.replayed_forward_ms for d in self.diffs if d.replayed_forward_ms is not None
        ]
        block = manifest.policy
        return ReplayReport(
            capture_dir=capture_dir,
            policy={
                "kind": block.kind,
                "preset": block.preset,
                "path": block.path,
                "seed": block.seed,
                "model_id": manifest.model_id,
                "revision": manifest.revision,
                "rtc": self.caps.supports_rtc,
            },
            requests=len(self.diffs),
            outcomes=outcomes,
            chunk_steps=dict(self.chunk_steps),
            dimensions=[
                DimensionDiff(name, float(high), float(average))
                for name, high, average in zip(self.caps.action_names, self.max, mean, strict=True)
            ],
            forward=ForwardTimes(
                captured_p50_ms=_percentile(captured_ms, 50),
                captured_p95_ms=_percentile(captured_ms, 95),
                replayed_p50_ms=_percentile(replayed_ms, 50),
                replayed_p95_ms=_percentile(replayed_ms, 95),
                captured_batch_sizes=sorted(self.batch_sizes),
            ),
            per_request=self.diffs,
        )


def _percentile(values: list[Any], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None
