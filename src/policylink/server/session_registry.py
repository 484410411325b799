"""Every open session, indexed by id and by client, with the condition the worker sleeps on.

Removal is by session id, never by client: a stale close, a late liveliness drop or an idle sweep
that was decided about an old session cannot remove a newer session of the same client, because
the newer one has a different id. The client index is only cleared when it still points at the
session being removed.

Sessions hold capacity, so none outlives its use: `idle_sessions` are those that went quiet,
`unused_sessions` those that never sent an observation at all (a peer opening sessions it never
uses must not keep robots out for the whole idle timeout).
"""

from __future__ import annotations

import threading
import time

from policylink.server.session import MailboxRequest, Session


class SessionRegistry:
    def __init__(self) -> None:
        # Guards the two indexes below and every session's mailbox fields (pending,
        # unreported_superseded, last_seen_ns, min_episode_id, in_flight). The worker waits on
        # `ready`.
        self._lock = threading.Lock()
        self.ready = threading.Condition(self._lock)
        self._by_id: dict[str, Session] = {}
        self._by_client: dict[str, str] = {}
        self._next_order = 0

    def add(self, session: Session) -> Session | None:
        """Register a session; returns the same client's previous session, now removed."""
        with self._lock:
            session.order = self._next_order
            self._next_order += 1
            # Until its first deposit moves `last_seen_ns`, the two agree: never used.
            session.last_seen_ns = session.opened_ns
            previous_id = self._by_client.get(session.client)
            previous = self._by_id.pop(previous_id, None) if previous_id else None
            self._by_id[session.session_id] = session
            self._by_client[session.client] = session.session_id
            return previous

    def remove(self, session_id: str) -> Session | None:
        with self._lock:
            session = self._by_id.pop(session_id, None)
            if session is not None and self._by_client.get(session.client) == session_id:
                del self._by_client[session.client]
            return session

    def get(self, session_id: str) -> Session | None:
        with self._lock:
            return self._by_id.get(session_id)

    def session_id_for_client(self, client: str) -> str | None:
        with self._lock:
            return self._by_client.get(client)

    def count(self) -> int:
        with self._lock:
            return len(self._by_id)

    def count_locked(self) -> int:
        """Open sessions; call with `ready` held (the schedule stage does)."""
        return len(self._by_id)

    def count_excluding_client(self, client: str) -> int:
        """Sessions that would remain if `client` reopened (its old session is replaced)."""
        with self._lock:
            return len(self._by_id) - (1 if client in self._by_client else 0)

    def snapshot(self) -> list[Session]:
        with self._lock:
            return list(self._by_id.values())

    def deposit(self, session_id: str, epoch: int, request: MailboxRequest) -> str:
        """Latest-only deposit. Returns "queued", "superseded", "unknown", "stale" or
        "old_episode" so the caller can answer or count without a second lookup."""
        with self._lock:
            session = self._by_id.get(session_id)
            if session is None:
                return "unknown"
            if epoch != session.epoch:
                return "stale"
            if request.header.episode_id < session.min_episode_id:
                session.stats.stale_dropped += 1
                return "old_episode"
            superseded = session.deposit(request)
            self.ready.notify()
            return "superseded" if superseded else "queued"

    def busy(self, session_id: str) -> bool:
        """True when the session has a request unserved or in flight, or is not open: a
        request arriving now is more than a robot with one request in flight sends."""
        with self._lock:
            session = self._by_id.get(session_id)
            return session is None or session.pending is not None or session.in_flight

    def begin_episode(self, session_id: str, episode_id: int) -> Session | None:
        """An explicit reset: drop the old episode's unserved observation, refuse older ones."""
        with self._lock:
            session = self._by_id.get(session_id)
            if session is None:
                return None
            session.pending = None
            session.min_episode_id = max(session.min_episode_id, episode_id)
            session.needs_reset = True
            return session

    def ready_sessions_locked(self) -> list[Session]:
        """Sessions with an unserved request and none in flight, in open order; call with
        `ready` held."""
        return sorted(
            (s for s in self._by_id.values() if s.pending is not None and not s.in_flight),
            key=lambda s: s.order,
        )

    def finished(self, session: Session) -> None:
        """The session's request in flight was answered: its next one may be scheduled."""
        with self._lock:
            session.in_flight = False
            if session.pending is not None:
                self.ready.notify()

    def idle_sessions(self, timeout_s: float, now_ns: int | None = None) -> list[Session]:
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        limit_ns = int(timeout_s * 1e9)
        with self._lock:
            return [
                s
                for s in self._by_id.values()
                if s.pending is None and now_ns - s.last_seen_ns > limit_ns
            ]

    def unused_sessions(self, timeout_s: float, now_ns: int | None = None) -> list[Session]:
        """Sessions open for longer than `timeout_s` that never received an observation."""
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        limit_ns = int(timeout_s * 1e9)
        with self._lock:
            return [
                s
                for s in self._by_id.values()
                if s.last_seen_ns == s.opened_ns
                and s.pending is None
                and not s.in_flight
                and now_ns - s.opened_ns > limit_ns
            ]

    def wake(self) -> None:
        """Wake the worker (used to make it notice a stop request)."""
        with self._lock:
            self.ready.notify_all()
