"""Which ready sessions the next forward serves: round-robin, micro-batches, or deadlines.

`select(ready, limit, now_ns)` receives the sessions holding an unserved request and not already
in flight (in open order) and returns at most `limit` of them, all run as one `[N, ...]` chunk
call. `limit` is already 1 where batching is not allowed (an exclusive policy, a policy that
does not batch). `gathers` tells the worker whether it is worth waiting up to `max_wait_ms` for
more requests to fill a batch.

None of them can starve a session: mailboxes are latest-only, so a fast robot's newer
observations only replace its own request and never move it ahead of anyone; round-robin and
batch rotate through every ready session, and deadline caps how long any request may be passed
over (`max_defer_ms`).
"""

from __future__ import annotations

from typing import Literal, Protocol

from policylink.server.session import Session

SchedulerName = Literal["round_robin", "batch", "deadline"]
SCHEDULERS: tuple[SchedulerName, ...] = ("round_robin", "batch", "deadline")


class Scheduler(Protocol):
    gathers: bool

    def select(self, ready: list[Session], limit: int, now_ns: int) -> list[Session]: ...


class RoundRobinScheduler:
    """One session per forward: the first ready one after the one served last, wrapping round.

    Every ready session is therefore served once per round however fast its robot publishes:
    a 100 Hz client cannot starve a 10 Hz one.
    """

    gathers = False

    def __init__(self) -> None:
        self._last_order = -1

    def select(self, ready: list[Session], limit: int, now_ns: int) -> list[Session]:
        if not ready:
            return []
        chosen = next((s for s in ready if s.order > self._last_order), ready[0])
        self._last_order = chosen.order
        return [chosen]


class BatchScheduler:
    """Up to `limit` sessions per forward, taken in rotation from the one after the last served.

    With more ready sessions than fit, the rotation guarantees each is served within
    `ceil(ready / limit)` forwards.
    """

    gathers = True

    def __init__(self) -> None:
        self._last_order = -1

    def select(self, ready: list[Session], limit: int, now_ns: int) -> list[Session]:
        if not ready:
            return []
        start = next((i for i, s in enumerate(ready) if s.order > self._last_order), 0)
        chosen = (ready[start:] + ready[:start])[:limit]
        self._last_order = chosen[-1].order
        return chosen


class DeadlineScheduler:
    """Earliest deadline first, batching what fits.

    A request's deadline is when its robot's buffer runs dry: its arrival plus the playback the
    robot reported it had left (a duration, so no clock crosses machines). A robot about to run
    dry is therefore never stuck behind robots with full buffers. Requests that report nothing
    (OpenPI clients, old robots) and requests that have waited `max_defer_ms` are due at once;
    that cap is what keeps a robot with a long buffer from being passed over indefinitely.
    """

    gathers = True

    def __init__(self, max_defer_ms: float = 200.0) -> None:
        self._max_defer_ns = round(max_defer_ms * 1e6)

    def select(self, ready: list[Session], limit: int, now_ns: int) -> list[Session]:
        return sorted(ready, key=self.deadline_ns)[:limit]

    def deadline_ns(self, session: Session) -> int:
        request = session.pending
        if request is None:
            raise ValueError(f"session {session.session_id} has nothing to schedule")
        cap = request.arrived_ns + self._max_defer_ns
        if request.playback_left_ms is None:
            return request.arrived_ns
        return min(cap, request.arrived_ns + round(request.playback_left_ms * 1e6))


def make_scheduler(name: SchedulerName) -> Scheduler:
    if name == "batch":
        return BatchScheduler()
    if name == "deadline":
        return DeadlineScheduler()
    return RoundRobinScheduler()
