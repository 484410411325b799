"""A WAN on one machine: a `ClientLink` wrapper that delays, jitters and drops messages.

It wraps the robot's real transport, so what it shows is the real system under a bad link:
observations wait on a delay line before they reach the network, replies wait on it before
they reach the engine, and either may be lost. Half the added round trip is spent each way;
jitter adds a uniform ±`jitter_ms` to each one-way delay. Control queries (handshake, reset)
pay the round trip too, but are never dropped: the engine's reconnect path is not what a
demo of latency is about.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from policylink.client.link import ClientLink, ReplyHandler
from policylink.wire.header import Header
from policylink.wire.messages import (
    ActionChunk,
    ErrorReply,
    Observation,
    Reset,
    ResetAck,
    SessionAck,
    SessionOpen,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NetworkImpairment:
    rtt_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0

    def __post_init__(self) -> None:
        if self.rtt_ms < 0 or self.jitter_ms < 0:
            raise ValueError(
                f"rtt_ms and jitter_ms must be >= 0, got {self.rtt_ms} and {self.jitter_ms}"
            )
        if not 0.0 <= self.loss < 1.0:
            raise ValueError(f"loss is a probability in [0, 1), got {self.loss}")

    @property
    def active(self) -> bool:
        return bool(self.rtt_ms or self.jitter_ms or self.loss)

    def describe(self) -> str:
        if not self.active:
            return "no added impairment"
        return f"+{self.rtt_ms:g} ms RTT, ±{self.jitter_ms:g} ms jitter, {self.loss:.0%} loss"


class DelayLine:
    """Runs callables at their due time on one thread, in due-time order.

    Owned by one `ImpairedLink`; `stop()` ends the thread and drops what is still queued
    (messages in flight on a link that was closed).
    """

    def __init__(self, name: str) -> None:
        self._ready = threading.Condition()
        # Guarded by _ready: the heap of (due, tiebreak, action) and the stop flag.
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def schedule(self, delay_s: float, action: Callable[[], None]) -> None:
        with self._ready:
            if self._stopped:
                return
            heapq.heappush(self._heap, (time.monotonic() + delay_s, next(self._order), action))
            self._ready.notify()

    def stop(self) -> None:
        with self._ready:
            self._stopped = True
            self._heap.clear()
            self._ready.notify()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._ready.wait(timeout)
                if self._stopped:
                    return
                _, _, action = heapq.heappop(self._heap)
            try:
                action()
            except Exception:
                # A message that fails on delivery is lost, as on a real link; the line lives on.
                logger.exception("delayed delivery failed")


class ImpairedLink:
    """Wraps `inner`; the engine cannot tell it from a transport on a slow, lossy link."""

    def __init__(self, inner: ClientLink, impairment: NetworkImpairment, seed: int = 0) -> None:
        self.inner = inner
        self.impairment = impairment
        self._lock = threading.Lock()
        # Guarded by _lock: the random source and the drop counter, used from the engine's
        # thread (observations) and the inner transport's thread (replies).
        self._random = random.Random(seed)
        self._dropped = 0
        self._line: DelayLine | None = None
        self._on_reply: ReplyHandler | None = None

    @property
    def dropped(self) -> int:
        with self._lock:
            return self._dropped

    @property
    def uplink(self) -> object:
        """The inner transport's byte counter and JPEG quality (`client.uplink`), if it has one."""
        return getattr(self.inner, "uplink", None)

    def _one_way_s(self) -> float:
        with self._lock:
            jitter = self._random.uniform(-1.0, 1.0) * self.impairment.jitter_ms
        return max(0.0, self.impairment.rtt_ms / 2 + jitter) / 1e3

    def _lost(self) -> bool:
        if not self.impairment.loss:
            return False
        with self._lock:
            lost = self._random.random() < self.impairment.loss
            self._dropped += lost
        return lost

    def connect(self, on_reply: ReplyHandler) -> None:
        self._on_reply = on_reply
        if self._line is None:
            self._line = DelayLine("policylink-impairment")
        self.inner.connect(self._reply_arrived)

    def _reply_arrived(self, header: Header, msg: ActionChunk | ErrorReply) -> None:
        line, on_reply = self._line, self._on_reply
        if line is None or on_reply is None or self._lost():
            return
        line.schedule(self._one_way_s(), lambda: on_reply(header, msg))

    def handshake(self, request: SessionOpen, timeout_s: float) -> SessionAck | ErrorReply:
        time.sleep(self.impairment.rtt_ms / 1e3)
        return self.inner.handshake(request, timeout_s)

    def send(self, header: Header, obs: Observation) -> None:
        if self._line is None or self._lost():
            return
        inner = self.inner
        self._line.schedule(self._one_way_s(), lambda: inner.send(header, obs))

    def reset(self, request: Reset, timeout_s: float) -> ResetAck | ErrorReply | None:
        time.sleep(self.impairment.rtt_ms / 1e3)
        return self.inner.reset(request, timeout_s)

    def server_alive(self) -> bool:
        return self.inner.server_alive()

    def close(self) -> None:
        line, self._line = self._line, None
        if line is not None:
            line.stop()
        self.inner.close()
