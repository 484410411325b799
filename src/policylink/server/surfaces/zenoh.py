"""The server's Zenoh surface: key expressions and callbacks in, `ServerCore` calls out.

Callbacks run on Zenoh's own threads and must return fast: the observation callback only reads
the fixed header, looks up the session and deposits the untouched payload; decoding happens on
the inference worker. Every query is finalised (`with query:`), or the caller would wait for
its timeout. Answers to robots use the QoS in `zenoh_session.put_action` (DROP, never BLOCK).

Session garbage collection from liveliness is deliberately slow to kill: a dropped client token
only marks the client's session, and after a grace period the session is closed only if the
token is still absent *and* the client still maps to that same session. A late token drop can
therefore never close a replacement session that is alive.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import zenoh

from policylink.net.zenoh_session import open_zenoh_session, put_action
from policylink.net.zenoh_settings import ZenohSettings
from policylink.server.audit import audit_refusal
from policylink.wire.codec import (
    decode_message,
    decode_observation,
    encode_message,
    peek_playback_left_ms,
)
from policylink.wire.errors import DecodeError, ErrorCode, KeyExprError, TooLargeError, WireError
from policylink.wire.header import Header, MsgType, pack_header, unpack_header
from policylink.wire.keys import Namespace, instance_segment
from policylink.wire.limits import DecodeLimits
from policylink.wire.messages import (
    ActionChunk,
    ErrorReply,
    Message,
    Observation,
    Reset,
    SessionClose,
    SessionOpen,
    StatusRequest,
)
from policylink.wire.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from policylink.server.core import ServerCore
    from policylink.server.session import Reply

log = logging.getLogger("policylink.server.zenoh")

LIVELINESS_GRACE_S = 1.0
LIVELINESS_QUERY_TIMEOUT_S = 0.5
# Robot processes remembered per robot id; a peer declaring tokens in bulk cannot grow it.
MAX_INSTANCES_PER_ROBOT = 8


def _attachment(sample_or_query: zenoh.Sample | zenoh.Query) -> bytes | None:
    attachment = sample_or_query.attachment
    return None if attachment is None else attachment.to_bytes()


class ZenohServerSurface:
    """Owned by `ServerApp`: `start()`, then `withdraw()` (drop the liveliness token) and
    `stop()` when draining. Owns the liveliness GC thread."""

    def __init__(
        self,
        core: ServerCore,
        settings: ZenohSettings,
        namespace: Namespace,
        limits: DecodeLimits | None = None,
        liveliness_grace_s: float = LIVELINESS_GRACE_S,
    ) -> None:
        self.core = core
        self.settings = settings
        self.namespace = namespace
        self.replica = core.replica_id
        # The served policy's limits unless a caller sets others: a message longer than the
        # policy could need is dropped before it is copied (`_on_observation`).
        self.limits = limits or core.decode_limits
        self.liveliness_grace_s = liveliness_grace_s
        self.session: zenoh.Session | None = None
        self._declared: list[zenoh.Queryable | zenoh.Subscriber] = []
        self._token: zenoh.LivelinessToken | None = None
        # Guards `_suspects` (client → (session id, deadline) of a dropped liveliness token)
        # and `_live` (client → the instances, i.e. robot processes, whose liveliness token is
        # present).
        self._lock = threading.Lock()
        self._suspects: dict[str, tuple[str, float]] = {}
        self._live: dict[str, set[str]] = {}
        self._stop = threading.Event()
        self._gc_thread = threading.Thread(
            target=self._run_liveliness_gc, name="policylink-liveliness-gc", daemon=True
        )

    def start(self) -> None:
        self.session = session = open_zenoh_session(self.settings)
        ns, replica = self.namespace, self.replica
        self._declared = [
            session.declare_queryable(ns.status(replica), self._guarded(self._on_status)),
            session.declare_queryable(
                ns.every_robot(replica, "session"), self._guarded(self._on_session)
            ),
            session.declare_queryable(
                ns.every_robot(replica, "reset"), self._guarded(self._on_reset)
            ),
            session.declare_subscriber(ns.every_robot(replica, "obs"), self._on_observation),
            session.liveliness().declare_subscriber(
                ns.all_robot_alive, self._on_liveliness, history=True
            ),
        ]
        self._gc_thread.start()
        # Declared last: a client that sees the token can rely on every queryable above.
        self._token = session.liveliness().declare_token(ns.replica_alive(replica))

    def withdraw(self) -> None:
        """Drop the server's liveliness token: clients fail over before the surface closes."""
        if self._token is not None:
            self._token.undeclare()
            self._token = None

    def stop(self) -> None:
        self.withdraw()
        self._stop.set()
        if self._gc_thread.is_alive():
            self._gc_thread.join()
        for entity in self._declared:
            entity.undeclare()
        self._declared = []
        if self.session is not None:
            self.session.close()
            self.session = None

    def live_instances(self, client: str) -> set[str]:
        """The processes of `client` whose liveliness token this surface sees."""
        with self._lock:
            return set(self._live.get(client, ()))

    def suspected_clients(self) -> list[str]:
        """Clients whose token dropped and whose session awaits the post-grace double-check."""
        with self._lock:
            return list(self._suspects)

    @property
    def endpoints(self) -> list[str]:
        return [*self.settings.listen, *self.settings.connect]

    # --- queries -------------------------------------------------------------------------

    def _guarded(self, handle: Callable[[zenoh.Query], tuple[Header, Message]]):
        """Wrap a handler so every query is finalised and answered, even on bad input."""

        def on_query(query: zenoh.Query) -> None:
            with query:
                try:
                    header, message = handle(query)
                except WireError as exc:
                    header = Header(SCHEMA_VERSION, MsgType.ERROR)
                    message = ErrorReply(code=exc.code, message=str(exc))
                except Exception as exc:  # never leave a robot waiting on an unanswered query
                    log.exception("query on %s failed", query.key_expr)
                    header = Header(SCHEMA_VERSION, MsgType.ERROR)
                    message = ErrorReply(code=ErrorCode.INTERNAL, message=str(exc))
                query.reply(query.key_expr, encode_message(message), attachment=pack_header(header))

        return on_query

    def _request(self, query: zenoh.Query) -> tuple[Header, Message]:
        header = unpack_header(_attachment(query))
        payload = query.payload
        if payload is not None and len(payload) > self.limits.max_message_bytes:
            raise TooLargeError(
                f"a {len(payload)}-byte request exceeds the cap of {self.limits.max_message_bytes}"
            )
        return header, decode_message(
            header.msg_type, b"" if payload is None else payload.to_bytes(), self.limits
        )

    def _on_status(self, query: zenoh.Query) -> tuple[Header, Message]:
        if query.attachment is None:  # a bare `get` from a tool: still answer
            request_header = Header(SCHEMA_VERSION, MsgType.STATUS_REQUEST)
        else:
            request_header, message = self._request(query)
            if not isinstance(message, StatusRequest):
                raise WireError(f"status expects a StatusRequest, got {type(message).__name__}")
        return _answer(request_header, MsgType.STATUS), self.core.status()

    def _on_session(self, query: zenoh.Query) -> tuple[Header, Message]:
        """Open or close the session of the robot the key names: the key is the identity (an
        access-control policy confines each robot to its own keys), the body must agree."""
        client = self.namespace.robot_of(str(query.key_expr))
        header, message = self._request(query)
        if isinstance(message, SessionOpen):
            refusal = self._identity_refusal(client, message)
            if refusal is not None:
                return _answer(header, MsgType.ERROR), refusal
            reply = self.core.open_session(message, "zenoh")
            if isinstance(reply, ErrorReply):
                return _answer(header, MsgType.ERROR), reply
            return (
                Header(
                    reply.schema_version,
                    MsgType.SESSION_ACK,
                    seq_id=header.seq_id,
                    client_mono_ns=header.client_mono_ns,
                    session_epoch=reply.session_epoch,
                ),
                reply,
            )
        if isinstance(message, SessionClose):
            if self.core.session_id_for_client(client) != message.session_id or not (
                self.core.close_session(message.session_id, "closed by client")
            ):
                return _answer(header, MsgType.ERROR), ErrorReply(
                    ErrorCode.UNKNOWN_SESSION, f"session {message.session_id!r} is not open"
                )
            return _answer(header, MsgType.SESSION_CLOSE), message
        raise WireError(
            f"session expects SessionOpen or SessionClose, got {type(message).__name__}"
        )

    def _identity_refusal(self, client: str, message: SessionOpen) -> ErrorReply | None:
        """The body must name the key's robot; and a robot id whose session belongs to another
        process that is still alive is not taken over (a restarted robot's old process, and
        with it its liveliness token, is gone, so it re-joins at once)."""
        if message.client_id != client:
            return ErrorReply(
                ErrorCode.BAD_KEY,
                f"client_id {message.client_id!r} does not match the key's robot {client!r}",
            )
        if message.instance:
            try:
                instance_segment(message.instance)
            except KeyExprError as exc:
                return ErrorReply(ErrorCode.BAD_KEY, str(exc))
        current = self.core.session_for_client(client)
        if current is None or not current.instance or current.instance == message.instance:
            return None
        with self._lock:
            holder_alive = current.instance in self._live.get(client, ())
        if not holder_alive:
            return None
        log.warning("refused a second process claiming live robot %s", client)
        return ErrorReply(
            ErrorCode.CLIENT_IN_USE,
            f"client id {client!r} belongs to another robot process that is still alive; give "
            "each robot its own client_id",
        )

    def _on_reset(self, query: zenoh.Query) -> tuple[Header, Message]:
        client = self.namespace.robot_of(str(query.key_expr))
        header, message = self._request(query)
        if not isinstance(message, Reset):
            raise WireError(f"reset expects a Reset, got {type(message).__name__}")
        if self.core.session_id_for_client(client) != message.session_id:
            return _answer(header, MsgType.ERROR), ErrorReply(
                ErrorCode.UNKNOWN_SESSION,
                f"session {message.session_id!r} is not the open session of client {client!r}",
            )
        reply = self.core.reset_session(message)
        msg_type = MsgType.ERROR if isinstance(reply, ErrorReply) else MsgType.RESET_ACK
        return _answer(header, msg_type), reply

    # --- observations ----------------------------------------------------------------------

    def _on_observation(self, sample: zenoh.Sample) -> None:
        """Deposit-only: header, lookup, hand over. Returns in microseconds."""
        try:
            client = self.namespace.robot_of(str(sample.key_expr))
            header = unpack_header(_attachment(sample))
        except WireError:
            self.core.metrics.dropped.labels("bad_header").inc()
            audit_refusal(event="observation", outcome="bad_header")
            return
        if header.msg_type is not MsgType.OBSERVATION:
            self.core.metrics.dropped.labels("bad_header").inc()
            audit_refusal(event="observation", outcome="bad_header", client=client)
            return
        # The length of a ZBytes is known without copying it: nothing over the cap is copied.
        if len(sample.payload) > self.limits.max_message_bytes:
            self.core.metrics.dropped.labels("too_large").inc()
            audit_refusal(event="observation", outcome="too_large", client=client)
            return
        session_id = self.core.session_id_for_client(client)
        reply = self._reply_to(client)
        # Copied once here (the worker decodes these bytes), so the deadline can be read; an
        # observation without a session is only ever refused, so its bytes are never copied.
        payload = sample.payload.to_bytes() if session_id else b""
        if sample.payload.as_shm() is not None:
            self.core.metrics.shm_observations.inc()
        self.core.submit_observation(
            session_id or "",
            header,
            payload,
            self._decode,
            reply,
            playback_left_ms=peek_playback_left_ms(payload),
            client=client,
        )

    def _decode(self, payload: object) -> Observation:
        if not isinstance(payload, bytes):
            raise DecodeError("observation: the sample has no payload")
        return decode_observation(payload, self.limits)

    def _reply_to(self, client: str) -> Reply:
        """Answers go out as one-shot puts on the robot's action key, never through a publisher
        declared per robot: a declaration reaches every peer's routing tables, so robot ids
        invented by the thousand would make every peer (the good robots too) declare, match and
        undeclare each of them, and would leave the tables grown."""

        def reply(header: Header, message: ActionChunk | ErrorReply) -> None:
            if self.session is None:
                return  # stopped: nobody is served any more
            key = self.namespace.action(client, self.replica)
            put_action(self.session, key, encode_message(message), pack_header(header))

        return reply

    def _on_liveliness(self, sample: zenoh.Sample) -> None:
        try:
            client, instance = self.namespace.robot_instance_of(str(sample.key_expr))
        except KeyExprError:
            return  # not a robot's token
        current = self.core.session_for_client(client)
        holds_session = current is not None and current.instance in ("", instance)
        if sample.kind == zenoh.SampleKind.PUT:
            with self._lock:
                live = self._live.setdefault(client, set())
                if len(live) < MAX_INSTANCES_PER_ROBOT:
                    live.add(instance)
                if holds_session:
                    self._suspects.pop(client, None)
            return
        with self._lock:
            live = self._live.get(client, set())
            live.discard(instance)
            if not live:
                self._live.pop(client, None)
            if holds_session and current is not None:
                self._suspects[client] = (
                    current.session_id,
                    time.monotonic() + self.liveliness_grace_s,
                )

    def _run_liveliness_gc(self) -> None:
        """A loop that died would leak every vanished robot's session: a failing pass is
        logged and the next one runs."""
        while not self._stop.wait(0.1):
            try:
                self._collect_vanished()
            except Exception:
                log.exception("liveliness GC pass failed")

    def _collect_vanished(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [(c, sid) for c, (sid, deadline) in self._suspects.items() if deadline <= now]
            for client, _ in due:
                del self._suspects[client]
        for client, session_id in due:
            if self.core.session_id_for_client(client) != session_id:
                continue  # already closed or replaced by a newer session
            if self._client_alive(client, session_id):
                continue
            self.core.close_session(session_id, "client liveliness lost")

    def _client_alive(self, client: str, session_id: str) -> bool:
        """Whether the process that holds `session_id` still shows a liveliness token."""
        session = self.core.registry.get(session_id)
        if self.session is None or session is None:
            return False
        replies = self.session.liveliness().get(
            self.namespace.robot_alive(client, session.instance or "*"),
            timeout=LIVELINESS_QUERY_TIMEOUT_S,
        )
        return any(reply.ok is not None for reply in replies)


def _answer(request: Header, msg_type: MsgType) -> Header:
    """Control queries may come from a client that has not negotiated a schema yet (0)."""
    return request.echo(msg_type, request.schema_version or SCHEMA_VERSION)
