"""Hostile traffic for every surface of a policy server: what a peer may send, by attack class.

The security model (DESIGN §6a) promises that nothing a peer sends takes the server down, makes
a callback raise, reaches another robot's session, lets NaN/Inf reach a robot or grows the
server's bookkeeping without bound. This module makes the traffic that tests it, as data: each
`AttackClass` builds *shots* — a Zenoh put, query or liveliness token (`ZenohShot`), an OpenPI
WebSocket frame (`FrameShot`), or raw bytes for an HTTP port (`HttpShot`) — from a
`random.Random` and a `Target` (what a peer can learn about the server: its status, and which
robots hold sessions). `tests.support.attackers` puts shots on the wire and counts, per class,
what was sent and how it was answered.

Why builders take a `random.Random`: the short test (`tests/security/test_fuzz_surfaces.py`)
drives them with hypothesis's `st.randoms()`, so every choice a builder makes is a hypothesis
choice (derandomised, shrinkable), while the million-message benchmark (`benchmarks/bench_fuzz`)
drives the same builders with a seeded `random.Random` at full speed. It lives in
`tests/support` because benchmarks already import from `tests` and tests never import from
`benchmarks`.

Hostile observations that should reach the inference worker (wrong dtypes, NaN, truncated
bodies) are sent *in a session of the attacker's own* (`Target.own`, kept fresh by
`attackers.ZenohAttacker` from the acks it gets): without a session's epoch the surface
answers before decoding, and the worker's decoder would never see them.

What this module does not send: a good robot's observations replayed with its *current*
epoch, or an open in its name with its *own* instance id. Without certificates both are
indistinguishable from the robot itself (its keys are the identity, which mTLS + ACL protect);
`tests/security/test_identity.py` covers the transport that refuses them.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import msgpack
import numpy as np

from policylink import wire
from policylink.wire.openpi.msgpack_numpy import packb as openpi_packb

SCHEMA = wire.SCHEMA_VERSION
# Any byte value may go in the header's fields; `wire.pack_header` would refuse most of them.
_HEADER = struct.Struct("<HBQIqI")
_MASKS = (0xFFFF, 0xFF, 2**64 - 1, 2**32 - 1, None, 2**32 - 1)
# dtype names a tensor map may claim: none is allowed on the wire, or all are wrong for a state.
BAD_DTYPES = ("complex64", "object", "<U8", "V4", "", "float128", "O", "|S3", "datetime64")
ODD_DTYPES = ("int64", "bool", "float16", "uint8", "int8", "float64")
HUGE_SHAPES = ([2**40], [2**31, 2**31], [0, 2**63], [1, 1, 1, 1, 1], [-1], [3.5], "abc", None)
NON_FINITE = (math.nan, math.inf, -math.inf)

Surface = Literal["zenoh", "openpi", "http"]


# --- what a peer can know ------------------------------------------------------------------


@dataclass
class OwnSession:
    """A session the attacker opened in its own name: hostile bodies sent in it reach the
    worker's decoder, because the surface finds a session with that epoch."""

    client: str
    session_id: str
    epoch: int
    seq: int = 0
    episode: int = 0


@dataclass
class Target:
    """What a peer can learn about one server without any secret.

    From the status query: namespace, replica, the policy's layout and so the decode limits
    (`DecodeLimits.for_policy` is public and deterministic). `victims` maps each well-behaved
    robot's id to its session id: an attacker that somehow learnt the id (a leaked log line)
    still must not be able to use it from its own keys. `own` is the attacker's own sessions,
    kept current by the sender. `openpi_keys` is the OpenPI key map from the metadata frame.
    """

    namespace: wire.Namespace
    replica: str
    capabilities: wire.Capabilities
    victims: dict[str, str] = field(default_factory=dict)
    openpi_keys: dict[str, Any] = field(default_factory=dict)
    own_ids: tuple[str, ...] = ("mallory-0", "mallory-1", "mallory-2")
    own: dict[str, OwnSession] = field(default_factory=dict)
    retired_epochs: collections.deque[int] = field(
        default_factory=lambda: collections.deque(maxlen=64)
    )

    def __post_init__(self) -> None:
        caps = self.capabilities
        self.limits = wire.DecodeLimits.for_policy(
            caps.cameras, caps.state_dim, len(caps.action_names), caps.chunk_size
        )
        self.frame_limit = self.limits.for_array_frames().max_message_bytes
        self.state_dim = caps.state_dim
        self.action_dim = len(caps.action_names)
        rng = np.random.default_rng(0)
        self.images = {
            camera.name: rng.integers(0, 255, (camera.height, camera.width, 3), dtype=np.uint8)
            for camera in caps.cameras
        }
        self.encoded_images = {
            name: wire.encode_image(image, 80) for name, image in self.images.items()
        }
        self.valid_obs = wire.encode_observation(self.observation(), jpeg_quality=80)

    def observation(self, **fields: Any) -> wire.Observation:
        obs = wire.Observation(
            state=np.linspace(-1, 1, self.state_dim, dtype=np.float32),
            images=dict(self.images),
            task="fuzz",
            inference_delay_steps=1,
            prefix_model=np.zeros((2, self.action_dim), np.float32),
            prefix_robot=np.zeros((2, self.action_dim), np.float32),
            playback_left_ms=40.0,
        )
        for name, value in fields.items():
            setattr(obs, name, value)
        return obs

    def obs_fields(self) -> dict[str, Any]:
        """A valid observation as the msgpack map it travels as, ready to be spoilt."""
        return {
            "playback_left_ms": 40.0,
            "state": wire.encode_tensor(np.linspace(-1, 1, self.state_dim, dtype=np.float32)),
            "images": dict(self.encoded_images),
            "task": "fuzz",
            "inference_delay_steps": 1,
            "prefix_model": wire.encode_tensor(np.zeros((2, self.action_dim), np.float32)),
            "prefix_robot": None,
            "episode_start": False,
        }

    def session_open(self, client_id: str, **fields: Any) -> wire.SessionOpen:
        caps = self.capabilities
        request = wire.SessionOpen(
            client_id=client_id,
            action_names=list(caps.action_names),
            state_dim=caps.state_dim,
            cameras=list(caps.cameras),
            fps=caps.trained_fps,
            instance=f"{client_id}-proc",
        )
        for name, value in fields.items():
            setattr(request, name, value)
        return request


