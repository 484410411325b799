"""Opening a session and checking the server's answer against what the robot has.

The server checks the contract too, but the robot is the side that moves: it re-checks the
ack before executing a single chunk. On a reconnect the ack is also compared with the first
session's, so a server that came back serving another model, revision or action layout is a
contract violation (fatal), never a silent switch to wrong-model chunks.
"""

from __future__ import annotations

import time

from policylink.client.config import ClientConfig
from policylink.client.link import ClientLink, ServerUnreachable
from policylink.client.robot import RobotLayout
from policylink.wire.errors import ErrorCode
from policylink.wire.messages import ErrorReply, SessionAck, SessionOpen
from policylink.wire.schema import SCHEMA_MAX, SCHEMA_MIN

# Refusals that retrying cannot fix: the robot and the served policy do not fit together.
CONTRACT_CODES = frozenset(
    {
        ErrorCode.ACTION_MISMATCH,
        ErrorCode.CAMERA_MISMATCH,
        ErrorCode.STATE_MISMATCH,
        ErrorCode.UNSUPPORTED_SCHEMA,
        ErrorCode.FPS_MISMATCH,
        ErrorCode.TASK_PINNED,
        ErrorCode.UNAUTHORIZED,
        ErrorCode.BAD_KEY,
    }
)


class HandshakeError(RuntimeError):
    """The server refused the session, or its answer does not fit this robot.

    `contract` is True when retrying cannot help (layout or model mismatch); False for
    refusals that may clear up (capacity, draining).
    """

    def __init__(self, message: str, code: ErrorCode | None = None, *, contract: bool) -> None:
        super().__init__(message)
        self.code = code
        self.contract = contract


def session_request(config: ClientConfig, layout: RobotLayout) -> SessionOpen:
    return SessionOpen(
        client_id=config.client_id,
        action_names=list(layout.action_names),
        state_dim=layout.state_dim,
        cameras=list(layout.cameras),
        fps=config.fps,
        task=config.task,
        rtc=config.rtc,
        schema_min=SCHEMA_MIN,
        schema_max=SCHEMA_MAX,
        tags=dict(config.tags),
    )


def request_session(
    transport: ClientLink,
    config: ClientConfig,
    layout: RobotLayout,
    first: SessionAck | None = None,
    timeout_s: float | None = None,
) -> SessionAck:
    """Handshake and validate; raises `ServerUnreachable` or `HandshakeError`.

    `first` is the ack of the engine's first session, which a reopened one must match.
    `timeout_s` defaults to `handshake_timeout_s`.
    """
    timeout_s = config.handshake_timeout_s if timeout_s is None else timeout_s
    reply = transport.handshake(session_request(config, layout), timeout_s)
    if isinstance(reply, ErrorReply):
        raise HandshakeError(
            f"server refused the session ({reply.code.value}): {reply.message}",
            reply.code,
            contract=reply.code in CONTRACT_CODES,
        )
    problem = contract_problem(reply, layout, first)
    if problem:
        raise HandshakeError(problem, contract=True)
    return reply


def connect_session(transport: ClientLink, config: ClientConfig, layout: RobotLayout) -> SessionAck:
    """The first handshake: retried with backoff while nobody answers, up to
    `connect_timeout_s`; a refusal or a contract mismatch raises at once, before the robot
    moves.
    """
    deadline = time.monotonic() + config.connect_timeout_s
    backoff = config.reconnect_initial_backoff_s
    while True:
        left = deadline - time.monotonic()
        try:
            return request_session(
                transport,
                config,
                layout,
                timeout_s=max(0.05, min(config.handshake_timeout_s, left)),
            )
        except ServerUnreachable as exc:
            if time.monotonic() + backoff > deadline:
                raise ServerUnreachable(
                    f"{exc} (gave up after connect_timeout_s={config.connect_timeout_s:g})"
                ) from None
            time.sleep(backoff)
            backoff = min(backoff * 2, config.reconnect_max_backoff_s)


def contract_problem(ack: SessionAck, layout: RobotLayout, first: SessionAck | None) -> str:
    """Why chunks from this session must not drive this robot, or '' if they may."""
    caps = ack.capabilities
    problem = layout.mismatch("the served policy", caps.action_names, caps.state_dim, caps.cameras)
    if problem:
        return problem
    if not SCHEMA_MIN <= ack.schema_version <= SCHEMA_MAX:
        return (
            f"the server chose schema {ack.schema_version}, outside this client's "
            f"[{SCHEMA_MIN}, {SCHEMA_MAX}]; upgrade the client"
        )
    if first is None:
        return ""
    before = first.capabilities
    for name in ("model_id", "revision", "task_slug", "chunk_size"):
        old, new = getattr(before, name), getattr(caps, name)
        if old != new:
            return (
                f"the server came back with {name}={new!r} where this run started with "
                f"{old!r}; refusing chunks from a different policy"
            )
    if ack.rtc_enabled != first.rtc_enabled:
        return (
            f"the server came back with RTC {'on' if ack.rtc_enabled else 'off'} where this run "
            "started otherwise; the merge semantics cannot change mid-run"
        )
    return ""
