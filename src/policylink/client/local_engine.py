"""`LocalEngine`: a `Policy` run in this process, behind the same queue as `RemoteEngine`.

For robots with their own accelerator, and as the parity reference: the request it builds, the
per-request path it runs (episode boundary → preprocess → chunk call → postprocess) and the
merge are the ones the server and `RemoteEngine` use, so for the same observations and the
same playback the two engines leave byte-identical queues. The policy runs on one background
thread; a policy exception fails that request only.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from policylink.client.buffered_engine import (
    IDLE_WAIT_S,
    BufferedEngine,
    Outcome,
    ShutdownCallback,
)
from policylink.client.config import ClientConfig
from policylink.client.engine import EngineState
from policylink.client.robot import RobotLayout
from policylink.policy.base import ChunkBatch, Policy, PolicySpec
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
        problem = layout_problem(policy.spec, layout)
        if problem:
            raise ValueError(problem)
        self._policy = policy
        self._processor = policy.make_processor()
        self._rtc = config.rtc and policy.spec.supports_rtc
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        # Inference-thread state: the episode the processor currently holds state for.
        self._episode: int | None = None

    def __enter__(self) -> LocalEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self.state is not EngineState.IDLE:
            raise RuntimeError(f"start() called on an engine in state {self.state.value}")
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
        self._thread = threading.Thread(
            target=self._run, name=f"policylink-local-{self.config.client_id}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop_event.set()
        self._wakeup.set()
        thread, self._thread = self._thread, None
        # The shutdown callback runs on the worker and may call stop(): it cannot join itself.
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._set_state(EngineState.STOPPED, "stopped by the caller")

    def _run(self) -> None:
        while not self._stop_event.is_set() and not self.failed:
            self._wait_for_work(IDLE_WAIT_S)
            try:
                self._step()
            except Exception as exc:
                # A bug here must not silently end the thread: the robot would hold forever
                # with no state change. Count it as trouble and keep going.
                logger.exception("%s: inference step failed", self.config.client_id)
                self._abandon_pending(f"engine error {type(exc).__name__}: {exc}")

    def _step(self) -> None:
        request = self._take_request(time.monotonic_ns())
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


def layout_problem(spec: PolicySpec, layout: RobotLayout) -> str:
    """Why this policy cannot drive this robot, or '' if it can."""
    if spec.action_names != layout.action_names:
        return (
            f"the policy drives {list(spec.action_names)} but this robot's actions are "
            f"{list(layout.action_names)}; chunk columns would reach the wrong motors"
        )
    if spec.state_dim != layout.state_dim:
        return (
            f"the policy takes a state of {spec.state_dim} values but this robot reports "
            f"{layout.state_dim}"
        )
    offered = {camera.name for camera in layout.cameras}
    missing = [camera.name for camera in spec.cameras if camera.name not in offered]
    if missing:
        return f"the policy needs cameras {missing} that this robot does not have"
    return ""
