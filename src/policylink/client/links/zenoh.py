"""The robot's Zenoh link: placement, session queries, observations up, chunks down.

Placement happens at every handshake. The robot gathers the status of every replica answering
its namespace pattern (unset model, revision or task segments match any; all replies, not the
first) and opens its session on the least-loaded replica that is not draining, moving on to the
next when one refuses for capacity. Once open, the session stays on that replica; a later
handshake (after the session was lost) prefers it again while it answers, and otherwise
re-places the robot on another — the failover path. A namespace the robot was bound to wins
over any other, so a replica of another revision is never chosen unless the robot asks for it:
the engine's contract check would refuse its chunks anyway.

Callbacks only decode and hand over; they never block. Chunks are accepted only from the
replica the session was opened with: the key they arrive on names it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import zenoh

from policylink.client.jpeg_quality import QualityBounds
from policylink.client.link import ReplyHandler, ServerUnreachable
from policylink.client.uplink import Uplink
from policylink.net.zenoh_session import (
    ShmSender,
    declare_observation_publisher,
    gather,
    open_zenoh_session,
    query,
)
from policylink.net.zenoh_settings import ZenohSettings
from policylink.wire.codec import decode_expected, encode_message
from policylink.wire.errors import ErrorCode, WireError
from policylink.wire.header import Header, MsgType, pack_header, unpack_header
from policylink.wire.keys import Namespace, client_segment, replica_segment, status_pattern
from policylink.wire.limits import DEFAULT_LIMITS, DecodeLimits
from policylink.wire.messages import (
    ActionChunk,
    ErrorReply,
    Message,
    Observation,
    Reset,
    ResetAck,
    SessionAck,
    SessionClose,
    SessionOpen,
    Status,
    StatusRequest,
)
from policylink.wire.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from policylink.client.config import ClientConfig

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 0.5
# Refusals another replica may not give: the robot tries the next one.
MOVE_ON = frozenset({ErrorCode.CAPACITY, ErrorCode.DRAINING})
LINK_POLL_S = 0.005
# Devices whose busy fractions (each over the last second) differ by less than this are alike
# for placement: the difference is noise, and ranking by it would herd robots placing at once.
BUSY_ALIKE = 0.1
# Unreadable messages on the action key are logged at most this often (with a count): any peer
# that may put on a wildcard over every robot's keys would otherwise fill each robot's log.
MALFORMED_LOG_PERIOD_S = 10.0


def settings_from_config(config: ClientConfig) -> ZenohSettings:
    """The robot's Zenoh link as its config describes it; mutual TLS when it holds a key pair."""
    return ZenohSettings(
        mode=config.zenoh_mode,
        connect=[config.endpoint],
        lease_ms=config.lease_ms,
        tls_root_ca=config.tls_root_ca,
        tls_cert=config.tls_cert,
        tls_key=config.tls_key,
        tls_mtls=bool(config.tls_cert and config.tls_key),
        shared_memory=config.shared_memory,
    )


