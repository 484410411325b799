"""Whether this server takes one more robot right now: capacity, draining and load, in one place.

Every surface asks the same object — the Zenoh surface through `ServerCore.open_session`, the
OpenPI surface before it accepts a WebSocket upgrade — so a robot is refused for the same reason
with the same figures whichever protocol it speaks, and a refusal always carries what a robot
needs to try another replica (the load it saw here).
"""

from __future__ import annotations

import threading

from policylink.server.metrics import LoadMeter
from policylink.server.session_registry import SessionRegistry
from policylink.server.validation import reject
from policylink.wire.errors import ErrorCode
from policylink.wire.messages import ErrorReply


class Admission:
    def __init__(self, registry: SessionRegistry, max_sessions: int, load: LoadMeter) -> None:
        self.registry = registry
        self.max_sessions = max_sessions
        self.load = load
        # Set once, never cleared: a draining server never admits again.
        self._draining = threading.Event()

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    def begin_drain(self) -> None:
        self._draining.set()

    def refusal(self, client: str | None = None) -> ErrorReply | None:
        """Why a session for `client` (None: a new, anonymous one) cannot open now, or None.

        A client that already holds a session reopens in its own slot. The answer is advisory
        unless the caller holds the lock its registry insertion happens under (the core does).
        """
        if self.draining:
            return reject(ErrorCode.DRAINING, "server is draining; connect to another replica")
        others = (
            self.registry.count()
            if client is None
            else self.registry.count_excluding_client(client)
        )
        if others < self.max_sessions:
            return None
        return reject(
            ErrorCode.CAPACITY,
            f"server is full: {others} of {self.max_sessions} sessions in use; try another replica",
            active_sessions=others,
            max_sessions=self.max_sessions,
            load=others / self.max_sessions,
            worker_load=self.load.current(),
        )
