"""`LocalEngine`: a `Policy` run in this process, behind the same queue as `RemoteEngine`.

For robots with their own accelerator, and as the parity reference: the request it builds, the
request step it runs (`policylink.policy.request_step`, the server worker's own) and the
merge are the ones the server and `RemoteEngine` use, so for the same observations and the
same playback the two engines leave byte-identical queues. A camera the policy reads at a
lower resolution is shrunk here before the forward, with the resize the robot's uplink and the
server use, so the policy sees the same pixels on both paths. The policy runs on one background
thread; a policy exception fails that request only.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from policylink.client.config import ClientConfig
from policylink.client.engine import EngineState
from policylink.client.engine_parts import EngineParts
from policylink.client.engine_worker import Worker
from policylink.client.request_ledger import Outcome
from policylink.client.robot import RobotLayout
from policylink.client.safety_ladder import ShutdownCallback
from policylink.policy.base import Policy
from policylink.policy.request_step import RequestStep, SessionProcessor, StepRequest
from policylink.wire.errors import ImageError
from policylink.wire.image import resize_image
from policylink.wire.messages import ActionChunk, ErrorReply, Observation
from policylink.wire.schema import SCHEMA_VERSION

logger = logging.getLogger(__name__)


class LocalEngine(EngineParts):
    def __init__(
        self,
        policy: Policy,
        config: ClientConfig,
        layout: RobotLayout,
        *,
        on_shutdown: ShutdownCallback | None = None,
    ) -> None:
        spec = policy.spec
        problem = layout.mismatch("the policy", spec.action_names, spec.state_dim, spec.cameras)
        if problem:
            raise ValueError(problem)
        super().__init__(config, layout, on_shutdown)
        self._policy = policy
        # A local policy serves this robot alone, so its own state goes at episode boundaries too.
        self._request_step = RequestStep(policy, reset_policy_on_episode=True)
        self._processor = SessionProcessor(policy.make_processor())
        self._rtc = config.rtc and spec.supports_rtc
        self._input_sizes = {c.name: size for c in spec.cameras if (size := c.input_size)}
        self._worker = Worker(
            f"policylink-local-{config.client_id}",
            self._face.wakeup,
            self._step,
            on_error=self._ladder.abandon,
            finished=lambda: self._ladder.failed,
            switch_interval_s=config.switch_interval_s,
        )

    def start(self) -> None:
        self._ladder.require_idle()
        self._ledger.open_session(
            replace=self._rtc,
            horizon=self.config.rtc_horizon or None,
            session_id="local",
            epoch=0,
            schema=SCHEMA_VERSION,
        )
        self._ladder.restart_offline_clock()
        mode = "RTC replace" if self._rtc else "append"
        self._ladder.set_state(
            EngineState.STREAMING, f"local policy {self._policy.spec.family}, {mode}"
        )
        self._worker.start()

    def stop(self) -> None:
        # No time limit: the worker may be inside a slow forward, which cannot be cut short.
        self._worker.stop()
        self._ladder.set_state(EngineState.STOPPED, "stopped by the caller")

    def server_identity(self) -> dict[str, str]:
        """The policy runs here: its family stands for the model, the replica is this process."""
        return {"model_id": self._policy.spec.family, "replica": "local", "session_id": "local"}

    def _announce_episode(self, episode_id: int) -> None:
        """Nothing to send: the episode's first request carries `episode_start`, on which the
        request step resets the processor's and the policy's per-episode state."""

    def _step(self, now_ns: int) -> None:
        request = self._ledger.take_request(now_ns) if self._ladder.requesting else None
        if request is not None:
            reply = self._infer(request.header.episode_id, request.observation)
            received_ns = time.monotonic_ns()
            verdict = self._ledger.accept(request.header, reply, received_ns)
            self._ladder.reply_taken(verdict, received_ns)
            if verdict.outcome is Outcome.ERROR:
                logger.warning("%s: %s", self.config.client_id, verdict.problem)
        now_ns = time.monotonic_ns()
        self._ladder.update(now_ns)
        self._ladder.die_if_offline(now_ns)

    def _infer(self, episode_id: int, obs: Observation) -> ActionChunk | ErrorReply:
        """The server's request step, in process."""
        if self._input_sizes:
            try:
                images = {name: self._at_input_size(name, im) for name, im in obs.images.items()}
            except ImageError as exc:
                return ErrorReply(exc.code, exc.message)  # what the server would answer
            obs = dataclasses.replace(obs, images=images)
        [reply] = self._request_step.run(
            [StepRequest(obs, self._processor, episode_id, rtc=self._rtc)]
        )
        return reply

    def _at_input_size(self, name: str, image: np.ndarray) -> np.ndarray:
        target = self._input_sizes.get(name)
        if target is None or np.shape(image)[:2] == target:
            return image
        return resize_image(image, *target, f"images.{name}")
