"""The OpenPI WebSocket surface: a second door into the same `ServerCore` as the Zenoh surface.

Every connection is a session of the core, so OpenPI clients share the scheduler, validation,
metrics and audit with Zenoh robots. The event loop only moves frames: it unpacks msgpack (a
bounded parse; arrays stay views of the frame's bytes) and hands the dict to
`ServerCore.submit_observation`, whose worker thread maps keys onto the policy's inputs, runs
the policy and calls back; the callback hops to the loop with `call_soon_threadsafe`. Session
control (open, close, reset), which takes the core's lock, runs on a small named executor, so
neither a forward nor a contended lock can stall the loop, and a slow client only ever waits
on its own reply.

Protocol (openpi-client's, plus vLLM-omni's session keys):
- on connect the server sends the metadata frame (`openpi_frames.metadata_frame`);
- each binary frame is an observation dict answered by one reply dict with `actions`;
- `{"endpoint": "reset"}` starts a new episode and is answered with an ack;
- a `session_id` key that differs from the previous one ends that session (its per-session
  state is freed) and opens a fresh one: an episode boundary;
- a bad frame is answered with a text frame and the connection stays usable;
- a frame over `max_frame_bytes` closes that connection with code 1009, nothing else.

What a peer can cost is bounded by the served policy: the frame cap follows its cameras unless
the manifest sets one (websockets refuses a longer frame from its header, before reading it),
an image whose shape is not its camera's is refused before it is converted, and NaN/Inf state
is an error (the worker's checks are those of the native path). With an API key, `wss://`
(`tls_cert`/`tls_key`) keeps it off the wire in clear text, and an address that keeps
presenting wrong keys is answered 429 for a while without its key being compared. `/healthz`
on this port is red while the inference pipeline is dead or the server drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import http
import itertools
import logging
import math
import secrets
import ssl
import threading
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from policylink.server.audit import audit_refusal
from policylink.server.openpi_settings import HEALTH_PATH, OpenPISettings
from policylink.server.rate_limit import FailureThrottle, RateLimiter
from policylink.wire.errors import ErrorCode, WireError
from policylink.wire.header import Header, MsgType
from policylink.wire.limits import DecodeLimits
from policylink.wire.messages import (
    ActionChunk,
    Capabilities,
    ErrorReply,
    Observation,
    Reset,
    SessionAck,
    SessionOpen,
)
from policylink.wire.openpi.frames import (
    INFER,
    RESET,
    action_reply,
    error_text,
    error_text_of,
    metadata_frame,
    reset_ack,
)
from policylink.wire.openpi.keymap import lookup
from policylink.wire.openpi.msgpack_numpy import packb, unpackb

if TYPE_CHECKING:
    from policylink.server.core import ServerCore

log = logging.getLogger(__name__)
TRANSPORT = "openpi"
SESSION_GONE = frozenset({ErrorCode.UNKNOWN_SESSION, ErrorCode.STALE_SESSION})
# The longest `session_id` a client may name its session with (it is kept with the session).
MAX_SESSION_KEY_CHARS = 256
# Refused frames logged per second across connections: a client streaming bad frames must not
# flood the log (the error frame still answers each one).
REFUSAL_LOG_LINES_PER_S = 10.0
_T = TypeVar("_T")


@dataclass
class _Connection:
    """One WebSocket connection's view of its current core session; owned by its handler task."""

    peer: str
    client_id: str
    closed: asyncio.Future[None]
    session_id: str = ""
    session_epoch: int = 0
    schema_version: int = 1
    episode_id: int = 0
    seq_id: int = 0
    client_key: str | None = None
    episode_start: bool = True
    prev_total_ms: float | None = None

    @property
    def reply_session(self) -> str:
        return self.client_key if self.client_key is not None else self.session_id


def _presented_key(headers: Mapping[str, str]) -> str | None:
    """The key of `Authorization: Api-Key <key>` (openpi-client) or `Bearer <key>`."""
    scheme, _, value = headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() in ("api-key", "bearer") and value.strip():
        return value.strip()
    return None