class ZenohLink:
    """`ClientLink` over Zenoh; one instance per robot, reused across reconnects."""

    def __init__(
        self,
        settings: ZenohSettings,
        client_id: str,
        *,
        model_id: str = "",
        revision: str = "",
        task_slug: str = "",
        jpeg_quality: int = 90,
        limits: DecodeLimits = DEFAULT_LIMITS,
        uplink: Uplink | None = None,
    ) -> None:
        client_segment(client_id)
        self.client_id = client_id
        # This process among any that might claim the id: its liveliness token names it, and
        # the server refuses to hand a live process's session to another.
        self.instance = secrets.token_hex(8)
        # Encodes observations (resized to the policy, at a quality the link carries) and
        # counts their bytes; fixed quality unless a config asks for adaptation.
        fixed = max(jpeg_quality, 1)
        self.uplink = uplink or Uplink(QualityBounds(fixed, fixed), raw=jpeg_quality == 0)
        # Observations through shared memory when the settings ask for it (same-host server).
        self.shm = ShmSender() if settings.shared_memory else None
        self._settings = settings
        self._limits = limits
        self._status_key = status_pattern(model_id, revision, task_slug)
        self._lock = threading.Lock()
        # Guarded by _lock: the Zenoh session; the bound namespace with the robot's liveliness
        # token in it; the bound replica with what is declared for it (its action subscriber,
        # its presence subscriber, the observation publisher); the open session's id and
        # schema; and the bound replica's presence.
        self._session: zenoh.Session | None = None
        self._on_reply: ReplyHandler | None = None
        self._namespace: Namespace | None = None
        self._token: zenoh.LivelinessToken | None = None
        self._replica: str | None = None
        self._declared: list[zenoh.Subscriber] = []
        self._publisher: zenoh.Publisher | None = None
        self._session_id = ""
        self._schema = SCHEMA_VERSION
        self._alive = True
        # Called on Zenoh's thread when the bound replica's presence changes; set once, before
        # the link connects (see `watch_presence`).
        self._presence_listener: Callable[[], None] | None = None
        self.malformed_replies = 0
        # Guarded by _lock: when an unreadable action message was last logged, and how many
        # came since.
        self._malformed_logged_s = -MALFORMED_LOG_PERIOD_S
        self._malformed_unlogged = 0

    @classmethod
    def from_config(cls, config: ClientConfig) -> ZenohLink:
        return cls(
            settings_from_config(config),
            config.client_id,
            model_id=config.model_id,
            revision=config.revision,
            task_slug=config.task_slug,
            jpeg_quality=config.jpeg_quality,
            uplink=Uplink.from_config(config),
        )

    @property
    def namespace(self) -> Namespace | None:
        with self._lock:
            return self._namespace

    @property
    def replica(self) -> str | None:
        """The replica the session is open on (None before the first handshake)."""
        with self._lock:
            return self._replica

    def watch_presence(self, listener: Callable[[], None]) -> None:
        """Call `listener` (on Zenoh's thread: it must only flag and return) whenever the bound
        replica's presence changes. The engine wakes its worker with it: a robot whose replica
        died then re-places at once, not at the worker's next idle check."""
        self._presence_listener = listener

    def connect(self, on_reply: ReplyHandler) -> None:
        with self._lock:
            if self._session is not None:
                raise RuntimeError("transport already connected")
            self._on_reply = on_reply
            self._session = open_zenoh_session(self._settings)

    def handshake(self, request: SessionOpen, timeout_s: float) -> SessionAck | ErrorReply:
        """Place the robot: the least-loaded replica that takes it (see the module docstring).

        A refusal the next replica may not give (capacity, draining) moves on; any other answer
        is final. Raises `ServerUnreachable` when no replica answered at all.
        """
        session = self._require_session()
        found = self._find_replicas(session, timeout_s)
        if isinstance(found, ErrorReply):
            return found
        namespace, replicas = found
        request = dataclasses.replace(request, instance=self.instance)
        refusal: ErrorReply | None = None
        for status in replicas:
            replica = status.replica_id
            self._bind(session, namespace, replica)
            reply = self._ask(
                session,
                namespace.session(self.client_id, replica),
                request,
                expected=SessionAck,
                timeout_s=timeout_s,
            )
            if isinstance(reply, ErrorReply) and reply.code in MOVE_ON:
                refusal = reply
                logger.info("%s: replica %s refused (%s)", self.client_id, replica, reply.message)
                continue
            if reply is None:
                logger.info("%s: replica %s did not answer", self.client_id, replica)
                continue
            if isinstance(reply, SessionAck):
                with self._lock:
                    self._session_id = reply.session_id
                    self._schema = reply.schema_version
                    self._alive = True
                self.uplink.adopt(reply.capabilities.cameras)
                logger.info("%s: placed on replica %s", self.client_id, replica)
            return reply
        if refusal is not None:
            return refusal
        raise ServerUnreachable(f"no replica of {namespace.base} answered the session open")

    def send(self, header: Header, obs: Observation) -> None:
        body = self.uplink.encode(header, obs)
        with self._lock:
            publisher = self._publisher
        if publisher is None:
            raise RuntimeError("send() before a successful handshake")
        if self.shm is not None:
            self.shm.put(publisher, body, pack_header(header))
        else:
            publisher.put(body, attachment=pack_header(header))

    def reset(self, request: Reset, timeout_s: float) -> ResetAck | ErrorReply | None:
        session = self._require_session()
        with self._lock:
            namespace, replica = self._namespace, self._replica
        if namespace is None or replica is None:
            return None
        return self._ask(
            session,
            namespace.reset(self.client_id, replica),
            request,
            expected=ResetAck,
            timeout_s=timeout_s,
            episode_id=request.episode_id,
        )

    def server_alive(self) -> bool:
        with self._lock:
            return self._alive

    def close(self) -> None:
        with self._lock:
            session, self._session = self._session, None
            namespace, replica, session_id = self._namespace, self._replica, self._session_id
            declared, self._declared = self._declared, []
            publisher, self._publisher = self._publisher, None
            token, self._token = self._token, None
            self._session_id = ""
        if session is None:
            return
        try:
            if namespace is not None and replica is not None and session_id:
                self._ask(
                    session,
                    namespace.session(self.client_id, replica),
                    SessionClose(session_id, "client closed"),
                    expected=SessionClose,
                    timeout_s=CLOSE_TIMEOUT_S,
                )
        except (WireError, zenoh.ZError) as exc:
            logger.info("%s: session close not acknowledged: %s", self.client_id, exc)
        finally:
            for entity in (*declared, publisher, token):
                if entity is not None:
                    entity.undeclare()
            session.close()

    def _require_session(self) -> zenoh.Session:
        with self._lock:
            if self._session is None:
                raise RuntimeError("transport is not connected; call connect() first")
            return self._session

    def _find_replicas(
        self, session: zenoh.Session, timeout_s: float
    ) -> tuple[Namespace, list[Status]] | ErrorReply:
        """The namespace to open a session in, and its replicas in the order to try them."""
        if self.namespace is None:
            _await_link(session, timeout_s)
        header = pack_header(Header(SCHEMA_VERSION, MsgType.STATUS_REQUEST))
        replies = gather(
            session, self._status_key, encode_message(StatusRequest()), header, timeout_s
        )
        found: dict[Namespace, list[Status]] = {}
        error: ErrorReply | None = None
        for reply in replies:
            sample = reply.ok
            if sample is None:
                continue
            try:
                answer = _decode(sample, Status, self._limits)
                if isinstance(answer, ErrorReply):
                    error = answer
                    continue
                caps = answer.capabilities
                replica_segment(answer.replica_id)
                namespace = Namespace.of(caps.model_id, caps.revision, caps.task_slug)
                found.setdefault(namespace, []).append(answer)
            except WireError as exc:
                logger.warning("%s: unreadable status reply: %s", self.client_id, exc)
        if not found:
            if error is not None:
                return error
            raise ServerUnreachable(
                f"no policylink server answered at {self._status_key} within {timeout_s:g} s; "
                "check the endpoint, that the server is up, and model_id/revision/task_slug"
            )
        with self._lock:
            bound, bound_replica = self._namespace, self._replica
        if bound not in found and len(found) > 1:
            names = sorted(ns.base for ns in found)
            return ErrorReply(
                ErrorCode.BAD_KEY,
                f"several policies answer at {self._status_key}: {names}; set model_id, "
                "revision and task_slug to choose one",
            )
        namespace = bound if bound in found else next(iter(found))
        open_replicas = [status for status in found[namespace] if not status.draining]
        if not open_replicas:
            return ErrorReply(ErrorCode.DRAINING, f"every replica of {namespace.base} is draining")
        return namespace, placement_order(open_replicas, bound_replica, self.client_id)

    def _bind(self, session: zenoh.Session, namespace: Namespace, replica: str) -> None:
        """Declare what the robot needs for `replica`: its liveliness token in the namespace,
        the action subscriber, the replica's presence, the observation publisher."""
        with self._lock:
            if self._namespace == namespace and self._replica == replica:
                return
            old, self._declared = self._declared, []
            old_publisher, self._publisher = self._publisher, None
            old_token = self._token if self._namespace != namespace else None
            if old_token is not None:
                self._token = None
        for entity in (*old, old_publisher, old_token):
            if entity is not None:
                entity.undeclare()
        liveliness = session.liveliness()
        presence_key = namespace.replica_alive(replica)
        declared = [
            session.declare_subscriber(namespace.action(self.client_id, replica), self._on_action),
            liveliness.declare_subscriber(
                presence_key, lambda sample: self._on_presence(sample, presence_key), history=True
            ),
        ]
        publisher = declare_observation_publisher(session, namespace.obs(self.client_id, replica))
        with self._lock:
            if self._token is None:
                self._token = liveliness.declare_token(
                    namespace.robot_alive(self.client_id, self.instance)
                )
            self._namespace, self._replica = namespace, replica
            self._declared = declared
            self._publisher = publisher

    def _ask(
        self,
        session: zenoh.Session,
        key: str,
        body: Message,
        *,
        expected: type,
        timeout_s: float,
        episode_id: int = 0,
    ) -> Message | None:
        """One control query; the first readable answer, or None if none came in time."""
        header = Header(self._schema, body.MSG_TYPE, episode_id=episode_id)
        for reply in query(session, key, encode_message(body), pack_header(header), timeout_s):
            if reply.ok is None:
                continue
            try:
                return _decode(reply.ok, expected, self._limits)
            except WireError as exc:
                logger.warning("%s: unreadable reply on %s: %s", self.client_id, key, exc)
        return None

    def _on_action(self, sample: zenoh.Sample) -> None:
        try:
            header = unpack_header(_attachment(sample))
            msg = decode_expected(
                ActionChunk, header.msg_type, sample.payload.to_bytes(), self._limits
            )
        except WireError as exc:
            now = time.monotonic()
            with self._lock:
                self.malformed_replies += 1
                self._malformed_unlogged += 1
                if now - self._malformed_logged_s < MALFORMED_LOG_PERIOD_S:
                    return
                dropped, self._malformed_unlogged = self._malformed_unlogged, 0
                self._malformed_logged_s = now
            logger.warning(
                "%s: dropped %d unreadable action message(s) on %s, the latest: %s",
                self.client_id,
                dropped,
                sample.key_expr,
                exc,
            )
            return
        self.uplink.answered(header, msg)
        handler = self._on_reply
        if handler is not None:
            handler(header, msg)

    def _on_presence(self, sample: zenoh.Sample, key: str) -> None:
        alive = sample.kind == zenoh.SampleKind.PUT
        with self._lock:
            if self._replica is None or self._namespace is None:
                return
            if key != self._namespace.replica_alive(self._replica):
                return  # a replica this robot has left
            if str(sample.key_expr) != key:
                # A token declared on a wildcard (`@policylink/**`) matches the subscription
                # too; only the replica's own token says anything about the replica.
                return
            self._alive = alive
        logger.info("%s: replica presence %s", self.client_id, "up" if alive else "withdrawn")
        listener = self._presence_listener
        if listener is not None:
            listener()


