"""Zenoh sessions and every QoS choice of the native protocol, in one greppable place.

Multicast scouting is off: endpoints are configuration, so a robot never attaches to whatever
router happens to answer on the LAN. Actions and observations use congestion DROP, never BLOCK:
one frozen robot uplink must not stall the server's publisher for every other robot.

Mutual TLS is set on both sides of a link: a process presents its certificate when it listens
and when it dials, so the same settings serve a router, a server in either mode and a robot;
such a process listens on its configured endpoints only (none for a robot). An
access-control list (`ZenohSettings.acl_file`) is read with Zenoh's own JSON5 parser and only
its `access_control` block is taken, so a file that is a whole `zenohd` configuration works and
cannot change anything else about this process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import zenoh

from policylink.net.zenoh_settings import ZenohSettings


def make_config(settings: ZenohSettings) -> zenoh.Config:
    """The Zenoh configuration `settings` describe; `ValueError` naming a file that is missing
    or an ACL that cannot be read."""
    settings.check_files()
    config = zenoh.Config()

    def put(path: str, value: Any) -> None:
        config.insert_json5(path, json.dumps(value))

    put("mode", settings.mode)
    put("scouting/multicast/enabled", False)
    put("transport/link/tx/lease", settings.lease_ms)
    # Zenoh's shared memory is on by default and used silently between processes of one host.
    # It is off unless asked for (`shared_memory`): a process that receives a peer's SHM buffers
    # keeps that peer's pool mapped for its own lifetime (zenoh#2787, open in 1.10), so a server
    # grew ~20 MiB with every robot process that came and went on its host. When on, Zenoh's
    # implicit pool (16 MiB per process, `transport_optimization`) stays off: observations are
    # written into a pool sized for them (`ShmSender`), and everything else is too small to gain.
    put("transport/shared_memory/enabled", settings.shared_memory)
    put("transport/shared_memory/transport_optimization/enabled", False)
    if settings.connect:
        put("connect/endpoints", list(settings.connect))
    if settings.listen or settings.tls_mtls:
        # With mutual TLS, only the configured endpoints listen: a peer's default listener is
        # plain TCP on every interface, and gossip would link two robots directly over it, past
        # the certificates and the access control of the process they both dial.
        put("listen/endpoints", list(settings.listen))
    tls = "transport/link/tls"
    if settings.tls_root_ca:
        put(f"{tls}/root_ca_certificate", settings.tls_root_ca)
    if settings.tls_cert and settings.tls_key:
        put(f"{tls}/listen_certificate", settings.tls_cert)
        put(f"{tls}/listen_private_key", settings.tls_key)
        if settings.tls_mtls:
            put(f"{tls}/enable_mtls", True)
            put(f"{tls}/connect_certificate", settings.tls_cert)
            put(f"{tls}/connect_private_key", settings.tls_key)
    if settings.acl_file:
        config.insert_json5("access_control", load_access_control(settings.acl_file))
    for path, value in settings.json5.items():
        put(path, value)
    return config


def load_access_control(path: str) -> str:
    """The `access_control` block of the Zenoh configuration in `path`, as JSON.

    Refuses a file whose block is absent or disabled: a process told to enforce an ACL must not
    start open because the file was the wrong one.
    """
    text = Path(path).read_text()
    try:
        block = zenoh.Config.from_json5(text).get_json("access_control")
    except zenoh.ZError as exc:
        raise ValueError(f"zenoh.acl_file {path} is not a Zenoh configuration: {exc}") from None
    if not json.loads(block).get("enabled"):
        raise ValueError(
            f"zenoh.acl_file {path} holds no enabled access_control block; write it with "
            "`policylink certs`, or set access_control.enabled: true"
        )
    return block


def open_zenoh_session(settings: ZenohSettings) -> zenoh.Session:
    return zenoh.open(make_config(settings))


class ShmSender:
    """Puts bodies through Zenoh's shared memory where it can, as plain bytes where it cannot.

    The pool is made at the first put, sized for `POOL_BODIES` bodies of that size (one request
    is in flight per robot, so a few buffers are plenty), and it is the cost a receiver pays for
    each sending process it ever saw (zenoh#2787). Zenoh itself falls back to copying a buffer
    onto the link when the receiver is on another host or has shared memory off; this class
    falls back to plain bytes when no pool can be made (no /dev/shm, a locked-memory limit) or a
    body does not fit. Counters say which path each put took; the receiver's own observable is
    `ZBytes.as_shm()`. One thread puts at a time (the caller's worker).
    """

    POOL_BODIES = 4
    MIN_POOL_BYTES = 1 << 20

    def __init__(self) -> None:
        self._provider: zenoh.shm.ShmProvider | None = None
        self._unavailable = False
        self.shm_puts = 0
        self.plain_puts = 0

    def put(self, publisher: zenoh.Publisher, body: bytes, attachment: bytes) -> None:
        buffer = self._buffer(body)
        if buffer is None:
            self.plain_puts += 1
            publisher.put(body, attachment=attachment)
            return
        buffer[:] = body
        self.shm_puts += 1
        publisher.put(zenoh.ZBytes(buffer), attachment=attachment)

    def _buffer(self, body: bytes) -> zenoh.shm.ZShmMut | None:
        if self._unavailable or not body:
            return None
        try:
            if self._provider is None:
                size = max(self.MIN_POOL_BYTES, self.POOL_BODIES * len(body))
                self._provider = zenoh.shm.ShmProvider.default_backend(size)
            # Buffers the receiver has released are reclaimed before giving up on this body.
            return self._provider.alloc(len(body), zenoh.shm.GarbageCollect())
        except (zenoh.ZError, AttributeError, OSError):  # a build without SHM: AttributeError
            self._unavailable = self._provider is None
            return None


def put_action(session: zenoh.Session, key: str, payload: bytes, attachment: bytes) -> None:
    """Server → robot: reliable (the default) and urgent, but dropped rather than blocking on a
    dead robot. A put, not a declared publisher: see `ZenohServerSurface._reply_to`."""
    session.put(
        key,
        payload,
        attachment=attachment,
        congestion_control=zenoh.CongestionControl.DROP,
        priority=zenoh.Priority.REAL_TIME,
        express=True,
    )


def declare_observation_publisher(session: zenoh.Session, key: str) -> zenoh.Publisher:
    """Robot → server: a newer observation supersedes an older one, so drop under congestion."""
    return session.declare_publisher(
        key,
        congestion_control=zenoh.CongestionControl.DROP,
        priority=zenoh.Priority.INTERACTIVE_HIGH,
        express=True,
        reliability=zenoh.Reliability.RELIABLE,
    )


def query(
    session: zenoh.Session, key: str, payload: bytes, attachment: bytes, timeout_s: float
) -> list[zenoh.Reply]:
    """A control query with an explicit timeout; one responder, so no consolidation."""
    return _get(
        session, key, payload, attachment, timeout_s, target=zenoh.QueryTarget.BEST_MATCHING
    )


def gather(
    session: zenoh.Session, key: str, payload: bytes, attachment: bytes, timeout_s: float
) -> list[zenoh.Reply]:
    """A query every matching queryable answers (every replica's status), every reply kept."""
    return _get(session, key, payload, attachment, timeout_s, target=zenoh.QueryTarget.ALL)


def _get(
    session: zenoh.Session,
    key: str,
    payload: bytes,
    attachment: bytes,
    timeout_s: float,
    *,
    target: zenoh.QueryTarget,
) -> list[zenoh.Reply]:
    replies = session.get(
        key,
        payload=payload,
        attachment=attachment,
        timeout=timeout_s,
        consolidation=zenoh.ConsolidationMode.NONE,
        target=target,
        congestion_control=zenoh.CongestionControl.DROP,
        priority=zenoh.Priority.INTERACTIVE_HIGH,
    )
    return list(replies)