def server_ssl_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """TLS for `wss://`: the certificate chain and key from PEM files, TLS 1.2 at least."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            f"openpi.tls_cert {cert_file!r} / openpi.tls_key {key_file!r} cannot be loaded: {exc}"
        ) from None
    return context


class OpenPIServer:
    """Serves one `ServerCore` over the OpenPI protocol from its own event-loop thread.

    The thread `policylink-openpi` is owned by this object: `start()` returns once the socket
    listens (so `port` is known, also for `port: 0`), `stop()` closes every connection (code
    1001), closes their sessions and joins the thread. `healthy` (the app's pipeline check)
    turns this port's `/healthz` red; `limits` default to the core's, which follow the policy.
    """

    def __init__(
        self,
        core: ServerCore,
        capabilities: Capabilities,
        settings: OpenPISettings,
        api_key: str | None = None,
        *,
        limits: DecodeLimits | None = None,
        healthy: Callable[[], bool] | None = None,
    ) -> None:
        settings.check_key_transport(api_key is not None)
        self._core = core
        self._caps = capabilities
        self._settings = settings
        self._api_key = api_key
        self._healthy = healthy
        self._limits = (limits or core.decode_limits).for_array_frames(settings.max_frame_bytes)
        self._ssl = (
            server_ssl_context(settings.tls_cert, settings.tls_key)
            if settings.tls_cert and settings.tls_key
            else None
        )
        self._refusal_log = RateLimiter(REFUSAL_LOG_LINES_PER_S, REFUSAL_LOG_LINES_PER_S)
        self._auth_throttle = FailureThrottle(
            settings.auth_max_failures, settings.auth_failure_window_s, settings.auth_lockout_s
        )
        self._key_map = settings.key_map_spec().bind(capabilities.cameras, capabilities.state_dim)
        self._cameras = {camera.name: camera for camera in capabilities.cameras}
        self._paths = frozenset(settings.paths)
        self._client_ids = itertools.count(1)
        self._control = ThreadPoolExecutor(max_workers=2, thread_name_prefix="openpi-control")
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._withdrawn = threading.Event()
        self._start_error: BaseException | None = None
        self._port = 0

    @property
    def port(self) -> int:
        return self._port

    @property
    def max_frame_bytes(self) -> int:
        return self._limits.max_message_bytes

    @property
    def urls(self) -> list[str]:
        scheme = "wss" if self._ssl is not None else "ws"
        host, port = self._settings.host, self._port
        return [f"{scheme}://{host}:{port}{path}" for path in self._settings.paths]

    def start(self, timeout_s: float = 10.0) -> None:
        if self._thread is not None:
            raise RuntimeError("OpenPIServer.start() called twice")
        self._thread = threading.Thread(target=self._run, name="policylink-openpi", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"OpenPI server did not start listening within {timeout_s} s")
        if self._start_error is not None:
            self._thread.join()
            self._control.shutdown()
            raise OSError(
                f"OpenPI server cannot listen on {self._settings.host}:{self._settings.port}: "
                f"{self._start_error}"
            ) from self._start_error
        log.info("openpi: listening on %s", ", ".join(self.urls))

    def withdraw(self) -> None:
        """Refuse new connections (503) from now on; open ones keep being served until stop."""
        self._withdrawn.set()

    def stop(self) -> None:
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None and thread.is_alive():
            loop.call_soon_threadsafe(stopping.set)
        thread.join()
        self._control.shutdown(wait=True)
        self._thread = None

    def __enter__(self) -> OpenPIServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            server = await serve(
                self._handle,
                self._settings.host,
                self._settings.port,
                process_request=self._process_request,
                compression=None,  # permessage-deflate costs ~12 ms per 200 KB round trip
                max_size=self._limits.max_message_bytes,
                server_header=None,
                ssl=self._ssl,
            )
        except OSError as exc:
            self._start_error = exc
            self._ready.set()
            return
        self._port = _bound_port(server)
        self._ready.set()
        await self._stopping.wait()
        server.close(close_connections=True)
        await server.wait_closed()

    async def _in_control(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._control, fn, *args)

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        """Health, routing, API key and capacity, all answered before the upgrade."""
        path = urlsplit(request.path).path
        if path == HEALTH_PATH:
            if self._healthy is not None and not self._healthy():
                return connection.respond(
                    http.HTTPStatus.SERVICE_UNAVAILABLE, "inference pipeline down\n"
                )
            if self._core.draining or self._withdrawn.is_set():
                return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "draining\n")
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        if path not in self._paths:
            return connection.respond(
                http.HTTPStatus.NOT_FOUND,
                f"unknown path {path[:64]!r}; connect to one of {sorted(self._paths)}\n",
            )
        if self._api_key is not None:
            refused = self._check_api_key(connection, request, self._api_key)
            if refused is not None:
                return refused
        if self._withdrawn.is_set():
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "server is draining\n")
        refusal = await self._in_control(self._core.admission.refusal)
        if refusal is not None:
            # The code leads the text: policylink's OpenPI link reads it back from the body.
            return connection.respond(
                http.HTTPStatus.SERVICE_UNAVAILABLE, f"{refusal.code.value}: {refusal.message}\n"
            )
        return None

    def _check_api_key(
        self, connection: ServerConnection, request: Request, api_key: str
    ) -> Response | None:
        """None when the key is right; else 401, or 429 while the address is locked out."""
        address = str(connection.remote_address[0]) if connection.remote_address else "?"
        locked_s = self._auth_throttle.locked_for_s(address)
        if locked_s > 0:
            self._core.metrics.auth_failures.inc()
            audit_refusal(
                event="connection", outcome="auth_locked_out", client=address, transport=TRANSPORT
            )
            response = connection.respond(
                http.HTTPStatus.TOO_MANY_REQUESTS,
                f"too many failed API keys from {address}; try again in {math.ceil(locked_s)} s\n",
            )
            response.headers["Retry-After"] = str(math.ceil(locked_s))
            return response
        presented = _presented_key(request.headers)
        if presented is not None and hmac.compare_digest(presented.encode(), api_key.encode()):
            self._auth_throttle.succeeded(address)
            return None
        self._core.metrics.auth_failures.inc()
        if self._auth_throttle.failed(address):
            log.warning(
                "openpi: %s presented %d wrong or missing API keys; locked out for %g s",
                address,
                self._settings.auth_max_failures,
                self._settings.auth_lockout_s,
            )
        audit_refusal(
            event="connection", outcome="unauthorized", client=address, transport=TRANSPORT
        )
        return connection.respond(
            http.HTTPStatus.UNAUTHORIZED,
            "missing or wrong API key; send 'Authorization: Api-Key <key>' "
            "(openpi-client api_key=...) or 'Authorization: Bearer <key>'\n",
        )

    async def _handle(self, ws: ServerConnection) -> None:
        peer = ":".join(str(part) for part in ws.remote_address[:2])
        closed = asyncio.ensure_future(ws.wait_closed())
        # Random suffix: a Zenoh robot that names itself openpi-1 must not replace this session.
        client_id = f"openpi-{next(self._client_ids)}-{secrets.token_hex(3)}"
        conn = _Connection(peer, client_id, closed)
        if not await self._open_or_close(ws, conn, "connection opened"):
            closed.cancel()
            return
        # Why, for the log; the session closes as "connection" (a metrics label: a fixed word).
        why = "connection closed"
        try:
            await ws.send(packb(metadata_frame(self._caps, self._key_map, conn.session_id)))
            async for message in ws:
                if not await self._on_frame(ws, conn, message):
                    why = "session could not be reopened"
                    break
        except websockets.ConnectionClosed as exc:
            why = f"connection lost ({exc})"
            log.warning("openpi: session %s (%s): %s", conn.session_id, conn.peer, why)
        finally:
            if conn.session_id:
                await self._in_control(self._core.close_session, conn.session_id, "connection")
            closed.cancel()
            log.info("openpi: session %s (%s) closed: %s", conn.session_id, conn.peer, why)

    async def _open_session(
        self, conn: _Connection, why: str, replaced_reason: str = "replaced"
    ) -> ErrorReply | None:
        """Open a core session for whatever the policy needs: OpenPI clients cannot declare it."""
        request = SessionOpen(
            client_id=conn.client_id,
            action_names=list(self._caps.action_names),
            state_dim=self._caps.state_dim,
            cameras=list(self._caps.cameras),
            tags={
                "transport": TRANSPORT,
                "peer": conn.peer,
                "openpi_session": conn.client_key or "",
            },
        )
        open_session = partial(self._core.open_session, replaced_reason=replaced_reason)
        ack = await self._in_control(open_session, request, TRANSPORT)
        if not isinstance(ack, SessionAck):
            conn.session_id = ""
            log.warning("openpi: refused %s: %s", conn.peer, ack.message)
            return ack
        conn.session_id, conn.session_epoch = ack.session_id, ack.session_epoch
        conn.schema_version, conn.episode_id, conn.episode_start = ack.schema_version, 0, True
        conn.prev_total_ms = None
        for warning in ack.warnings:
            log.warning("openpi: session %s: %s", conn.session_id, warning)
        log.info("openpi: session %s opened for %s (%s)", conn.session_id, conn.peer, why)
        return None

    async def _on_frame(
        self, ws: ServerConnection, conn: _Connection, message: str | bytes
    ) -> bool:
        """Answer one frame; False only when the connection has no session left to serve."""
        if isinstance(message, str):
            await self._refuse(
                ws, conn, ErrorCode.BAD_MESSAGE, "send msgpack binary frames, not text"
            )
            return True
        try:
            payload = unpackb(message, self._limits)
        except WireError as exc:
            await self._refuse(ws, conn, exc.code, exc.message)
            return True
        if not isinstance(payload, dict):
            await self._refuse(
                ws,
                conn,
                ErrorCode.BAD_MESSAGE,
                f"a frame must be a map, got {type(payload).__name__}",
            )
            return True
        client_key = payload.get("session_id")
        if client_key is not None:
            if (
                not isinstance(client_key, str | int)
                or isinstance(client_key, bool)
                or len(str(client_key)) > MAX_SESSION_KEY_CHARS
            ):
                await self._refuse(
                    ws,
                    conn,
                    ErrorCode.BAD_MESSAGE,
                    f"session_id must be a string of at most {MAX_SESSION_KEY_CHARS} characters",
                )
                return True
            if not await self._follow_session(ws, conn, str(client_key)):
                return False
        endpoint = payload.get("endpoint", INFER)
        if endpoint == RESET:
            await self._reset(ws, conn)
        elif endpoint == INFER:
            await self._infer(ws, conn, payload)
        else:
            await self._refuse(
                ws,
                conn,
                ErrorCode.BAD_MESSAGE,
                f"endpoint {endpoint!r} is unknown; use 'infer' or 'reset'",
            )
        return True

    async def _follow_session(self, ws: ServerConnection, conn: _Connection, key: str) -> bool:
        """A new `session_id` ends the old session (freeing its state) and opens a fresh one.

        The fresh session replaces the old one in one step (same client): on a full server no
        other robot can take the slot between a close and an open."""
        if conn.client_key is None or conn.client_key == key:
            conn.client_key = key
            return True
        conn.client_key = key
        return await self._open_or_close(
            ws, conn, f"client switched to session_id {key[:64]!r}", "session_switch"
        )

    async def _reset(self, ws: ServerConnection, conn: _Connection) -> None:
        result = await self._in_control(
            self._core.reset_session, Reset(conn.session_id, conn.episode_id + 1)
        )
        if isinstance(result, ErrorReply) and result.code in SESSION_GONE:
            # Reaped while idle: a fresh session is a new episode, which is what was asked.
            if not await self._open_or_close(ws, conn, "reset after an idle close"):
                return
        elif isinstance(result, ErrorReply):
            await self._refuse(ws, conn, result.code, result.message)
            return
        else:
            conn.episode_id = result.episode_id
        conn.episode_start, conn.prev_total_ms = True, None
        await ws.send(packb(reset_ack(conn.reply_session, conn.episode_id)))

    async def _open_or_close(
        self, ws: ServerConnection, conn: _Connection, why: str, replaced_reason: str = "replaced"
    ) -> bool:
        """Open a session for this connection, or tell the client why not and hang up (1013)."""
        refusal = await self._open_session(conn, why, replaced_reason)
        if refusal is None:
            return True
        await ws.send(error_text_of(refusal))
        await ws.close(CloseCode.TRY_AGAIN_LATER, refusal.message[:120])
        return False

    async def _infer(self, ws: ServerConnection, conn: _Connection, payload: dict) -> None:
        received = time.perf_counter()
        result = await self._submit(conn, payload)
        if isinstance(result, ErrorReply) and result.code in SESSION_GONE:
            # The core closes sessions that were idle for session_idle_timeout_s; this
            # connection is still here, so it gets a fresh session and the frame is resent.
            if not await self._open_or_close(ws, conn, "observation after an idle close"):
                return
            result = await self._submit(conn, payload)
        if result is None:
            return
        if isinstance(result, ErrorReply):
            await self._refuse(ws, conn, result.code, result.message)
            return
        conn.episode_start = False
        total_ms = (time.perf_counter() - received) * 1e3
        await ws.send(packb(action_reply(result, conn.reply_session, total_ms, conn.prev_total_ms)))
        conn.prev_total_ms = (time.perf_counter() - received) * 1e3

    async def _submit(self, conn: _Connection, payload: dict) -> ActionChunk | ErrorReply | None:
        """Deposit on the core and await the worker's answer; None when the client hung up."""
        if self._core.draining:
            return ErrorReply(ErrorCode.DRAINING, "server is draining; connect to another replica")
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[ActionChunk | ErrorReply] = loop.create_future()

        def reply(_header: Header, result: ActionChunk | ErrorReply) -> None:
            """Runs on the inference worker: hop to the loop, never touch the socket here."""
            with contextlib.suppress(RuntimeError):  # the loop closed while in flight
                loop.call_soon_threadsafe(_settle, answer, result)

        conn.seq_id += 1
        header = Header(
            schema_version=conn.schema_version,
            msg_type=MsgType.OBSERVATION,
            seq_id=conn.seq_id,
            episode_id=conn.episode_id,
            client_mono_ns=time.monotonic_ns(),
            session_epoch=conn.session_epoch,
        )
        decode = partial(self._decode, episode_start=conn.episode_start)
        self._core.submit_observation(
            conn.session_id, header, payload, decode, reply, client=conn.client_id
        )
        timeout_s = self._settings.request_timeout_s
        # Waiting on the closed signal too lets a hung-up client free its handler (and session)
        # at once instead of after the timeout.
        await asyncio.wait({answer, conn.closed}, timeout=timeout_s, return_when=FIRST_COMPLETED)
        if answer.done():
            return answer.result()
        answer.cancel()
        if conn.closed.done():
            return None
        return ErrorReply(
            ErrorCode.INTERNAL, f"no chunk within {timeout_s:g} s; the server is overloaded"
        )

    def _decode(self, payload: object, episode_start: bool = False) -> Observation:
        """On the inference worker: every image's shape is checked against its camera before
        any is converted (a transpose or a float→uint8 pass costs what the image weighs)."""
        if not isinstance(payload, Mapping):
            raise WireError(f"a frame must be a map, got {type(payload).__name__}")
        for camera_name, key in self._key_map.images.items():
            value = lookup(payload, key)
            shape = getattr(value, "shape", None)
            if shape is None or len(shape) != 3:
                continue  # missing or malformed: to_observation names what is wrong
            camera = self._cameras[camera_name]
            sizes = (shape[1], shape[2]) if shape[0] == 3 and shape[2] != 3 else shape[:2]
            if (camera.height and camera.height != sizes[0]) or (
                camera.width and camera.width != sizes[1]
            ):
                raise WireError(
                    f"observation.images.{camera_name} is {sizes[0]}x{sizes[1]} ({key!r} has "
                    f"shape {tuple(shape)}); the policy expects {camera.height}x{camera.width}: "
                    "resize on the robot",
                    ErrorCode.CAMERA_MISMATCH,
                )
        return self._key_map.to_observation(payload, episode_start=episode_start)

    async def _refuse(
        self, ws: ServerConnection, conn: _Connection, code: ErrorCode, message: str
    ) -> None:
        if self._refusal_log.allow("frames"):
            log.warning(
                "openpi: session %s (%s): %s: %s", conn.session_id, conn.peer, code.value, message
            )
        await ws.send(error_text(code, message))


def _settle(future: asyncio.Future[_T], value: _T) -> None:
    if not future.done():  # a request that timed out is answered by nobody
        future.set_result(value)


def _bound_port(server: Server) -> int:
    for sock in server.sockets:
        return int(sock.getsockname()[1])
    raise OSError("the OpenPI server has no listening socket")
