"""`LocalEngine`: a `Policy` run in this process, behind the same queue as `RemoteEngine`.

For robots with their own accelerator, and as the parity reference: the request it builds, the
per-request path it runs (episode boundary → preprocess → chunk call → postprocess) and the
merge are the ones the server and `RemoteEngine` use, so for the same observations and the
same playback the two engines leave byte-identical queues. The policy runs on one background
thread; a policy exception fails that request only.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from policylink.client.buffered_engine import BufferedEngine, Outcome, ShutdownCallback
from policylink.client.config import ClientConfig
from policylink.client.engine import EngineState
from policylink.client.engine_worker import Worker
from policylink.client.robot import RobotLayout
from policylink.policy.base import ChunkBatch, Policy
from policylink.wire.errors import ErrorCode
from policylink.wire.messages import ActionChunk, ErrorReply, Observation
from policylink.wire.schema import SCHEMA_VERSION

logger = logging.getLogger(__name__)


class LocalEngine(BufferedEngine):
    def __init__(
        self,
        policy: Policy,
        config: ClientConfig,
        layout: RobotLayout,
        *,
        on_shutdown: ShutdownCallback | None = None,
    ) -> None:
        super().__init__(config, layout, on_shutdown)
        spec = policy.spec
        problem = layout.mismatch("the policy", spec.action_names, spec.state_dim, spec.cameras)
        if problem:
            raise ValueError(problem)
        self._policy = policy
        self._processor = policy.make_processor()
        self._rtc = config.rtc and spec.supports_rtc
        self._worker = Worker(
            f"policylink-local-{config.client_id}",
            self._wakeup,
            self._step,
            on_error=self._abandon_pending,
            finished=lambda: self.failed,
            switch_interval_s=config.switch_interval_s,
        )
        # Inference-thread state: the episode the processor currently holds state for.
        self._episode: int | None = None

    def start(self) -> None:
        self._require_idle()
        self._configure_session(
            replace=self._rtc,
            horizon=self.config.rtc_horizon or None,
            session_id="local",
            epoch=0,
            schema=SCHEMA_VERSION,
        )
        self._restart_offline_clock()
        mode = "RTC replace" if self._rtc else "append"
        self._set_state(EngineState.STREAMING, f"local policy {self._policy.spec.family}, {mode}")
        self._worker.start()

    def stop(self) -> None:
        # No time limit: the worker may be inside a slow forward, which cannot be cut short.
        self._worker.stop()
        self._set_state(EngineState.STOPPED, "stopped by the caller")

    def _step(self, now_ns: int) -> None:
        request = self._take_request(now_ns)
        if request is not None:
            reply = self._infer(request.header.episode_id, request.observation)
            if self._accept(request.header, reply, time.monotonic_ns()) is Outcome.ERROR:
                logger.warning("%s: %s", self.config.client_id, reply.message)
        now_ns = time.monotonic_ns()
        self._set_state(*self._playback_state(now_ns))
        self._die_if_offline(now_ns)

    def _infer(self, episode_id: int, obs: Observation) -> ActionChunk | ErrorReply:
        """The server's per-request path, in process."""
        try:
            if obs.episode_start or self._episode != episode_id:
                self._processor.reset()
                self._policy.reset()
                self._episode = episode_id
            sample = self._processor.preprocess(obs)
            prefix = obs.prefix_model if self._rtc else None
            batch = ChunkBatch([sample], [obs.inference_delay_steps], [prefix])
            start_ns = time.monotonic_ns()
            chunks = np.asarray(self._policy.predict_chunk(batch), dtype=np.float32)
            inference_ms = (time.monotonic_ns() - start_ns) / 1e6
            chunk_robot = np.asarray(self._processor.postprocess(chunks[0]), dtype=np.float32)
            return ActionChunk(
                chunk_model=chunks[0], chunk_robot=chunk_robot, inference_ms=inference_ms
            )
        except Exception as exc:  # the policy is user code: fail this request, not the engine
            logger.exception("%s: local policy failed", self.config.client_id)
            return ErrorReply(
                ErrorCode.POLICY_ERROR,
                f"policy failed on this request: {type(exc).__name__}: {exc}",
            )
