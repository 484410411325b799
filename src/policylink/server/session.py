"""One robot's session: its latest-only mailbox, its own processor, its episode and its counters.

The mailbox holds at most one unserved request. A newer observation replaces an older unserved
one — the robot has moved on, and answering the old one would only spend device time on a
chunk that arrives stale — and the replacement is counted and reported in the next chunk. That
is why overload lengthens the scheduling cycle instead of growing a queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from policylink.policy.request_step import SessionProcessor
from policylink.wire.header import Header
from policylink.wire.messages import ActionChunk, ErrorReply, Observation

Reply = Callable[[Header, ActionChunk | ErrorReply], None]
Decode = Callable[[object], Observation]


@dataclass
class MailboxRequest:
    """An observation exactly as the transport received it; decoding waits for the worker.

    `playback_left_ms` is how much buffered playback the robot had when it sent this (read by
    the surface without decoding the body; None when the robot does not say): the deadline
    scheduler's input.
    """

    header: Header
    payload: object
    decode: Decode
    reply: Reply
    arrived_ns: int = field(default_factory=time.monotonic_ns)
    playback_left_ms: float | None = None


@dataclass
class SessionStats:
    requests: int = 0
    errors: int = 0
    superseded: int = 0
    stale_dropped: int = 0


@dataclass
class Session:
    """Mailbox fields (pending, counters, `needs_reset`, `in_flight`) are guarded by the owning
    `SessionRegistry`'s lock; `pipeline` (the session's processor and the episode it holds
    state for) belongs to the inference worker, the only thread that serves a session.
    """

    session_id: str
    client: str
    epoch: int
    schema_version: int
    pipeline: SessionProcessor
    transport: str
    rtc_enabled: bool
    order: int
    tags: dict[str, str] = field(default_factory=dict)
    instance: str = ""
    opened_ns: int = field(default_factory=time.monotonic_ns)
    last_seen_ns: int = field(default_factory=time.monotonic_ns)
    pending: MailboxRequest | None = None
    unreported_superseded: int = 0
    min_episode_id: int = 0
    needs_reset: bool = False
    in_flight: bool = False
    stats: SessionStats = field(default_factory=SessionStats)

    def deposit(self, request: MailboxRequest) -> bool:
        """Latest-only: returns True when an unserved request was superseded."""
        superseded = self.pending is not None
        if superseded:
            self.unreported_superseded += 1
            self.stats.superseded += 1
        self.pending = request
        self.last_seen_ns = request.arrived_ns
        return superseded

    def take(self) -> Work | None:
        """The request to serve, with what happened to the mailbox since the last one.

        The session stays `in_flight` until its reply is sent: its next request waits, so its
        processor never runs two requests at once and its chunks leave in order.
        """
        if self.pending is None:
            return None
        work = Work(self, self.pending, self.unreported_superseded, self.needs_reset)
        self.pending, self.unreported_superseded, self.needs_reset = None, 0, False
        self.in_flight = True
        return work


@dataclass
class Work:
    """One request taken out of a mailbox; `reset` is True after an explicit episode reset."""

    session: Session
    request: MailboxRequest
    superseded: int
    reset: bool
