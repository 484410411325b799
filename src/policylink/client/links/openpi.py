"""The robot's OpenPI surface: `RemoteEngine` driving any OpenPI WebSocket server.

A policylink server, a stock openpi `serve_policy.py`, or vLLM-omni's realtime endpoint all
speak the same frames (see `openpi_frames`). OpenPI is strictly request-then-reply on one
connection, so replies are matched to requests in send order: every frame sent puts its
header (or a reset waiter) on a FIFO, and the receiver thread pops one entry per frame it
reads, echoing that header to the engine. The engine's merge rules then work unchanged.

What the protocol cannot carry is dropped, and said once: the inference delay and the RTC
prefix (so the session runs in append mode), and the episode id (episode boundaries reach a
policylink server as `{"endpoint": "reset"}`; a stock server has no such endpoint, so there the
boundary is the robot's alone). A stock server declares nothing about its policy, so its
session echoes the robot's own layout, and the width of every chunk is checked instead.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import os
import threading
import uuid
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import websockets
import websockets.sync.client
from websockets.exceptions import InvalidHandshake, InvalidStatus

from policylink.client.link import ReplyHandler, ServerUnreachable
from policylink.wire.errors import ErrorCode, WireError
from policylink.wire.header import Header, MsgType
from policylink.wire.limits import DEFAULT_LIMITS, DecodeLimits, MiB
from policylink.wire.messages import (
    ActionChunk,
    CameraSpec,
    Capabilities,
    ErrorReply,
    Observation,
    Reset,
    ResetAck,
    SessionAck,
    SessionOpen,
)
from policylink.wire.openpi.frames import (
    RESET,
    RESPONSE_KEYS,
    SERVER_NAME,
    chunk_from_reply,
    parse_error_text,
)
from policylink.wire.openpi.keymap import BoundKeyMap, KeyMap
from policylink.wire.openpi.msgpack_numpy import packb, unpackb
from policylink.wire.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from policylink.client.config import ClientConfig

logger = logging.getLogger(__name__)

CANNOT_CARRY = (
    "the OpenPI protocol carries no inference delay, RTC prefix or episode id: chunks are "
    "appended to the queue (no real-time chunking)"
)
CLOSE_TIMEOUT_S = 1.0
# websockets 17 warns about a connection used outside a `with` block unless told `legacy=True`
# (the link outlives the call that dials it); 16.1, its last release for Python 3.10, has
# neither the flag nor the warning.
_DIRECT: dict[str, bool] = (
    {"legacy": True}
    if "legacy" in inspect.signature(websockets.sync.client.connect).parameters
    else {}
)
_epochs = itertools.count(1)


@dataclass
class _Expected:
    """What the next unread frame answers: an observation (its header) or a reset."""

    header: Header | None = None
    reset: Future[ResetAck | ErrorReply] | None = None
    episode_id: int = 0


@dataclass
class _Link:
    """One WebSocket connection and what was learnt in its handshake.

    `alive` only ever goes from True to False (the receiver saw the close, or a send failed);
    a bool store is atomic, so it needs no lock.
    """

    ws: websockets.sync.client.ClientConnection
    key_map: BoundKeyMap
    action_dim: int
    session_id: str
    supports_reset: bool
    expected: deque[_Expected] = field(default_factory=deque)
    alive: bool = True


def _str_list(value: object) -> list[str] | None:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return None


def _int(meta: Mapping[str, Any], key: str, default: int) -> int:
    value = meta.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _cameras(meta: Mapping[str, Any], default: list[CameraSpec]) -> list[CameraSpec]:
    raw = meta.get("cameras")
    if not isinstance(raw, list):
        return list(default)
    cameras = []
    for item in raw:
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            cameras.append(
                CameraSpec(item["name"], _int(item, "height", 0), _int(item, "width", 0))
            )
    return cameras


def capabilities_from_metadata(meta: Mapping[str, Any], request: SessionOpen) -> Capabilities:
    """What the server declares, with the robot's own layout wherever it declares nothing."""
    text = {key: meta.get(key) for key in ("model_id", "revision", "task_slug", "server_version")}
    fps = meta.get("fps")
    return Capabilities(
        model_id=text["model_id"] if isinstance(text["model_id"], str) else "openpi",
        revision=text["revision"] if isinstance(text["revision"], str) else "",
        task_slug=text["task_slug"] if isinstance(text["task_slug"], str) else "",
        action_names=_str_list(meta.get("action_names")) or list(request.action_names),
        chunk_size=_int(meta, "action_horizon", 0),
        state_dim=_int(meta, "state_dim", request.state_dim),
        state_names=_str_list(meta.get("state_names")) or [],
        cameras=_cameras(meta, request.cameras),
        trained_fps=float(fps)
        if isinstance(fps, int | float) and not isinstance(fps, bool)
        else 0.0,
        server_version=text["server_version"] if isinstance(text["server_version"], str) else "",
    )