def _attachment(sample: zenoh.Sample) -> bytes | None:
    attachment = sample.attachment
    return None if attachment is None else attachment.to_bytes()


def _decode(sample: zenoh.Sample, expected: type, limits: DecodeLimits) -> Message:
    header = unpack_header(_attachment(sample))
    return decode_expected(expected, header.msg_type, sample.payload.to_bytes(), limits)


def _await_link(session: zenoh.Session, timeout_s: float) -> None:
    """Wait (bounded) for the first link: a query sent before it exists reaches nobody, and
    the caller would back off for a whole retry period right after start-up. Later attempts
    skip this: the engine retries with backoff, and at once when the server's presence returns."""
    deadline = time.monotonic() + timeout_s
    info = session.info
    while not (info.routers_zid() or info.peers_zid()) and time.monotonic() < deadline:
        time.sleep(LINK_POLL_S)


def placement_order(replicas: list[Status], sticky: str | None, client_id: str) -> list[Status]:
    """The replica the robot was on first (a session stays where it was placed), then the
    least loaded: fewest sessions for their capacity, then the least busy device.

    Replicas alike (as many sessions for their capacity, devices within `BUSY_ALIKE` of the
    least busy of them) are ranked by a hash of robot and replica (rendezvous hashing), not by
    id or by the exact busy fraction: robots that place at the same moment (a fleet powering
    up, the robots of a replica that just died) read the same statuses, and one fixed order
    sent every one of them to the same replica until it refused them for capacity (nine robots
    starting together on three empty replicas landed 8, 1 and 0). The hash spreads them and
    still gives each robot one reproducible order.
    """
    least_busy: dict[float, float] = {}
    for status in replicas:
        busy = status.device_busy
        least_busy[status.load] = min(least_busy.get(status.load, busy), busy)

    def load(status: Status) -> tuple[bool, float, float, bytes]:
        busy = status.device_busy
        alike = busy <= least_busy[status.load] + BUSY_ALIKE
        spread = hashlib.blake2b(f"{client_id}/{status.replica_id}".encode(), digest_size=8)
        return (status.replica_id != sticky, status.load, 0.0 if alike else busy, spread.digest())

    return sorted(replicas, key=load)