def header(
    msg_type: int = wire.MsgType.OBSERVATION,
    *,
    schema: int = SCHEMA,
    seq: int = 1,
    episode: int = 0,
    epoch: int = 0,
    mono_ns: int | None = None,
) -> bytes:
    """A 27-byte header with any value in any field (masked to the field's width)."""
    values = (schema, msg_type, seq, episode, time.monotonic_ns() if mono_ns is None else mono_ns)
    packed = [v & m if m is not None else v for v, m in zip(values, _MASKS, strict=False)]
    return _HEADER.pack(*packed, epoch & 0xFFFFFFFF)


def pack(body: object) -> bytes:
    return msgpack.packb(body, use_bin_type=True)


def control_body(message: wire.Message) -> bytes:
    return wire.encode_message(message)


# --- shots -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZenohShot:
    """One Zenoh operation: `put` a sample, send a `query`, or declare a liveliness `token`."""

    op: Literal["put", "query", "token"]
    key: str
    payload: bytes = b""
    attachment: bytes | None = None


@dataclass(frozen=True, slots=True)
class FrameShot:
    """One WebSocket frame (bytes: binary, str: text) on an OpenPI connection; `fresh` opens a
    new connection for it (on `path`) and hangs up after its answer."""

    data: bytes | str
    fresh: bool = False
    path: str = "/"


@dataclass(frozen=True, slots=True)
class HttpShot:
    """Raw bytes for an HTTP port (`health` or the OpenPI port); `hold` leaves the connection
    open, half-written, like a slow client."""

    port: Literal["health", "openpi"]
    request: bytes
    hold: bool = False


Shot = ZenohShot | FrameShot | HttpShot
Builder = Callable[[random.Random, Target], list[Any]]


@dataclass(frozen=True)
class AttackClass:
    """A named kind of hostile traffic on one surface; `build` makes one shot list."""

    name: str
    surface: Surface
    build: Builder

    @property
    def label(self) -> str:
        return f"{self.surface}.{self.name}"


# --- identities and keys ---------------------------------------------------------------------


def _fake_id(rng: random.Random) -> str:
    """One of a small pool of robots that never opened a session."""
    return f"ghost-{rng.randrange(32)}"


def _fresh_id(rng: random.Random) -> str:
    """A robot id never seen before: what a flood rotates through to dodge per-robot limits."""
    return f"flood-{rng.getrandbits(48):012x}"


# Choices among things that change while an attack runs (the attacker's sessions, retired
# epochs) draw one float whatever their number: hypothesis replays an example by replaying its
# draws, and a draw whose bounds follow external state would differ between replays.
def _pick(rng: random.Random, items: tuple[Any, ...] | list[Any], default: Any) -> Any:
    draw = rng.random()
    return items[int(draw * len(items))] if items else default


def _below(rng: random.Random, bound: int) -> int:
    return int(rng.random() * max(bound, 1))


def _victim(rng: random.Random, t: Target) -> tuple[str, str]:
    ghost = (_fake_id(rng), f"{rng.getrandbits(128):032x}")
    client = _pick(rng, sorted(t.victims), None)
    return ghost if client is None else (client, t.victims[client])


def _own(rng: random.Random, t: Target) -> OwnSession:
    """One of the attacker's sessions, or a made-up one while none is open."""
    made_up = OwnSession(_pick(rng, t.own_ids, "mallory-0"), "", rng.getrandbits(32), 1)
    own = _pick(rng, list(t.own.values()), None)
    if own is None:
        return made_up
    own.seq += 1
    return own


def _in_session(rng: random.Random, t: Target, body: bytes, **fields: int) -> ZenohShot:
    """`body` as an observation in one of the attacker's own sessions (reaches the worker)."""
    own = _own(rng, t)
    attachment = header(seq=own.seq, epoch=own.epoch, episode=own.episode, **fields)
    return ZenohShot("put", t.namespace.obs(own.client, t.replica), body, attachment)


def _obs_key(rng: random.Random, t: Target) -> str:
    who = rng.choice(("own", "fake", "victim"))
    if who == "own":
        client = rng.choice(t.own_ids)
    elif who == "fake":
        client = _fake_id(rng)
    else:
        client = _victim(rng, t)[0]
    return t.namespace.obs(client, t.replica)


def _control_key(rng: random.Random, t: Target, client: str | None = None) -> str:
    client = client or rng.choice((*t.own_ids, _fake_id(rng)))
    leaf = rng.choice(("session", "reset"))
    return (
        t.namespace.session(client, t.replica)
        if leaf == "session"
        else t.namespace.reset(client, t.replica)
    )


