"""Which ready sessions the worker serves next: the seam a batching scheduler plugs into.

`select` receives the sessions holding an unserved request (in open order) and returns those to
serve in the next forward. Round-robin returns one; a micro-batching scheduler would return
several and the worker would run them as one `[N, ...]` chunk call.
"""

from __future__ import annotations

from typing import Protocol

from policylink.server.session import Session


class Scheduler(Protocol):
    def select(self, ready: list[Session]) -> list[Session]: ...


class RoundRobinScheduler:
    """Serve the first ready session after the one served last, wrapping around.

    Every ready session is therefore served once per round however fast its robot publishes:
    a 100 Hz client cannot starve a 10 Hz one, because its newer observations only replace its
    own mailbox and never move it ahead of anyone in the rotation.
    """

    def __init__(self) -> None:
        self._last_order = -1

    def select(self, ready: list[Session]) -> list[Session]:
        if not ready:
            return []
        chosen = next((s for s in ready if s.order > self._last_order), ready[0])
        self._last_order = chosen.order
        return [chosen]
