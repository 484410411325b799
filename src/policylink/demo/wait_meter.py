"""How long a control loop waited inside `get_action`: the cost a blocking engine hides.

`run_loop` counts skipped ticks (a tick overran), but a tick may overrun because the CPU was
busy as well as because the engine blocked on a round trip. Timing the engine call itself
separates the two.
"""

from __future__ import annotations

import time

import numpy as np

from policylink.client.action_queue import ActionProvenance
from policylink.client.engine import Engine, EngineState, EngineStats, Transition
from policylink.wire.messages import Observation


class WaitMeter:
    """An `Engine` that forwards every call to `engine` and times `get_action`.

    Used from the control thread only, like the calls it measures.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.last_call_s = 0.0

    @property
    def state(self) -> EngineState:
        return self.engine.state

    @property
    def ready(self) -> bool:
        return self.engine.ready

    @property
    def failed(self) -> bool:
        return self.engine.failed

    @property
    def stats(self) -> EngineStats:
        return self.engine.stats

    @property
    def fps(self) -> float:
        return self.engine.fps

    def start(self) -> None:
        self.engine.start()

    def stop(self) -> None:
        self.engine.stop()

    def pause(self) -> None:
        self.engine.pause()

    def resume(self) -> None:
        self.engine.resume()

    def reset(self) -> None:
        self.engine.reset()

    def transitions(self) -> list[Transition]:
        return self.engine.transitions()

    def notify_observation(self, obs: Observation) -> None:
        self.engine.notify_observation(obs)

    def last_provenance(self) -> ActionProvenance | None:
        return self.engine.last_provenance()

    @property
    def queue_depth(self) -> int:
        return self.engine.queue_depth

    def server_identity(self) -> dict[str, str]:
        return self.engine.server_identity()

    def get_action(self) -> np.ndarray | None:
        began = time.perf_counter()
        try:
            return self.engine.get_action()
        finally:
            self.last_call_s = time.perf_counter() - began