def key_map_from_metadata(meta: Mapping[str, Any]) -> BoundKeyMap | None:
    """The keys a policylink server says it reads, so its clients need no key-map setting."""
    described = meta.get("key_map")
    if not isinstance(described, Mapping):
        return None
    try:
        state = tuple((str(part["key"]), int(part["size"])) for part in described["state"])
        return BoundKeyMap(
            name=str(described.get("name", "server")),
            state=state,
            images={str(k): str(v) for k, v in dict(described.get("images", {})).items()},
            image_layout=str(described.get("image_layout", "hwc")),
            prompt=str(described.get("prompt", "prompt")),
        )
    except (KeyError, TypeError, ValueError):
        return None


class OpenPILink:
    """`ClientLink` over OpenPI; one instance per robot, reused across reconnects.

    `key_map` (a preset name or fields, see `openpi_keymap`) says how observations are laid
    out for the server; unset, a policylink server's advertised keys are used, else `aloha`.
    `response_key` is where replies carry the chunk: `actions` (openpi, policylink,
    vLLM-omni) or `action` (Cosmos-style servers). The receiver thread `policylink-openpi-rx`
    is owned by the current link and ends when it closes.
    """

    def __init__(
        self,
        url: str,
        *,
        key_map: str | Mapping[str, Any] | KeyMap | None = None,
        response_key: str = "actions",
        api_key: str | None = None,
        max_frame_bytes: int = 32 * MiB,
        limits: DecodeLimits = DEFAULT_LIMITS,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(f"OpenPI url must start with ws:// or wss://, got {url!r}")
        if response_key not in RESPONSE_KEYS:
            raise ValueError(
                f"response_key must be one of {list(RESPONSE_KEYS)}, got {response_key!r}"
            )
        self.url = url
        self._key_map = None if key_map is None else KeyMap.from_config(key_map)
        self._response_key = response_key
        self._api_key = api_key
        self._max_frame_bytes = max_frame_bytes
        self._limits = limits
        # _lock guards _link, _receiver and _on_reply. _send_lock makes "append to the FIFO,
        # then send" one step, so FIFO order is wire order; the deque's own appends and pops
        # are atomic, so the receiver pops without it.
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._link: _Link | None = None
        self._receiver: threading.Thread | None = None
        self._on_reply: ReplyHandler | None = None
        self._warned_lost_fields = False
        self.unexpected_frames = 0

    @classmethod
    def from_config(
        cls, config: ClientConfig, environ: Mapping[str, str] | None = None
    ) -> OpenPILink:
        """The API key is read here, once, from the variable `config.api_key_env` names."""
        api_key = None
        if config.api_key_env:
            api_key = (os.environ if environ is None else environ).get(config.api_key_env, "")
            if not api_key.strip():
                raise ValueError(
                    f"api_key_env names {config.api_key_env!r}, but that environment variable "
                    "is unset or empty"
                )
        return cls(
            config.endpoint,
            key_map=config.openpi_key_map or None,
            response_key=config.openpi_response_key,
            api_key=api_key.strip() if api_key else None,
        )

    def connect(self, on_reply: ReplyHandler) -> None:
        with self._lock:
            if self._on_reply is not None:
                raise RuntimeError("transport already connected")
            self._on_reply = on_reply

    def handshake(self, request: SessionOpen, timeout_s: float) -> SessionAck | ErrorReply:
        """Dial, read the metadata frame, and describe the server as a session ack."""
        with self._lock:
            if self._on_reply is None:
                raise RuntimeError("transport is not connected; call connect() first")
        self._drop_link("re-handshake")
        opened = self._dial(timeout_s)
        if isinstance(opened, ErrorReply):
            return opened
        ws, meta = opened
        caps = capabilities_from_metadata(meta, request)
        key_map = self._bind_key_map(meta, request)
        if isinstance(key_map, ErrorReply):
            ws.close()
            return key_map
        is_policylink = meta.get("server") == SERVER_NAME
        session_id = meta.get("session_id")
        link = _Link(
            ws=ws,
            key_map=key_map,
            action_dim=len(caps.action_names),
            session_id=session_id if isinstance(session_id, str) else uuid.uuid4().hex,
            supports_reset=is_policylink,
        )
        warnings = [CANNOT_CARRY]
        if _str_list(meta.get("action_names")) is None:
            warnings.append(
                "the server declares no action names: chunk columns are taken to be in this "
                f"robot's order {list(request.action_names)}; only their count is checked"
            )
        receiver = threading.Thread(
            target=self._receive, args=(link,), name="policylink-openpi-rx", daemon=True
        )
        with self._lock:
            self._link, self._receiver = link, receiver
        receiver.start()
        return SessionAck(
            session_id=link.session_id,
            session_epoch=next(_epochs) % 2**32,
            schema_version=SCHEMA_VERSION,
            capabilities=caps,
            rtc_enabled=False,
            warnings=warnings,
        )

    def send(self, header: Header, obs: Observation) -> None:
        link = self._require_link()
        self._warn_lost_fields(obs)
        frame = packb(link.key_map.to_openpi(obs))
        with self._send_lock:
            link.expected.append(_Expected(header=header))
            try:
                link.ws.send(frame)
            except websockets.ConnectionClosed as exc:
                # The engine times this request out; server_alive() now says why.
                link.alive = False
                logger.warning("OpenPI send to %s failed: %s", self.url, exc)

    def reset(self, request: Reset, timeout_s: float) -> ResetAck | ErrorReply | None:
        link = self._require_link()
        if not link.supports_reset:
            return ResetAck(request.session_id, request.episode_id)
        waiter: Future[ResetAck | ErrorReply] = Future()
        with self._send_lock:
            link.expected.append(_Expected(reset=waiter, episode_id=request.episode_id))
            try:
                link.ws.send(packb({"endpoint": RESET}))
            except websockets.ConnectionClosed:
                link.alive = False
                return None
        try:
            return waiter.result(timeout_s)
        except FutureTimeout:
            return None

    def server_alive(self) -> bool:
        with self._lock:
            return self._link is not None and self._link.alive

    def close(self) -> None:
        self._drop_link("client closed")
        with self._lock:
            self._on_reply = None

    # Internals ---------------------------------------------------------------------------

    def _require_link(self) -> _Link:
        with self._lock:
            link = self._link
        if link is None:
            raise RuntimeError("send() before a successful handshake")
        return link

    def _drop_link(self, reason: str) -> None:
        with self._lock:
            link, self._link = self._link, None
            receiver, self._receiver = self._receiver, None
        if link is None:
            return
        link.alive = False
        link.ws.close(reason=reason)
        if receiver is not None:
            receiver.join(CLOSE_TIMEOUT_S + 1.0)

    def _dial(
        self, timeout_s: float
    ) -> tuple[websockets.sync.client.ClientConnection, Mapping[str, Any]] | ErrorReply:
        headers = {"Authorization": f"Api-Key {self._api_key}"} if self._api_key else None
        try:
            ws = websockets.sync.client.connect(
                self.url,
                additional_headers=headers,
                compression=None,  # permessage-deflate costs ~12 ms per 200 KB round trip
                max_size=self._max_frame_bytes,
                open_timeout=timeout_s,
                close_timeout=CLOSE_TIMEOUT_S,
                **_DIRECT,
            )
        except InvalidStatus as exc:
            return _refusal(exc.response.status_code, exc.response.body, self.url)
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise ServerUnreachable(f"no OpenPI server at {self.url}: {exc}") from None
        try:
            first = ws.recv(timeout=timeout_s)
        except TimeoutError:
            ws.close()
            raise ServerUnreachable(f"{self.url} sent no metadata within {timeout_s:g} s") from None
        except websockets.ConnectionClosed as exc:
            raise ServerUnreachable(f"{self.url} closed the connection: {exc}") from None
        if isinstance(first, str):
            ws.close()
            return parse_error_text(first)
        try:
            meta = unpackb(first, self._limits)
        except WireError as exc:
            ws.close()
            return ErrorReply(exc.code, f"unreadable metadata from {self.url}: {exc.message}")
        return ws, meta if isinstance(meta, Mapping) else {}

    def _bind_key_map(
        self, meta: Mapping[str, Any], request: SessionOpen
    ) -> BoundKeyMap | ErrorReply:
        advertised = key_map_from_metadata(meta) if self._key_map is None else None
        if advertised is not None:
            return advertised
        try:
            return (self._key_map or KeyMap.from_config(None)).bind(
                request.cameras, request.state_dim
            )
        except ValueError as exc:
            return ErrorReply(ErrorCode.BAD_KEY, f"OpenPI key map does not fit this robot: {exc}")

    def _warn_lost_fields(self, obs: Observation) -> None:
        lost = obs.inference_delay_steps > 0 or obs.prefix_model is not None
        if lost and not self._warned_lost_fields:
            self._warned_lost_fields = True
            logger.warning("OpenPI link to %s: %s", self.url, CANNOT_CARRY)

    def _receive(self, link: _Link) -> None:
        try:
            for frame in link.ws:
                self._dispatch(link, frame)
        except websockets.ConnectionClosed as exc:
            logger.warning("OpenPI link to %s lost: %s", self.url, exc)
        finally:
            link.alive = False
            while link.expected:
                waiter = link.expected.popleft().reset
                if waiter is not None and not waiter.done():
                    waiter.set_result(ErrorReply(ErrorCode.INTERNAL, "connection closed"))

    def _dispatch(self, link: _Link, frame: str | bytes) -> None:
        """One frame answers the oldest unanswered request."""
        reply = self._read(link, frame)
        expected = link.expected.popleft() if link.expected else None
        if expected is None or (expected.header is None and expected.reset is None):
            self.unexpected_frames += 1
            logger.warning("OpenPI link to %s: a frame answered no request; dropped", self.url)
            return
        if expected.reset is not None:
            if isinstance(reply, dict) and reply.get("endpoint") == RESET:
                expected.reset.set_result(ResetAck(link.session_id, expected.episode_id))
            elif isinstance(reply, ErrorReply):
                expected.reset.set_result(reply)
            else:
                expected.reset.set_result(
                    ErrorReply(ErrorCode.BAD_MESSAGE, "the server answered a reset with a chunk")
                )
            return
        if isinstance(reply, dict):
            try:
                reply = chunk_from_reply(reply, self._response_key, link.action_dim)
            except WireError as exc:
                reply = ErrorReply(exc.code, exc.message)
        with self._lock:
            handler = self._on_reply
        if handler is not None:
            msg_type = MsgType.ACTION_CHUNK if isinstance(reply, ActionChunk) else MsgType.ERROR
            handler(expected.header.echo(msg_type), reply)

    def _read(self, link: _Link, frame: str | bytes) -> dict | ErrorReply:
        if isinstance(frame, str):
            return parse_error_text(frame)
        try:
            decoded = unpackb(frame, self._limits)
        except WireError as exc:
            return ErrorReply(exc.code, f"unreadable reply: {exc.message}")
        if not isinstance(decoded, dict):
            return ErrorReply(ErrorCode.BAD_MESSAGE, "reply is not a map")
        return decoded


def _refusal(status: int, body: bytes | None, url: str) -> ErrorReply:
    """An HTTP refusal of the upgrade as the error code the engine acts on."""
    text = (body or b"").decode("utf-8", "replace").strip()
    if status in (401, 403):
        return ErrorReply(ErrorCode.UNAUTHORIZED, f"{url} refused the API key: {text}")
    if status == 404:
        return ErrorReply(ErrorCode.BAD_KEY, f"{url} serves no OpenPI endpoint there: {text}")
    if status == 429:
        return ErrorReply(ErrorCode.RATE_LIMITED, f"{url} locked this address out: {text}")
    if status == 503:
        code = ErrorCode.CAPACITY if "capacity" in text else ErrorCode.DRAINING
        return ErrorReply(code, f"{url} is unavailable: {text}")
    return ErrorReply(ErrorCode.INTERNAL, f"{url} refused the connection (HTTP {status}): {text}")