def make_query(
    key: str, message: wire.Message | bytes, attachment: bytes | None = None
) -> ZenohShot:
    """A query shot: a control message (its header made to match) or raw bytes."""
    body = message if isinstance(message, bytes) else control_body(message)
    if attachment is None and not isinstance(message, bytes):
        attachment = header(message.MSG_TYPE, seq=1)
    return ZenohShot("query", key, body, attachment)


def _cut(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))] if data else data


# --- Zenoh attack classes --------------------------------------------------------------------


OBSERVATION_KEYS = (
    "playback_left_ms",
    "state",
    "images",
    "task",
    "inference_delay_steps",
    "prefix_model",
    "prefix_robot",
    "episode_start",
)


def random_structure(rng: random.Random, depth: int = 3) -> object:
    """A random msgpack value; maps favour the observation's own keys, so a decoder gets past
    its first checks and meets the wrong types deeper in."""
    kind = rng.randrange(10 if depth > 0 else 7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice((0, -1, 2**31, 2**63 - 1, -(2**63), 2**64 - 1, rng.getrandbits(16)))
    if kind == 3:
        return rng.choice((0.0, -0.0, 1e308, -1e-308, *NON_FINITE, rng.random()))
    if kind == 4:
        return "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(12)))
    if kind == 5:
        return rng.randbytes(rng.randrange(48))
    if kind == 6:
        return rng.choice(OBSERVATION_KEYS)
    if kind == 7:
        return [random_structure(rng, depth - 1) for _ in range(rng.randrange(5))]
    keys = [rng.choice((*OBSERVATION_KEYS, "dtype", "shape", "data", "format", "x"))]
    keys += [rng.choice(OBSERVATION_KEYS) for _ in range(rng.randrange(6))]
    return {key: random_structure(rng, depth - 1) for key in keys}


def random_bytes(rng: random.Random, t: Target) -> list[ZenohShot]:
    """Noise: random payloads and attachments on every key the server listens on, and random
    msgpack structures in a live session."""
    if rng.random() < 0.3:
        return [_in_session(rng, t, pack(random_structure(rng)))]
    payload = rng.randbytes(rng.choice((0, 1, 8, 27, 64, 512, 2048)))
    attachment = rng.choice(
        (None, b"", rng.randbytes(rng.randrange(40)), rng.randbytes(27), header(seq=1))
    )
    if rng.random() < 0.6:
        return [ZenohShot("put", _obs_key(rng, t), payload, attachment)]
    key = rng.choice((_control_key(rng, t), t.namespace.status(t.replica)))
    return [ZenohShot("query", key, payload, attachment)]


def _valid_control(rng: random.Random, t: Target, client: str) -> tuple[str, wire.Message]:
    kind = rng.choice(("open", "close", "reset", "status"))
    if kind == "open":
        return t.namespace.session(client, t.replica), t.session_open(client)
    if kind == "close":
        return t.namespace.session(client, t.replica), wire.SessionClose(
            f"{rng.getrandbits(128):032x}"
        )
    if kind == "reset":
        return t.namespace.reset(client, t.replica), wire.Reset(
            f"{rng.getrandbits(128):032x}", rng.randrange(10)
        )
    return t.namespace.status(t.replica), wire.StatusRequest()


def truncated(rng: random.Random, t: Target) -> list[ZenohShot]:
    """Valid messages cut short: the body, the header, or the header missing."""
    what = rng.choice(("obs_body", "obs_header", "obs_no_header", "control_body", "control_hdr"))
    if what == "obs_body":
        return [_in_session(rng, t, _cut(rng, t.valid_obs))]
    if what in ("obs_header", "obs_no_header"):
        own = _own(rng, t)
        full = header(seq=own.seq, epoch=own.epoch)
        attachment = None if what == "obs_no_header" else _cut(rng, full)
        return [ZenohShot("put", t.namespace.obs(own.client, t.replica), t.valid_obs, attachment)]
    key, message = _valid_control(rng, t, _fake_id(rng))
    body, attachment = control_body(message), header(message.MSG_TYPE, seq=1)
    if what == "control_body":
        return [ZenohShot("query", key, _cut(rng, body), attachment)]
    return [ZenohShot("query", key, body, _cut(rng, attachment))]


def _lying_lengths(rng: random.Random) -> bytes:
    """msgpack whose length prefixes claim gigabytes (or a nesting depth) that are not there."""
    claims = (
        b"\x81\xa5state\xc6\x7f\xff\xff\xff",  # bin32 of 2 GiB
        b"\xdf\xff\xff\xff\xff",  # map32 of 4G entries
        b"\x81\xa5state\xdd\xff\xff\xff\xff",  # array32 of 4G items
        b"\x81\xa4task\xdb\x7f\xff\xff\xff",  # str32 of 2 GiB
        b"\xc9\x7f\xff\xff\xff\x01",  # ext32 of 2 GiB
        b"\x91" * rng.choice((100, 1000, 5000)) + b"\xc0",  # lists nested thousands deep
    )
    return rng.choice(claims) + rng.randbytes(rng.randrange(16))


def oversized(rng: random.Random, t: Target) -> list[ZenohShot]:
    """Over every cap: the message, a tensor, an image, a list, a string, delay and prefix."""
    fields = t.obs_fields()
    kind = rng.choice(
        ("message", "lengths", "tensor", "images", "pixels", "text", "delay", "prefix", "open")
    )
    if kind == "message":
        padding = t.limits.max_message_bytes + rng.randint(1, 4096) - len(t.valid_obs)
        return [_in_session(rng, t, t.valid_obs + bytes(max(padding, 1)))]
    if kind == "lengths":
        return [_in_session(rng, t, _lying_lengths(rng))]
    if kind == "tensor":
        shape = rng.choice(HUGE_SHAPES)
        fields[rng.choice(("state", "prefix_model", "prefix_robot"))] = {
            "dtype": "float32",
            "shape": shape,
            "data": b"\x00" * rng.choice((0, 4, 64)),
        }
    elif kind == "images":
        count = t.limits.max_images + rng.randint(1, 64)
        image = next(iter(t.encoded_images.values()), {"format": "raw", "shape": [1, 1, 3]})
        fields["images"] = {f"cam{i}": image for i in range(count)}
    elif kind == "pixels":
        side = rng.choice((4096, 65535, 2**31 - 1))
        name = next(iter(t.encoded_images), "front")
        fmt = rng.choice(("jpeg", "raw"))
        fields["images"] = {name: {"format": fmt, "shape": [side, side, 3], "data": b"\xff\xd8"}}
    elif kind == "text":
        fields["task"] = "x" * (t.limits.max_text_bytes + rng.randint(1, 50_000))
    elif kind == "delay":
        fields["inference_delay_steps"] = rng.choice((t.capabilities.chunk_size + 1, 2**32 - 1))
    elif kind == "prefix":
        steps = t.capabilities.chunk_size + rng.randint(1, 64)
        fields["prefix_model"] = wire.encode_tensor(np.zeros((steps, t.action_dim), np.float32))
    else:
        return [_oversized_open(rng, t)]
    return [_in_session(rng, t, pack(fields))]


def _oversized_open(rng: random.Random, t: Target) -> ZenohShot:
    client = rng.choice(t.own_ids)
    kind = rng.choice(("actions", "task", "tags", "tag_value", "cameras", "body"))
    request = t.session_open(client)
    if kind == "actions":
        request.action_names = [f"j{i}" for i in range(rng.choice((5000, 20000)))]
    elif kind == "task":
        request.task = "t" * rng.choice((5000, 100_000))
    elif kind == "tags":
        request.tags = {f"k{i}": "v" for i in range(rng.choice((33, 1000)))}
    elif kind == "tag_value":
        request.tags = {"k": "v" * 10_000}
    elif kind == "cameras":
        request.cameras = [wire.CameraSpec(f"c{i}", 2**31, 2**31) for i in range(300)]
    else:
        body = control_body(request) + bytes(t.limits.max_message_bytes)
        return make_query(t.namespace.session(client, t.replica), body, header(5))
    return make_query(t.namespace.session(client, t.replica), request)


def wrong_dtype(rng: random.Random, t: Target) -> list[ZenohShot]:
    """Tensors and images of the wrong type, rank, size or encoding, in a live session."""
    fields = t.obs_fields()
    kind = rng.choice(("state", "state_shape", "bytes", "prefix", "image", "not_a_map"))
    dim = t.state_dim
    if kind == "state":
        name = rng.choice((*BAD_DTYPES, *ODD_DTYPES))
        width = np.dtype(name).itemsize if name in ODD_DTYPES else 4
        data = bytes(dim * width) if name != "bool" else b"\x01" * dim
        fields["state"] = {"dtype": name, "shape": [dim], "data": data}
    elif kind == "state_shape":
        shape = rng.choice(([dim + 1], [1, dim], [], [dim, 1, 1], [0]))
        count = math.prod(shape) if shape else 1
        fields["state"] = {"dtype": "float32", "shape": shape, "data": bytes(4 * count)}
    elif kind == "bytes":
        fields["state"] = {"dtype": "float32", "shape": [dim], "data": rng.randbytes(4 * dim + 1)}
    elif kind == "prefix":
        fields["prefix_model"] = rng.choice(
            (
                wire.encode_tensor(np.zeros((2, t.action_dim + 3), np.float32)),
                wire.encode_tensor(np.zeros(t.action_dim, np.int64)),
                {"dtype": "bool", "shape": [2, t.action_dim], "data": b"\x07" * 2 * t.action_dim},
            )
        )
    elif kind == "image":
        name = next(iter(t.encoded_images), "front")
        image = t.images.get(name, np.zeros((4, 4, 3), np.uint8))
        h, w = image.shape[:2]
        fields["images"] = {
            name: rng.choice(
                (
                    {"format": "raw", "shape": [h, w, 4], "data": bytes(h * w * 4)},
                    {"format": "raw", "shape": [h, w], "data": bytes(h * w)},
                    {"format": "raw", "shape": [h, w, 3], "data": bytes(h * w * 3 - 1)},
                    {"format": "png", "shape": [h, w, 3], "data": b"\x89PNG\r\n\x1a\n"},
                    {"format": "jpeg", "shape": [h, w, 3], "data": rng.randbytes(200)},
                    {"format": "jpeg", "shape": [h, w, 3], "data": b"\xff\xd8\xff\xc2" + bytes(64)},
                    {"format": "raw", "shape": [h + 1, w, 3], "data": bytes((h + 1) * w * 3)},
                    wire.encode_tensor(image),
                )
            )
        }
    else:
        fields[rng.choice(("state", "images", "task", "episode_start"))] = rng.choice(
            ([1, 2, 3], "state", 3.5, {"x": 1}, b"raw", True, None)
        )
    return [_in_session(rng, t, pack(fields))]


def non_finite(rng: random.Random, t: Target) -> list[ZenohShot]:
    """NaN and ±Inf in the state, the prefixes, the playback and a session's fps."""
    value = rng.choice(NON_FINITE)
    kind = rng.choice(("state", "prefix_model", "prefix_robot", "playback", "fps"))
    if kind == "fps":
        client = rng.choice(t.own_ids)
        return [
            make_query(t.namespace.session(client, t.replica), t.session_open(client, fps=value))
        ]
    fields = t.obs_fields()
    dtype = rng.choice((np.float16, np.float32, np.float64))
    if kind == "state":
        state = np.zeros(t.state_dim, dtype)
        state[rng.randrange(t.state_dim)] = value
        fields["state"] = wire.encode_tensor(state)
    elif kind == "playback":
        fields["playback_left_ms"] = rng.choice((value, -1.0, 1e308))
    else:
        prefix = np.zeros((2, t.action_dim), dtype)
        prefix[rng.randrange(2), rng.randrange(t.action_dim)] = value
        fields[kind] = wire.encode_tensor(prefix)
    return [_in_session(rng, t, pack(fields))]


def bad_schema(rng: random.Random, t: Target) -> list[ZenohShot]:
    """Schema versions the server does not speak, in headers and in a session open's range."""
    schema = rng.choice((0, SCHEMA + 1, SCHEMA - 1, 0xFFFF, rng.randrange(0x10000)))
    kind = rng.choice(("obs", "control", "range"))
    if kind == "obs":
        return [_in_session(rng, t, t.valid_obs, schema=schema)]
    if kind == "control":
        key, message = _valid_control(rng, t, rng.choice((*t.own_ids, _fake_id(rng))))
        return [make_query(key, message, header(message.MSG_TYPE, schema=schema))]
    client = rng.choice(t.own_ids)
    low, high = rng.choice(((5, 2), (0, 0), (0xFFFF, 0xFFFF), (SCHEMA + 1, SCHEMA + 9)))
    request = t.session_open(client, schema_min=low, schema_max=high)
    return [make_query(t.namespace.session(client, t.replica), request)]


def wrong_msg_type(rng: random.Random, t: Target) -> list[ZenohShot]:
    """Headers naming the wrong message type, or one that does not exist, on every key."""
    msg_type = rng.choice((*[int(m) for m in wire.MsgType], 0, 11, 128, 255))
    kind = rng.choice(("obs", "control", "mismatch"))
    if kind == "obs":
        if msg_type == wire.MsgType.OBSERVATION:
            msg_type = wire.MsgType.ACTION_CHUNK
        shot = _in_session(rng, t, t.valid_obs)
        return [dataclasses.replace(shot, attachment=header(msg_type))]
    client = rng.choice((*t.own_ids, _fake_id(rng)))
    key, message = _valid_control(rng, t, client)
    if kind == "control":
        return [make_query(key, message, header(msg_type, seq=1))]
    other = rng.choice(
        (
            wire.Reset("x", 1),
            t.session_open(client),
            wire.StatusRequest(),
            wire.SessionClose("x"),
        )
    )
    return [make_query(key, control_body(other), header(message.MSG_TYPE, seq=1))]


def replayed(rng: random.Random, t: Target) -> list[ZenohShot]:
    """Valid messages at the wrong time: old epochs on a good robot's keys and on the attacker's
    own, old sequence and episode ids, resets that go back, opens replayed (which replace)."""
    kind = rng.choice(("victim_old_epoch", "own_old_epoch", "own_old_seq", "reset_back", "open"))
    if kind == "victim_old_epoch":
        client = _victim(rng, t)[0]
        epoch = _pick(rng, (0, *t.retired_epochs), 0)
        attachment = header(seq=1, epoch=epoch)
        return [ZenohShot("put", t.namespace.obs(client, t.replica), t.valid_obs, attachment)]
    own = _own(rng, t)
    key = t.namespace.obs(own.client, t.replica)
    if kind == "own_old_epoch":
        epoch = _pick(rng, tuple(t.retired_epochs), own.epoch ^ 1)
        return [ZenohShot("put", key, t.valid_obs, header(seq=own.seq, epoch=epoch))]
    if kind == "own_old_seq":
        attachment = header(seq=_below(rng, own.seq), episode=0, epoch=own.epoch)
        return [ZenohShot("put", key, t.valid_obs, attachment)]
    if kind == "reset_back":
        reset = wire.Reset(own.session_id, rng.randrange(3))
        return [make_query(t.namespace.reset(own.client, t.replica), reset)]
    return [make_query(t.namespace.session(own.client, t.replica), t.session_open(own.client))]


def unknown_session(rng: random.Random, t: Target) -> list[ZenohShot]:
    """Sessions that do not exist: robots that never opened one, random epochs and ids."""
    kind = rng.choice(("obs", "obs_epoch0", "reset", "close"))
    client = _fake_id(rng)
    session_id = rng.choice(
        (f"{rng.getrandbits(128):032x}", "", "x" * rng.choice((1, 256, 5000)), "\x00\u2603")
    )
    if kind == "obs":
        attachment = header(seq=rng.getrandbits(32), epoch=rng.getrandbits(32))
        return [ZenohShot("put", t.namespace.obs(client, t.replica), t.valid_obs, attachment)]
    if kind == "obs_epoch0":
        own = _own(rng, t)
        attachment = header(seq=own.seq, epoch=0)
        return [ZenohShot("put", t.namespace.obs(own.client, t.replica), t.valid_obs, attachment)]
    if kind == "reset":
        reset = wire.Reset(session_id, rng.randrange(2**32))
        return [make_query(t.namespace.reset(client, t.replica), reset)]
    return [make_query(t.namespace.session(client, t.replica), wire.SessionClose(session_id))]


def forged_identity(rng: random.Random, t: Target) -> list[ZenohShot]:
    """Acting as a good robot: opening in its name (from another key, or from its key with
    another process's instance), closing or resetting its session by id from another key,
    closing or resetting on its key with guessed ids, observing on its key with guessed epochs."""
    victim, victim_session = _victim(rng, t)
    mine = rng.choice((*t.own_ids, _fake_id(rng)))
    kind = rng.choice(
        ("open_body", "open_key", "close_by_id", "reset_by_id", "close_guess", "obs_guess")
    )
    if kind == "open_body":
        return [make_query(t.namespace.session(mine, t.replica), t.session_open(victim))]
    if kind == "open_key":
        instance = rng.choice(("", f"usurper-{rng.getrandbits(32):08x}"))
        request = t.session_open(victim, instance=instance)
        return [make_query(t.namespace.session(victim, t.replica), request)]
    if kind == "close_by_id":
        return [make_query(t.namespace.session(mine, t.replica), wire.SessionClose(victim_session))]
    if kind == "reset_by_id":
        return [make_query(t.namespace.reset(mine, t.replica), wire.Reset(victim_session, 7))]
    guess = f"{rng.getrandbits(128):032x}"
    if kind == "close_guess":
        key = rng.choice(
            (t.namespace.session(victim, t.replica), t.namespace.reset(victim, t.replica))
        )
        message = wire.SessionClose(guess) if key.endswith("session") else wire.Reset(guess, 1)
        return [make_query(key, message)]
    attachment = header(seq=rng.getrandbits(20), epoch=rng.getrandbits(32))
    return [ZenohShot("put", t.namespace.obs(victim, t.replica), t.valid_obs, attachment)]


def flood(rng: random.Random, t: Target) -> list[ZenohShot]:
    """Volume from ever-new robot ids: valid opens, observations, liveliness tokens, status."""
    shots: list[ZenohShot] = []
    for _ in range(rng.randint(2, 6)):
        client = _fresh_id(rng)
        kind = rng.choice(("open", "obs", "obs", "token", "token", "status"))
        if kind == "open":
            shots.append(make_query(t.namespace.session(client, t.replica), t.session_open(client)))
        elif kind == "obs":
            attachment = header(seq=1, epoch=rng.getrandbits(32))
            key = t.namespace.obs(client, t.replica)
            shots.append(ZenohShot("put", key, t.valid_obs, attachment))
        elif kind == "token":
            owner = rng.choice((client, client, _victim(rng, t)[0]))
            instance = f"i{rng.getrandbits(32):08x}"
            shots.append(ZenohShot("token", t.namespace.robot_alive(owner, instance)))
        else:
            shots.append(make_query(t.namespace.status(t.replica), wire.StatusRequest()))
    return shots


def odd_keys(rng: random.Random, t: Target) -> list[ZenohShot]:
    """Keys under `@policylink` of every shape but the expected one."""
    base, replica = t.namespace.base, t.replica
    client = rng.choice((*t.own_ids, _fake_id(rng)))
    keys = (
        f"{base}/robot/{client}/{replica}/obs/extra",
        f"{base}/robot/{client}/obs",
        f"{base}/robot/*/{replica}/obs",
        f"{base}/robot/$*x/{replica}/obs",
        f"{base}/robot/.hidden/{replica}/obs",
        f"{base}/robot/\u00e9t\u00e9/{replica}/obs",
        f"{base}/robot/{'r' * 97}/{replica}/obs",
        f"{base}/robot/a b/{replica}/obs",
        f"{base}/robot/../{replica}/obs",
        f"{base}/robot/{client}/not-{replica}/obs",
        f"{base}/robot/{client}/{replica}/alive",
        f"{base}/status/{replica}/x",
        f"{base}/replica/{replica}/alive",
        f"@policylink/other/ns/here/robot/{client}/{replica}/obs",
        "@policylink/**",
        f"{base}/**",
        f"{base}/robot/**",
    )
    key = rng.choice(keys)
    op = rng.choice(("put", "query", "query", "token"))
    if op == "put":
        return [ZenohShot("put", key, t.valid_obs, header(seq=1))]
    if op == "token":
        return [ZenohShot("token", rng.choice((key, f"{base}/robot/{client}/*/alive")))]
    query_key = rng.choice(
        (
            key,
            f"{base}/robot/*/{replica}/session",
            f"{base}/robot/*/{replica}/*",
            f"{base}/status/*",
        )
    )
    _, message = _valid_control(rng, t, client)
    return [make_query(query_key, message)]


# --- OpenPI attack classes ---------------------------------------------------------------------


def _openpi_obs(t: Target, **overrides: Any) -> dict[str, Any]:
    """A valid OpenPI observation for the server's key map (from its metadata frame)."""
    keys = t.openpi_keys
    obs: dict[str, Any] = {}
    for item in keys.get("state", [{"key": "state", "size": t.state_dim}]):
        obs[item["key"]] = np.zeros(item["size"], np.float32)
    layout = keys.get("image_layout", "hwc")
    for camera, key in keys.get("images", {}).items():
        image = t.images[camera]
        obs[key] = image.transpose(2, 0, 1) if layout == "chw" else image
    obs[keys.get("prompt", "prompt")] = "fuzz"
    obs.update(overrides)
    return obs


def _state_key(t: Target) -> str:
    return t.openpi_keys.get("state", [{"key": "state"}])[0]["key"]


def _image_key(t: Target) -> str:
    images = t.openpi_keys.get("images", {})
    return next(iter(images.values()), "images/front")


def _frame(obj: object) -> bytes:
    return openpi_packb(obj)


def openpi_random(rng: random.Random, t: Target) -> list[FrameShot]:
    """Noise frames: random bytes, random text, random msgpack values."""
    kind = rng.choice(("bytes", "text", "scalar", "structure"))
    if kind == "structure":
        return [FrameShot(pack(random_structure(rng)))]
    if kind == "bytes":
        return [FrameShot(rng.randbytes(rng.choice((0, 1, 16, 512, 4096))))]
    if kind == "text":
        return [
            FrameShot("".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(64))))
        ]
    return [FrameShot(pack(rng.choice((None, 1, -1.5, "x", [1, 2], True, b"\x00"))))]


