"""The three parts every engine is built from, and the `Engine` members that only forward to them.

An engine is a `ControlFace` (what the control thread calls every tick), a `RequestLedger` (the
request in flight and the merge) and a `SafetyLadder` (states, offline budget, DEAD), plus what
makes its requests: a worker and a `SessionLink` (`RemoteEngine`), the caller and a
`SessionLink` (`SyncEngine`), or a worker running a policy in process (`LocalEngine`). Each
engine composes those in its own module, where its request step reads top to bottom; this
class holds the plumbing they share and no decision of its own.

Locks: the ledger's is taken before the queue's and the latency tracker's, never after them;
the ladder's is never held while another is taken. The control thread's per-tick calls
(`notify_observation`, `get_action`, `failed`, `state`) take none of them.
"""

from __future__ import annotations

import dataclasses
import logging
from abc import ABC, abstractmethod
from typing import TypeVar

import numpy as np

from policylink.client.action_queue import ActionProvenance
from policylink.client.config import ClientConfig
from policylink.client.control_face import ControlFace
from policylink.client.engine import EngineState, EngineStats, Transition
from policylink.client.link import ClientLink
from policylink.client.request_ledger import RequestLedger
from policylink.client.robot import RobotLayout
from policylink.client.safety_ladder import SafetyLadder, ShutdownCallback
from policylink.client.session_link import SessionLink
from policylink.client.uplink import Uplink
from policylink.wire.messages import Observation

logger = logging.getLogger(__name__)

E = TypeVar("E", bound="EngineParts")


class EngineParts(ABC):
    def __init__(
        self,
        config: ClientConfig,
        layout: RobotLayout,
        on_shutdown: ShutdownCallback | None = None,
    ) -> None:
        self.config = config
        self.layout = layout
        self._face = ControlFace(config, layout)
        self._ledger = RequestLedger(config, layout, self._face)
        self._ladder = SafetyLadder(config, self._face, self._ledger, on_shutdown)
        # The network engines' session (None for a local policy), set once at construction.
        self._session_link: SessionLink | None = None
        # The link's byte counter and JPEG quality, when its link encodes through one.
        self._uplink: Uplink | None = None

    def _session_over(self, link: ClientLink) -> SessionLink:
        """The session a network engine keeps over `link`, wired to this engine's parts."""
        self._uplink = getattr(link, "uplink", None)
        self._session_link = session = SessionLink(
            link,
            self.config,
            self.layout,
            face=self._face,
            ledger=self._ledger,
            ladder=self._ladder,
        )
        return session

    def server_identity(self) -> dict[str, str]:
        """Who serves this robot now (model, revision, replica, session); empty before the
        first session opened."""
        session = self._session_link
        return {} if session is None else dict(session.server_identity)

    def __enter__(self: E) -> E:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @abstractmethod
    def start(self) -> None:
        """Begin making requests."""

    @abstractmethod
    def stop(self) -> None:
        """Stop making requests and release what `start()` took; idempotent."""

    @property
    def fps(self) -> float:
        return self.config.fps

    @property
    def state(self) -> EngineState:
        return self._ladder.state

    @property
    def ready(self) -> bool:
        return self._ladder.ready

    @property
    def failed(self) -> bool:
        return self._ladder.failed

    @property
    def stats(self) -> EngineStats:
        stats = self._ledger.stats(self._ladder.state, paused=self._ladder.paused)
        if self._uplink is None:
            return stats
        uplink = self._uplink.stats()
        return dataclasses.replace(
            stats,
            bytes_sent=uplink.bytes_sent,
            last_request_bytes=uplink.last_request_bytes,
            jpeg_quality=uplink.jpeg_quality,
        )

    def transitions(self) -> list[Transition]:
        """Every state change so far (bounded), oldest first, each with its reason."""
        return self._ladder.transitions()

    def queue_contents(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unexecuted rows (model space, robot space) and their source-observation times."""
        return self._face.queue.contents()

    def notify_observation(self, obs: Observation) -> None:
        """Offer the newest observation; it replaces one the worker has not taken yet."""
        self._face.notify_observation(obs)

    def get_action(self) -> np.ndarray | None:
        """The next fresh robot-space action, or the fallback. Never blocks on I/O."""
        return self._face.get_action()

    def last_provenance(self) -> ActionProvenance | None:
        """Which request produced the action the last `get_action()` returned; None for the
        fallback. Control thread only; takes no lock."""
        return self._face.queue.last_provenance()

    @property
    def queue_depth(self) -> int:
        return len(self._face.queue)

    def pause(self) -> None:
        """Stop requesting; the queue stays intact and the offline budget stops running."""
        self._ladder.pause()

    def resume(self) -> None:
        self._ladder.resume()
        self._face.wake()

    def reset(self) -> None:
        """Episode boundary: clear the queue, forget the last observation, bump `episode_id`.

        Done under the lock the merge takes, so a chunk in flight for the old episode can
        never land after this returns: its header names the old episode and it is dropped.
        """
        episode = self._ledger.reset()
        self._face.forget_last_action()
        logger.info("%s: reset, episode %d begins", self.config.client_id, episode)
        self._announce_episode(episode)
        self._face.wake()

    @abstractmethod
    def _announce_episode(self, episode_id: int) -> None:
        """Tell whatever computes the chunks that an episode began (called by `reset()`)."""
