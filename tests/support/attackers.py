"""Attackers that put hostile shots on the wire and count, per attack class, what answered.

One sender per surface — `ZenohAttacker` (puts, queries and liveliness tokens over raw Zenoh),
`OpenPIAttacker` (WebSocket frames), `HttpAttacker` (raw bytes on the HTTP ports) — each
bounded in what it keeps (unanswered queries, held tokens and sockets), so a long flood costs
the attacker a fixed amount of memory. `Senders` dispatches the shots of
`tests.support.hostile_traffic`'s attack classes to them, and `Tally` counts per class what
was sent and how the server answered (`format_table` prints it).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np
import zenoh

from policylink import wire
from policylink.net.zenoh_session import open_zenoh_session
from policylink.net.zenoh_settings import ZenohSettings
from tests.support.hostile_traffic import (
    AttackClass,
    FrameShot,
    HttpShot,
    OwnSession,
    Shot,
    Target,
    ZenohShot,
    control_body,
    header,
    make_query,
)

# Live liveliness tokens one attacker holds at most; the oldest is dropped to declare another.
MAX_TOKENS = 256
# Queries one attacker keeps unanswered at most; a flood must not queue unbounded in the sender.
MAX_INFLIGHT_QUERIES = 64
QUERY_TIMEOUT_S = 5.0
# Replies on action keys queued in Zenoh at most (oldest dropped), and sends between drains.
ACTION_QUEUE = 4096
POLL_EVERY = 128
# Raw HTTP connections held open half-written (a slow client) at most, per attacker.
MAX_HELD_SOCKETS = 64
SOCKET_TIMEOUT_S = 3.0
FRAME_TIMEOUT_S = 10.0


# --- counting ----------------------------------------------------------------------------------


class Tally:
    """Per attack class: messages sent and what came back. Written from senders and from
    transport callbacks (Zenoh's threads), so one lock guards the counter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def add(self, label: str, outcome: str, count: int = 1) -> None:
        with self._lock:
            self._counts[(label, outcome)] += count

    def get(self, label: str, outcome: str) -> int:
        with self._lock:
            return self._counts[(label, outcome)]

    def by_class(self) -> dict[str, dict[str, int]]:
        with self._lock:
            items = list(self._counts.items())
        table: dict[str, dict[str, int]] = {}
        for (label, outcome), count in sorted(items):
            table.setdefault(label, {})[outcome] = count
        return table

    def merge(self, other: dict[str, dict[str, int]]) -> None:
        for label, outcomes in other.items():
            for outcome, count in outcomes.items():
                self.add(label, outcome, count)

    def sent(self) -> int:
        with self._lock:
            return sum(n for (_, outcome), n in self._counts.items() if outcome == "sent")


# --- senders -------------------------------------------------------------------------------------


class ZenohAttacker:
    """A raw Zenoh peer that sends `ZenohShot`s, keeps its own sessions open, and listens to
    every robot's action key so a chunk holding NaN/Inf, if any ever left the server, is seen.

    Queries go out without waiting (at most `MAX_INFLIGHT_QUERIES` unanswered); their answers
    are counted per class as `answer:<msg type>` or `answer:error:<code>`. Liveliness tokens
    are held (at most `MAX_TOKENS`, oldest dropped first) until `close()`.
    """

    def __init__(
        self,
        endpoint: str,
        target: Target,
        tally: Tally,
        *,
        every_robot: bool = True,
        wait_for_answers: bool = True,
        tokens: bool = True,
    ) -> None:
        """`every_robot`: listen to every robot's action key (else only the attacker's own).
        `wait_for_answers` False makes a flooder: with `MAX_INFLIGHT_QUERIES` unanswered it
        skips a query (counted as `skipped:backlog`) instead of waiting for one, and a put
        that finds its queue full is dropped at once instead of after Zenoh's default wait (1
        ms, 50 ms for a message large enough to be fragmented) under DROP congestion control,
        which every publisher of the protocol uses. `tokens` False counts liveliness-token shots
        as `skipped:token_churn` instead of declaring them (what the fuzz benchmark's
        `--without-token-churn` leaves out, to tell Zenoh's cost from the server's)."""
        self.target, self.tally = target, tally
        self._tokens_on = tokens
        self._wait_for_answers = wait_for_answers
        drop = "transport/link/tx/queue/congestion_control/drop"
        json5 = (
            {}
            if wait_for_answers
            else {f"{drop}/wait_before_drop": 0, f"{drop}/max_wait_before_drop_fragments": 0}
        )
        self.session = open_zenoh_session(
            ZenohSettings(mode="client", connect=[endpoint], json5=json5)
        )
        self._inflight = threading.BoundedSemaphore(MAX_INFLIGHT_QUERIES)
        self._tokens: collections.deque[zenoh.LivelinessToken] = collections.deque()
        self._lock = threading.Lock()  # guards `target.own` against the reply callbacks
        self.non_finite_chunks = 0
        # What the server published on robots' action keys, by message type or error code.
        self.replies_seen: collections.Counter[str] = collections.Counter()
        # Answers on these keys renew an own session or move its episode (`_take_answer`).
        self._own_keys = {
            key: client
            for client in target.own_ids
            for key in (
                target.namespace.session(client, target.replica),
                target.namespace.reset(client, target.replica),
            )
        }
        action_keys = (
            [f"{target.namespace.base}/robot/*/{target.replica}/action"]
            if every_robot
            else [target.namespace.action(client, target.replica) for client in target.own_ids]
        )
        # Into a bounded queue in Zenoh, drained by `poll()` from the sending thread: a Python
        # callback per reply (thousands a second) would fight the sender for the interpreter.
        self._actions = [
            self.session.declare_subscriber(key, zenoh.handlers.RingChannel(ACTION_QUEUE))
            for key in action_keys
        ]
        self._sends = 0

    def renew_own_sessions(self) -> None:
        """Reopen every own session without waiting: the acks renew them as they come."""
        for client in self.target.own_ids:
            request = self.target.session_open(client)
            key = self.target.namespace.session(client, self.target.replica)
            self._query("setup.own_sessions", make_query(key, request))

    def open_own_sessions(self, timeout_s: float = 10.0) -> int:
        """Open (or reopen) a session for each own id, waiting for the answers; how many opened."""
        opened = 0
        for client in self.target.own_ids:
            request = self.target.session_open(client)
            replies = self.session.get(
                self.target.namespace.session(client, self.target.replica),
                payload=control_body(request),
                attachment=header(wire.MsgType.SESSION_OPEN, seq=1),
                timeout=timeout_s,
            )
            for reply in replies:
                if reply.ok is not None and self._take_answer(client, reply.ok):
                    opened += 1
        return opened

    def _take_answer(self, client: str, sample: zenoh.Sample) -> bool:
        """A session ack (a new own session) or a reset ack (its new episode, which later
        in-session bodies carry, or the server would drop them as old); True for an ack."""
        attachment = sample.attachment
        try:
            reply_header = wire.unpack_header(None if attachment is None else attachment.to_bytes())
            if reply_header.msg_type not in (wire.MsgType.SESSION_ACK, wire.MsgType.RESET_ACK):
                return False
            answer = wire.decode_message(reply_header.msg_type, sample.payload.to_bytes())
        except wire.WireError:
            return False
        with self._lock:
            old = self.target.own.get(client)
            if isinstance(answer, wire.SessionAck):
                if old is not None:
                    self.target.retired_epochs.append(old.epoch)
                fresh = OwnSession(client, answer.session_id, answer.session_epoch)
            elif isinstance(answer, wire.ResetAck) and old is not None:
                fresh = dataclasses.replace(old, episode=answer.episode_id)
            else:
                return False
            # Copy on write: builders on the sending thread read `own` without this lock.
            self.target.own = {**self.target.own, client: fresh}
        return isinstance(answer, wire.SessionAck)

    def poll(self) -> None:
        """Take in what the server published on the action keys listened to."""
        for subscriber in self._actions:
            for _ in range(ACTION_QUEUE):
                sample = subscriber.try_recv()
                if sample is None:
                    break
                self._on_action(sample)

    def _on_action(self, sample: zenoh.Sample) -> None:
        attachment = sample.attachment
        if attachment is None:
            return
        # Only chunks are decoded (to check them): the server counts its errors by code itself,
        # and decoding each of thousands a second would slow the attacker down.
        try:
            reply_header = wire.unpack_header(attachment.to_bytes())
            kind = reply_header.msg_type.name.lower()
            if reply_header.msg_type is wire.MsgType.ACTION_CHUNK:
                chunk = wire.decode_message(reply_header.msg_type, sample.payload.to_bytes())
                assert isinstance(chunk, wire.ActionChunk)
                finite = (
                    np.isfinite(chunk.chunk_robot).all() and np.isfinite(chunk.chunk_model).all()
                )
                kind = "action_chunk" if finite else "action_chunk:NON_FINITE"
        except wire.WireError:
            kind = "undecodable"
        with self._lock:
            self.replies_seen[kind] += 1
            self.non_finite_chunks += kind == "action_chunk:NON_FINITE"

    def send(self, label: str, shot: ZenohShot) -> bool:
        """Put the shot on the wire; False when a query was skipped (see `wait_for_answers`)."""
        if shot.op == "token" and not self._tokens_on:
            self.tally.add(label, "skipped:token_churn")
            return False
        self._sends += 1
        if self._sends % POLL_EVERY == 0:
            self.poll()
        try:
            if shot.op == "query":
                if not self._query(label, shot):
                    return False
            elif shot.op == "put":
                self.session.put(
                    shot.key,
                    shot.payload,
                    attachment=shot.attachment,
                    congestion_control=zenoh.CongestionControl.DROP,
                )
            else:
                self._token(shot.key)
        except zenoh.ZError:
            self.tally.add(label, "refused_by_zenoh")
        self.tally.add(label, "sent")
        return True

    def _query(self, label: str, shot: ZenohShot) -> bool:
        timeout_s = QUERY_TIMEOUT_S if self._wait_for_answers else 0.0
        if not self._inflight.acquire(timeout=timeout_s):
            self.tally.add(label, "skipped:backlog")
            return False
        own = self._own_keys.get(shot.key)

        answered = threading.Event()

        def on_reply(reply: zenoh.Reply) -> None:
            answered.set()
            sample = reply.ok
            if sample is None:
                self.tally.add(label, "answer:zenoh_error")
                return
            if own is not None:
                self._take_answer(own, sample)
            self.tally.add(label, f"answer:{_describe_reply(sample)}")

        released = threading.Event()

        def on_done() -> None:
            if not released.is_set():
                released.set()
                self._inflight.release()
                if not answered.is_set():
                    self.tally.add(label, "unanswered")

        try:
            self.session.get(
                shot.key,
                zenoh.handlers.Callback(on_reply, on_done, indirect=False),
                payload=shot.payload,
                attachment=shot.attachment,
                timeout=QUERY_TIMEOUT_S,
                congestion_control=zenoh.CongestionControl.DROP,
                consolidation=zenoh.ConsolidationMode.NONE,
            )
        except zenoh.ZError:
            on_done()
            raise
        return True

    def _token(self, key: str) -> None:
        if len(self._tokens) >= MAX_TOKENS:
            self._tokens.popleft().undeclare()
        self._tokens.append(self.session.liveliness().declare_token(key))

    def wait_answered(self, timeout_s: float = QUERY_TIMEOUT_S + 2) -> None:
        """Until every query sent has been answered or has timed out; then `poll()`."""
        deadline = time.monotonic() + timeout_s
        taken = 0
        while taken < MAX_INFLIGHT_QUERIES and time.monotonic() < deadline:
            if self._inflight.acquire(timeout=0.05):
                taken += 1
        for _ in range(taken):
            self._inflight.release()
        self.poll()

    def close(self) -> None:
        self.wait_answered()
        while self._tokens:
            self._tokens.popleft().undeclare()
        for subscriber in self._actions:
            subscriber.undeclare()
        self.session.close()


def _describe_reply(sample: zenoh.Sample) -> str:
    attachment = sample.attachment
    try:
        reply_header = wire.unpack_header(None if attachment is None else attachment.to_bytes())
        if reply_header.msg_type is not wire.MsgType.ERROR:
            return reply_header.msg_type.name.lower()
        error = wire.decode_message(reply_header.msg_type, sample.payload.to_bytes())
    except wire.WireError:
        return "undecodable"
    assert isinstance(error, wire.ErrorReply)
    return f"error:{error.code.value}"


class OpenPIAttacker:
    """Sends `FrameShot`s over OpenPI WebSocket connections (one kept open, plus one per
    `fresh` shot) and counts what answers: a reply, an error text, a hang-up, a refusal."""

    def __init__(self, url: str, tally: Tally) -> None:
        self.url, self.tally = url.rstrip("/"), tally
        self._ws: Any = None

    def _connect(self, path: str = "/") -> tuple[Any, str]:
        from websockets.sync.client import connect

        ws = connect(
            self.url + path,
            compression=None,
            max_size=None,
            open_timeout=FRAME_TIMEOUT_S,
            close_timeout=1,
            proxy=None,
            legacy=True,  # the connection outlives this call (websockets 17 warns otherwise)
        )
        first = ws.recv(timeout=FRAME_TIMEOUT_S)
        if isinstance(first, str):  # refused: the reason, then a close
            with contextlib.suppress(Exception):
                ws.close()
            return None, "refused"
        return ws, "metadata"

    def connect(self) -> bool:
        """Open the kept connection now (its session takes a slot before a flood fills them)."""
        if self._ws is None:
            self._ws, _ = self._connect()
        return self._ws is not None

    def send(self, label: str, shot: FrameShot) -> bool:
        from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

        self.tally.add(label, "sent")
        try:
            if shot.fresh:
                ws, how = self._connect(shot.path)
                if ws is None:
                    self.tally.add(label, f"connect:{how}")
                    return True
                try:
                    self.tally.add(label, _exchange(ws, shot.data))
                finally:
                    ws.close()
                return True
            if self._ws is None:
                self._ws, how = self._connect()
                if self._ws is None:
                    self.tally.add(label, f"connect:{how}")
                    return True
            self.tally.add(label, _exchange(self._ws, shot.data))
        except InvalidStatus as exc:
            self.tally.add(label, f"http:{exc.response.status_code}")
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else "none"
            self.tally.add(label, f"closed:{code}")
            self._drop()
        except (WebSocketException, OSError, TimeoutError) as exc:
            self.tally.add(label, f"failed:{type(exc).__name__}")
            self._drop()
        return True

    def _drop(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                ws.close()

    def close(self) -> None:
        self._drop()


def _exchange(ws: Any, data: bytes | str) -> str:
    ws.send(data)
    answer = ws.recv(timeout=FRAME_TIMEOUT_S)
    if isinstance(answer, str):
        code = answer.partition("[")[2].partition("]")[0]
        return f"error:{code or 'text'}"
    try:
        reply = msgpack.unpackb(answer, raw=False, strict_map_key=False)
    except Exception:  # a reply that is not msgpack is a finding; count it, do not raise
        return "reply:undecodable"
    if isinstance(reply, dict) and "actions" in reply:
        actions = reply["actions"]
        values = actions.get(b"data") if isinstance(actions, dict) else None
        if isinstance(values, bytes) and not np.isfinite(np.frombuffer(values, np.float32)).all():
            return "reply:NON_FINITE_ACTIONS"
        return "reply:actions"
    return "reply:other"


class HttpAttacker:
    """Sends `HttpShot`s over raw sockets to the health port and the OpenPI port, counting the
    status line that answers (or the silence), and holds half-written requests open."""

    def __init__(self, ports: dict[str, int], tally: Tally) -> None:
        self.ports, self.tally = ports, tally
        self._held: collections.deque[socket.socket] = collections.deque()

    def send(self, label: str, shot: HttpShot) -> bool:
        port = self.ports.get(shot.port)
        if not port:
            return False
        self.tally.add(label, "sent")
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT_S)
        except OSError as exc:
            self.tally.add(label, f"connect_failed:{type(exc).__name__}")
            return True
        if shot.hold:
            with contextlib.suppress(OSError):
                sock.sendall(shot.request)
            if len(self._held) >= MAX_HELD_SOCKETS:
                self._held.popleft().close()
            self._held.append(sock)
            self.tally.add(label, "held")
            return True
        with sock:
            try:
                sock.sendall(shot.request)
                sock.shutdown(socket.SHUT_WR)
                answer = _read_some(sock)
            except OSError as exc:
                self.tally.add(label, f"failed:{type(exc).__name__}")
                return True
        self.tally.add(label, _status_of(answer))
        return True

    def close(self) -> None:
        while self._held:
            self._held.popleft().close()


def _status_of(answer: bytes) -> str:
    """`status:<code>`, or what answered instead of a status line."""
    if not answer:
        return "status:silent_close"
    if not answer.startswith(b"HTTP/"):
        return "status:no_status_line"  # an HTTP/0.9-style answer: the body alone
    parts = answer.split(b"\r\n", 1)[0].split(b" ")
    return f"status:{parts[1].decode('ascii', 'replace')}" if len(parts) > 1 else "status:bad"


def _read_some(sock: socket.socket, limit: int = 65536) -> bytes:
    data = b""
    with contextlib.suppress(TimeoutError, OSError):
        while len(data) < limit:
            chunk = sock.recv(limit)
            if not chunk:
                break
            data += chunk
    return data


@dataclass
class Senders:
    """One sender per surface (any may be None: that surface's classes are skipped)."""

    zenoh: ZenohAttacker | None = None
    openpi: OpenPIAttacker | None = None
    http: HttpAttacker | None = None

    def fire(self, attack: AttackClass, shots: Iterable[Shot]) -> int:
        """Send every shot of one build; returns how many were sent."""
        sent = 0
        for shot in shots:
            if isinstance(shot, ZenohShot) and self.zenoh is not None:
                sent += self.zenoh.send(attack.label, shot)
            elif isinstance(shot, FrameShot) and self.openpi is not None:
                sent += self.openpi.send(attack.label, shot)
            elif isinstance(shot, HttpShot) and self.http is not None:
                sent += self.http.send(attack.label, shot)
        return sent

    def covers(self, attack: AttackClass) -> bool:
        return getattr(self, attack.surface) is not None

    def close(self) -> None:
        for sender in (self.zenoh, self.openpi, self.http):
            if sender is not None:
                sender.close()


def run_burst(
    senders: Senders,
    classes: Iterable[AttackClass],
    target: Target,
    *,
    rng: random.Random,
    messages_per_class: int,
    deadline_s: float,
    on_round: Callable[[], None] | None = None,
) -> dict[str, int]:
    """Round-robin over `classes` until each has sent `messages_per_class` messages or
    `deadline_s` (monotonic) passes; returns the messages sent per class label."""
    active = [attack for attack in classes if senders.covers(attack)]
    sent = dict.fromkeys((attack.label for attack in active), 0)
    while active and time.monotonic() < deadline_s:
        for attack in list(active):
            sent[attack.label] += senders.fire(attack, attack.build(rng, target))
            if sent[attack.label] >= messages_per_class:
                active.remove(attack)
        if on_round is not None:
            on_round()
    return sent


def format_table(counts: dict[str, dict[str, int]]) -> str:
    """Per attack class: messages sent, then its most frequent answers."""
    lines = [f"{'attack class':<24} {'sent':>9}  answers (most frequent first)"]
    for label, outcomes in sorted(counts.items()):
        answers = sorted(
            ((n, outcome) for outcome, n in outcomes.items() if outcome != "sent"), reverse=True
        )
        shown = ", ".join(f"{outcome} {n}" for n, outcome in answers[:5])
        more = f", +{len(answers) - 5} more" if len(answers) > 5 else ""
        lines.append(f"{label:<24} {outcomes.get('sent', 0):>9}  {shown}{more}")
    total = sum(outcomes.get("sent", 0) for outcomes in counts.values())
    lines.append(f"{'total':<24} {total:>9}")
    return "\n".join(lines)