def openpi_truncated(rng: random.Random, t: Target) -> list[FrameShot]:
    """A valid observation frame cut short."""
    return [FrameShot(_cut(rng, _frame(_openpi_obs(t))))]


def openpi_oversized(rng: random.Random, t: Target) -> list[FrameShot]:
    """Over the frame cap (the server hangs up: 1009), lying lengths, arrays claiming sizes."""
    kind = rng.choice(("frame", "lengths", "array", "nested"))
    if kind == "frame":
        return [FrameShot(bytes(t.frame_limit + rng.randint(1, 4096)), fresh=True)]
    if kind == "lengths":
        return [FrameShot(_lying_lengths(rng))]
    if kind == "array":
        shape = rng.choice(HUGE_SHAPES[:4])
        array = {b"__ndarray__": True, b"data": b"\x00" * 16, b"dtype": "<f4", b"shape": shape}
        return [FrameShot(pack({_state_key(t): array, "prompt": "x"}))]
    depth = rng.choice((200, 2000))
    nested: Any = {}
    for _ in range(depth):
        nested = {"a": nested}
    with contextlib.suppress(ValueError):
        return [FrameShot(pack({_state_key(t): nested}))]
    return [FrameShot(b"\x81\xa1a" * depth + b"\xc0")]


def openpi_wrong_dtype(rng: random.Random, t: Target) -> list[FrameShot]:
    """Arrays of refused dtypes, images of the wrong type or shape, state that is not numbers."""
    kind = rng.choice(("state_dtype", "state_type", "image", "npgeneric"))
    state_key, image_key = _state_key(t), _image_key(t)
    if kind == "state_dtype":
        dtype = rng.choice(("<c8", "|O", "<U3", "|V8", ">f16", "<M8", "float32", "f4"))
        array = {b"__ndarray__": True, b"data": bytes(16), b"dtype": dtype, b"shape": [4]}
        return [FrameShot(pack({**_shallow(t), state_key: array}))]
    if kind == "state_type":
        bad = rng.choice((["a", "b"], [[1.0] * t.state_dim] * 2, {"x": 1}, "state", None, 1e400))
        return [FrameShot(_frame(_openpi_obs(t, **{state_key: bad})))]
    if kind == "image":
        camera = next(iter(t.images.values()), np.zeros((4, 4, 3), np.uint8))
        h, w = camera.shape[:2]
        image = rng.choice(
            (
                np.zeros((h, w, 3), np.int16),
                np.zeros((h, w, 4), np.uint8),
                np.zeros((h, w), np.uint8),
                np.zeros((h + 1, w, 3), np.uint8),
                np.zeros((3, h, w + 2), np.float64),
                np.zeros((h, w, 3), np.bool_),
                np.zeros((0, w, 3), np.uint8),
            )
        )
        return [FrameShot(_frame(_openpi_obs(t, **{image_key: image})))]
    generic = {b"__npgeneric__": True, b"data": rng.choice((1e300, "x", [1])), b"dtype": "<f2"}
    return [FrameShot(pack({**_shallow(t), "prompt": generic}))]


