"""The transport-agnostic server: the one entry point both the Zenoh and the OpenPI surfaces call.

Transports turn bytes into calls here and replies back into bytes; they know nothing about
policies. Everything a transport thread does through this class is bounded and short: opening a
session runs the contract checks, an observation is only deposited into its session's mailbox.
Decoding, the policy and encoding happen on the inference worker.

Nothing a peer sends grows without bound here: session opens, observations and resets pass a
per-robot token bucket first (`manifest.limits`), the decode limits every surface uses follow
the served policy (`decode_limits`), and a session that never sends an observation is closed
after `session_first_observation_timeout_s` instead of holding capacity for the idle timeout.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable

from policylink import __version__
from policylink.policy.base import Policy
from policylink.policy.request_step import SessionProcessor
from policylink.server.admission import Admission
from policylink.server.audit import audit_refusal
from policylink.server.capture import RequestCapture
from policylink.server.forward_profile import ForwardProfile
from policylink.server.manifest import Manifest
from policylink.server.metrics import LoadMeter, ServerMetrics
from policylink.server.rate_limit import RateLimiter
from policylink.server.scheduler import Scheduler, make_scheduler
from policylink.server.serving_modes import EXCLUSIVE, ServingDecision
from policylink.server.session import Decode, MailboxRequest, Reply, Session
from policylink.server.session_registry import SessionRegistry
from policylink.server.validation import OpenPolicy, OpenTerms, check_session_open, reject
from policylink.wire.errors import ErrorCode
from policylink.wire.header import Header, MsgType
from policylink.wire.limits import DecodeLimits
from policylink.wire.messages import (
    Capabilities,
    ErrorReply,
    Reset,
    ResetAck,
    SessionAck,
    SessionOpen,
    Status,
)

log = logging.getLogger("policylink.server")

# Characters of a peer-chosen client id used as a rate-limit key (a valid one is shorter).
RATE_KEY_CHARS = 128
# Refused opens logged per second, whatever ids peers invent (the audit line has them all,
# within its own budget).
REFUSAL_LOG_LINES_PER_S = 10.0
# Observations without a session are answered (`unknown_session`, `stale_session`) at most once
# a second per robot and SESSIONLESS_ANSWERS_PER_S in all: a robot that lost its session learns
# so from its next observation, while a peer spraying observations under made-up ids costs a
# lookup each, not a reply.
SESSIONLESS_ANSWERS_PER_S = 50.0
# A session that has not sent its first observation this long after its SessionAck gives its
# slot up to a robot that finds the server full. A real robot sends its first observation
# within milliseconds of the ack; a peer that opens sessions under ever new ids to fill every
# slot holds them for this long, not for `session_first_observation_timeout_s`.
NEVER_USED_YIELD_S = 1.0

CloseListener = Callable[[Session, str], None]


def build_capabilities(
    policy: Policy, manifest: Manifest, decision: ServingDecision
) -> Capabilities:
    spec = policy.spec
    return Capabilities(
        model_id=manifest.model_id,
        revision=manifest.revision,
        task_slug=manifest.task_slug,
        action_names=list(spec.action_names),
        chunk_size=spec.chunk_size,
        state_dim=spec.state_dim,
        state_names=list(spec.state_names),
        cameras=list(spec.cameras),
        supports_rtc=spec.supports_rtc and manifest.rtc.enabled,
        rtc_execution_horizon=manifest.rtc.execution_horizon,
        trained_fps=manifest.trained_fps or spec.trained_fps,
        serving_mode=decision.mode,
        default_task=manifest.default_task,
        pin_task=manifest.pin_task,
        server_version=__version__,
    )


class ServerCore:
    def __init__(
        self,
        policy: Policy,
        manifest: Manifest,
        decision: ServingDecision,
        *,
        metrics: ServerMetrics | None = None,
        capture: RequestCapture | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.policy = policy
        self.manifest = manifest
        self.decision = decision
        self.capabilities = build_capabilities(policy, manifest, decision)
        self.replica_id = manifest.replica_id or f"r-{secrets.token_hex(4)}"
        self.max_sessions = decision.max_sessions
        self.exclusive = decision.mode == EXCLUSIVE
        self.metrics = metrics or ServerMetrics()
        self.capture = capture
        self.scheduler: Scheduler = scheduler or make_scheduler(manifest.scheduler)
        # Rows per forward: 1 for an exclusive policy or one that does not batch.
        self.batch_limit = (
            1 if self.exclusive else min(manifest.max_batch_size, policy.spec.max_batch_size)
        )
        self.max_wait_ns = round(manifest.max_wait_ms * 1e6)
        self.forward_profile = ForwardProfile(self.batch_limit)
        self.registry = SessionRegistry()
        self.load = LoadMeter()
        self.admission = Admission(self.registry, self.max_sessions, self.load)
        self.metrics.load.set_function(self.load.current)
        self._export_capacity()
        self._open_rules = OpenPolicy(
            self.capabilities, manifest.strict_fps, self.capabilities.supports_rtc
        )
        spec = policy.spec
        self.decode_limits = DecodeLimits.for_policy(
            spec.cameras, spec.state_dim, spec.action_dim, spec.chunk_size
        )
        limits = manifest.limits
        self._open_limit = RateLimiter(limits.session_opens_per_s, limits.session_open_burst)
        self._observation_limit = RateLimiter(limits.observations_per_s, limits.observation_burst)
        self._reset_limit = RateLimiter(limits.resets_per_s, limits.reset_burst)
        self._refusal_log = RateLimiter(REFUSAL_LOG_LINES_PER_S, REFUSAL_LOG_LINES_PER_S)
        self._sessionless_per_robot = RateLimiter(1.0, 1)
        self._sessionless_total = RateLimiter(SESSIONLESS_ANSWERS_PER_S, SESSIONLESS_ANSWERS_PER_S)
        # Guards the capacity check and the insertion as one step (two robots racing for the
        # last slot must not both get it), the last epoch handed out and the close listeners.
        self._open_lock = threading.Lock()
        self._last_epoch = 0
        self._close_listeners: list[CloseListener] = []

    def _export_capacity(self) -> None:
        profile, rate = self.forward_profile, self.manifest.planning_request_hz
        for size in range(1, self.batch_limit + 1):
            self.metrics.forward_ms.labels(str(size)).set_function(
                lambda size=size: profile.table().get(size, 0.0)
            )
        self.metrics.capacity_robots.set_function(lambda: profile.robots_at(rate))

    @property
    def draining(self) -> bool:
        return self.admission.draining

    def status(self) -> Status:
        return Status(
            capabilities=self.capabilities,
            replica_id=self.replica_id,
            active_sessions=self.registry.count(),
            max_sessions=self.max_sessions,
            draining=self.admission.draining,
            max_batch_size=self.batch_limit,
            forward_ms=self.forward_profile.table(),
            device_busy=self.load.current(),
            capacity_robots=self.forward_profile.robots_at(self.manifest.planning_request_hz),
        )

    def add_close_listener(self, listener: CloseListener) -> None:
        """Called as `listener(session, reason)` after any session closes, on the closing thread."""
        with self._open_lock:
            self._close_listeners.append(listener)

    def open_session(
        self, req: SessionOpen, transport: str, *, replaced_reason: str = "replaced"
    ) -> SessionAck | ErrorReply:
        """Open a session; the client's previous one, if any, is closed as `replaced_reason`
        in the same step, so the new session takes its slot even on a full server."""
        if not self._open_limit.allow(req.client_id[:RATE_KEY_CHARS]):
            return self._refuse(
                reject(
                    ErrorCode.RATE_LIMITED,
                    f"too many session opens from client {req.client_id[:64]!r}; at most "
                    f"{self._open_limit.rate_per_s:g} a second (limits.session_opens_per_s)",
                ),
                req,
                transport,
            )
        terms = check_session_open(req, self._open_rules)
        if isinstance(terms, ErrorReply):
            return self._refuse(terms, req, transport)
        with self._open_lock:
            refusal = self.admission.refusal(terms.client)
            yielded = (
                self._unused_slot() if refusal and refusal.code is ErrorCode.CAPACITY else None
            )
            if refusal is not None and yielded is None:
                return self._refuse(refusal, req, transport)
            session = self._new_session(req, terms, transport)
            replaced = self.registry.add(session)
        self.metrics.sessions_opened.inc()
        if yielded is not None:
            self._closed(yielded, "never_used")
        if replaced is not None:
            self._closed(replaced, replaced_reason)
        self.metrics.sessions_active.set(self.registry.count())
        log.info(
            "session %s opened for client %s over %s (epoch %d)",
            session.session_id,
            session.client,
            transport,
            session.epoch,
        )
        return SessionAck(
            session_id=session.session_id,
            session_epoch=session.epoch,
            schema_version=terms.schema_version,
            capabilities=self.capabilities,
            rtc_enabled=terms.rtc_enabled,
            warnings=terms.warnings,
        )

    def _new_session(self, req: SessionOpen, terms: OpenTerms, transport: str) -> Session:
        # Unguessable, so a peer that can publish on a robot's key still cannot forge a
        # request the session accepts; never 0 (no session) and never the previous one.
        epoch = self._last_epoch
        while epoch in (0, self._last_epoch):
            epoch = secrets.randbits(32)
        self._last_epoch = epoch
        return Session(
            session_id=secrets.token_hex(16),
            client=terms.client,
            epoch=epoch,
            schema_version=terms.schema_version,
            pipeline=SessionProcessor(self.policy.make_processor()),
            transport=transport,
            rtc_enabled=terms.rtc_enabled,
            order=0,
            tags=dict(req.tags),
            instance=req.instance,
        )

    def _unused_slot(self) -> Session | None:
        """The oldest session that never sent an observation within NEVER_USED_YIELD_S,
        removed to make room; call with `_open_lock` held (the caller reports the close)."""
        unused = self.registry.unused_sessions(NEVER_USED_YIELD_S)
        if not unused:
            return None
        oldest = min(unused, key=lambda session: session.opened_ns)
        return self.registry.remove(oldest.session_id)

    def _refuse(self, error: ErrorReply, req: SessionOpen, transport: str) -> ErrorReply:
        self.metrics.sessions_rejected.labels(error.code.value).inc()
        if self._refusal_log.allow("open"):
            log.info("session refused (%s): %s", error.code.value, error.message)
        audit_refusal(
            event="session_open",
            outcome=error.code.value,
            client=req.client_id,
            transport=transport,
        )
        return error

    def close_session(self, session_id: str, reason: str) -> bool:
        """Close exactly this session; a newer session of the same client is never touched."""
        session = self.registry.remove(session_id)
        if session is None:
            return False
        self._closed(session, reason)
        self.metrics.sessions_active.set(self.registry.count())
        return True

    def _closed(self, session: Session, reason: str) -> None:
        self.metrics.sessions_closed.labels(reason).inc()
        stats = session.stats
        log.info(
            "session %s of client %s closed (%s): %d requests, %d errors, %d superseded, "
            "%d from old episodes",
            session.session_id,
            session.client,
            reason,
            stats.requests,
            stats.errors,
            stats.superseded,
            stats.stale_dropped,
        )
        with self._open_lock:
            listeners = list(self._close_listeners)
        for listener in listeners:
            listener(session, reason)

    def close_idle_sessions(self) -> list[str]:
        """Close sessions silent for `session_idle_timeout_s`, and those that never sent an
        observation within `session_first_observation_timeout_s` of opening."""
        manifest = self.manifest
        unused = self.registry.unused_sessions(manifest.session_first_observation_timeout_s)
        closed = [s.session_id for s in unused if self.close_session(s.session_id, "never_used")]
        idle = self.registry.idle_sessions(manifest.session_idle_timeout_s)
        return closed + [s.session_id for s in idle if self.close_session(s.session_id, "idle")]

    def session_id_for_client(self, client: str) -> str | None:
        return self.registry.session_id_for_client(client)

    def session_for_client(self, client: str) -> Session | None:
        session_id = self.registry.session_id_for_client(client)
        return None if session_id is None else self.registry.get(session_id)

    def reset_session(self, req: Reset) -> ResetAck | ErrorReply:
        session = self.registry.get(req.session_id)
        if session is not None and not self._reset_limit.allow(session.client):
            audit_refusal(
                event="reset",
                outcome=ErrorCode.RATE_LIMITED.value,
                client=session.client,
                session_id=session.session_id,
                transport=session.transport,
            )
            return reject(
                ErrorCode.RATE_LIMITED,
                f"too many resets; at most {self._reset_limit.rate_per_s:g} a second "
                "(limits.resets_per_s)",
            )
        if session is None or self.registry.begin_episode(req.session_id, req.episode_id) is None:
            return reject(
                ErrorCode.UNKNOWN_SESSION,
                f"session {req.session_id[:64]!r} is not open here; open a new session",
            )
        return ResetAck(session_id=req.session_id, episode_id=req.episode_id)

    def submit_observation(
        self,
        session_id: str,
        header: Header,
        payload: object,
        decode: Decode,
        reply: Reply,
        *,
        playback_left_ms: float | None = None,
        client: str | None = None,
    ) -> None:
        """Deposit only: returns in microseconds. Unknown or stale sessions are answered here
        (from the caller's thread); everything else is answered by the inference worker.

        Rate limit: a robot that waits for each answer (one request in flight) is never
        limited, however fast its policy answers; an observation that arrives while the
        robot's previous one is still unserved, or without an open session, takes a token from
        the robot's bucket (`client`, else the session id), and without one it is dropped
        unanswered."""
        if isinstance(payload, bytes) and payload:
            self.metrics.request_bytes.observe(len(payload))
        if self.admission.draining:
            self._drop("draining", header, session_id, client)
            return
        if self.registry.busy(session_id) and not self._observation_limit.allow(
            (client or session_id)[:RATE_KEY_CHARS]
        ):
            self._drop("rate_limited", header, session_id, client)
            return
        request = MailboxRequest(header, payload, decode, reply, playback_left_ms=playback_left_ms)
        outcome = self.registry.deposit(session_id, header.session_epoch, request)
        if outcome == "superseded":
            self.metrics.superseded.inc()
        elif outcome == "old_episode":
            self._drop("old_episode", header, session_id, client)
        elif outcome in ("unknown", "stale") and not self._may_answer_sessionless(
            (client or session_id)[:RATE_KEY_CHARS]
        ):
            self._drop("rate_limited", header, session_id, client)
        elif outcome == "unknown":
            self._answer_now(
                header,
                reply,
                reject(ErrorCode.UNKNOWN_SESSION, "no open session for this client; open one"),
                client,
            )
        elif outcome == "stale":
            self._answer_now(
                header,
                reply,
                reject(
                    ErrorCode.STALE_SESSION,
                    f"session_epoch {header.session_epoch} belongs to a closed session; "
                    "use the epoch of your latest SessionAck",
                ),
                client,
            )

    def _may_answer_sessionless(self, robot: str) -> bool:
        return self._sessionless_per_robot.allow(robot) and self._sessionless_total.allow("*")

    def _drop(self, reason: str, header: Header, session_id: str, client: str | None) -> None:
        """An observation dropped unanswered: counted, and audited (rate-limited)."""
        self.metrics.dropped.labels(reason).inc()
        audit_refusal(
            event="observation",
            outcome=reason,
            client=client or "",
            session_id=session_id,
            seq_id=header.seq_id,
        )

    def _answer_now(
        self, header: Header, reply: Reply, error: ErrorReply, client: str | None
    ) -> None:
        self.metrics.errors.labels(error.code.value).inc()
        audit_refusal(
            event="observation",
            outcome=error.code.value,
            client=client or "",
            seq_id=header.seq_id,
        )
        try:
            reply(header.echo(MsgType.ERROR), error)
        except Exception:  # a failing transport must not take the caller's thread down
            log.exception("could not send %s reply", error.code.value)

    def begin_drain(self) -> None:
        """From now on: refuse opens, ignore new observations. Unserved mailboxes are dropped."""
        with self._open_lock:
            self.admission.begin_drain()
        self.registry.wake()