def _shallow(t: Target) -> dict[str, Any]:
    """The observation as msgpack-ready maps (arrays as openpi's marker maps)."""
    return msgpack.unpackb(_frame(_openpi_obs(t)), raw=False, strict_map_key=False)


def openpi_non_finite(rng: random.Random, t: Target) -> list[FrameShot]:
    """NaN/Inf in the state, in float images, and a prompt that is not text."""
    value = rng.choice(NON_FINITE)
    kind = rng.choice(("state", "image", "prompt"))
    if kind == "state":
        state = np.zeros(t.state_dim, rng.choice((np.float32, np.float64, np.float16)))
        state[rng.randrange(t.state_dim)] = value
        return [FrameShot(_frame(_openpi_obs(t, **{_state_key(t): state})))]
    if kind == "image":
        camera = next(iter(t.images.values()), np.zeros((4, 4, 3), np.uint8))
        image = np.full(camera.shape, value, np.float32)
        if t.openpi_keys.get("image_layout") == "chw":
            image = image.transpose(2, 0, 1)
        return [FrameShot(_frame(_openpi_obs(t, **{_image_key(t): image})))]
    return [FrameShot(_frame(_openpi_obs(t, prompt=rng.choice((value, 3, ["x"])))))]


def openpi_control(rng: random.Random, t: Target) -> list[FrameShot]:
    """Control keys abused: unknown endpoints, odd session ids, reset and session-switch bursts."""
    kind = rng.choice(("endpoint", "session_id", "reset", "switch"))
    if kind == "endpoint":
        endpoint = rng.choice(("infer ", "RESET", "", None, 3, ["reset"], "x" * 5000))
        return [FrameShot(_frame({"endpoint": endpoint}))]
    if kind == "session_id":
        session_id = rng.choice((1.5, True, [1], {"a": 1}, "s" * 300, -(2**63)))
        return [FrameShot(_frame(_openpi_obs(t, session_id=session_id)))]
    if kind == "reset":
        return [FrameShot(_frame({"endpoint": "reset"})) for _ in range(rng.randint(1, 4))]
    return [
        FrameShot(_frame(_openpi_obs(t, session_id=f"s{rng.getrandbits(32)}")))
        for _ in range(rng.randint(1, 3))
    ]


def openpi_replayed(rng: random.Random, t: Target) -> list[FrameShot]:
    """The same valid frame again and again, and a session id used before a switch."""
    frame = _frame(_openpi_obs(t, session_id=rng.choice(("alpha", "beta"))))
    return [FrameShot(frame) for _ in range(rng.randint(1, 3))]


def openpi_forged(rng: random.Random, t: Target) -> list[FrameShot]:
    """Naming a good robot's session: its id as `session_id` (a label, never a capability)."""
    _, session_id = _victim(rng, t)
    return [FrameShot(_frame(_openpi_obs(t, session_id=session_id)))]


def openpi_flood(rng: random.Random, t: Target) -> list[FrameShot]:
    """A connection per frame (each one opens a session), on real and unknown paths."""
    path = rng.choice(("/", "/", "/v1/realtime/robot/openpi", "/nope", "/healthz", "/../etc"))
    data = rng.choice((_frame(_openpi_obs(t)), rng.randbytes(32)))
    return [FrameShot(data, fresh=True, path=path)]


# --- HTTP attack classes -------------------------------------------------------------------------


def _port(rng: random.Random) -> Literal["health", "openpi"]:
    return rng.choice(("health", "health", "openpi"))


def http_random(rng: random.Random, t: Target) -> list[HttpShot]:
    return [HttpShot(_port(rng), rng.randbytes(rng.choice((1, 16, 512, 8192))))]


def http_malformed(rng: random.Random, t: Target) -> list[HttpShot]:
    """Request lines and headers no client should send."""
    requests = (
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"\x00\x01\x02 / HTTP/1.1\r\n\r\n",
        b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\nabc",
        b"GET /" + b"a" * rng.choice((8000, 70_000)) + b" HTTP/1.1\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n" + b"X-H: v\r\n" * rng.choice((100, 2000)) + b"\r\n",
        b"GET /healthz HTTP/1.1\r\nX-Big: " + b"v" * 70_000 + b"\r\n\r\n",
        b"GET http://evil/healthz HTTP/1.1\r\nHost: evil\r\n\r\n",
        b"GET /%00%ff/../../etc/passwd HTTP/1.1\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: bad\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nAuthorization: Api-Key " + b"k" * 5000 + b"\r\n\r\n",
    )
    return [HttpShot(_port(rng), rng.choice(requests))]


def http_slow(rng: random.Random, t: Target) -> list[HttpShot]:
    """A request started and never finished: the connection is held open."""
    partial = rng.choice((b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"GE", b""))
    return [HttpShot(_port(rng), partial, hold=True)]


def http_flood(rng: random.Random, t: Target) -> list[HttpShot]:
    """Well-formed requests, fast: /metrics is the dearest to answer."""
    path = rng.choice((b"/metrics", b"/healthz", b"/", b"/metrics?x=" + str(rng.random()).encode()))
    method = rng.choice((b"GET", b"GET", b"HEAD"))
    return [
        HttpShot(_port(rng), method + b" " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        for _ in range(rng.randint(1, 3))
    ]


ZENOH_CLASSES = (
    AttackClass("random_bytes", "zenoh", random_bytes),
    AttackClass("truncated", "zenoh", truncated),
    AttackClass("oversized", "zenoh", oversized),
    AttackClass("wrong_dtype", "zenoh", wrong_dtype),
    AttackClass("non_finite", "zenoh", non_finite),
    AttackClass("bad_schema", "zenoh", bad_schema),
    AttackClass("wrong_msg_type", "zenoh", wrong_msg_type),
    AttackClass("replayed", "zenoh", replayed),
    AttackClass("unknown_session", "zenoh", unknown_session),
    AttackClass("forged_identity", "zenoh", forged_identity),
    AttackClass("flood", "zenoh", flood),
    AttackClass("odd_keys", "zenoh", odd_keys),
)
OPENPI_CLASSES = (
    AttackClass("random_bytes", "openpi", openpi_random),
    AttackClass("truncated", "openpi", openpi_truncated),
    AttackClass("oversized", "openpi", openpi_oversized),
    AttackClass("wrong_dtype", "openpi", openpi_wrong_dtype),
    AttackClass("non_finite", "openpi", openpi_non_finite),
    AttackClass("wrong_msg_type", "openpi", openpi_control),
    AttackClass("replayed", "openpi", openpi_replayed),
    AttackClass("forged_identity", "openpi", openpi_forged),
    AttackClass("flood", "openpi", openpi_flood),
)
HTTP_CLASSES = (
    AttackClass("random_bytes", "http", http_random),
    AttackClass("malformed", "http", http_malformed),
    AttackClass("slow", "http", http_slow),
    AttackClass("flood", "http", http_flood),
)
ALL_CLASSES = ZENOH_CLASSES + OPENPI_CLASSES + HTTP_CLASSES
