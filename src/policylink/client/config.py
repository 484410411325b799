"""Everything a robot-side engine is configured with, validated once when it is built.

Defaults suit a 30 Hz arm talking to a GPU server over a LAN or a router: half a second of
buffered playback before the next request, never an action older than three seconds, and a
minute of outage before the engine gives up and calls the shutdown callback.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from enum import Enum

from policylink.net.zenoh_settings import missing_files, tls_problem
from policylink.wire.keys import client_segment, sanitize_segment

ZENOH_MODES = ("peer", "client")
# Zenoh `<protocol>/<address>`, or an OpenPI server's `ws://` / `wss://` URL.
_ENDPOINT = re.compile(r"^([a-z][a-z0-9-]*/\S+|wss?://\S+)$")
OPENPI_RESPONSE_KEYS = ("actions", "action")


class Fallback(str, Enum):
    """What `get_action()` returns when no fresh action is buffered.

    `hold` returns None (the loop sends nothing; a position-controlled arm stays put).
    `repeat_last` re-sends the last action played this episode. `zero` sends zeros, the only
    safe stop for velocity-controlled robots, for which sending nothing keeps them moving.
    """

    HOLD = "hold"
    REPEAT_LAST = "repeat_last"
    ZERO = "zero"


@dataclass
class ClientConfig:
    """Robot-side settings, one per engine; the README section "Robot client" has the table."""

    # Where: the Zenoh endpoint to dial (a router, or a server listening in peer mode), TLS
    # (with a certificate and key, mutual TLS), and the lease a hang is noticed after.
    endpoint: str = "tcp/127.0.0.1:7447"
    zenoh_mode: str = "peer"
    tls_root_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    lease_ms: int = 1000
    # Observations through Zenoh's shared memory to a server on this host that has it on too
    # (its manifest's zenoh.shared_memory); anywhere else they go over the link as before.
    shared_memory: bool = False
    # OpenPI endpoints (ws://, wss://): observation key preset ("" = the server's advertised
    # keys, else aloha), the reply key holding the chunk, and the variable holding the API key.
    openpi_key_map: str = ""
    openpi_response_key: str = "actions"
    api_key_env: str = ""
    # Which policy: empty namespace segments match any server, and the robot binds to the one
    # that answers. Who: a stable per-robot id ("" = random), the prompt, free-form labels.
    model_id: str = ""
    revision: str = ""
    task_slug: str = ""
    client_id: str = ""
    task: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    # Requests: the control rate (sets dt), camera JPEG quality (0 = raw), the playback left
    # when the next chunk is requested, RTC (replace merge, prefix sent; horizon 0 = the
    # server's).
    fps: float = 30.0
    jpeg_quality: int = 90
    # Uplink: frames shrunk to the resolution the policy reads (when the server names one);
    # JPEG quality lowered towards jpeg_quality_min (never above jpeg_quality; equal = fixed)
    # while network round trips exceed uplink_rise_factor times their floor, raised back after.
    resize_to_policy: bool = True
    jpeg_quality_min: int = 50
    uplink_rise_factor: float = 2.0
    buffer_time_s: float = 0.5
    rtc: bool = True
    rtc_horizon: int = 0
    # Safety: the oldest action ever executed, and what plays when nothing fresh is left.
    max_action_age_s: float = 3.0
    fallback: Fallback = Fallback.HOLD
    # Watchdogs: late → DEGRADED, abandoned request, timeouts that reopen the session, control
    # query timeout, start-up patience, reconnect backoff, and the outage that is fatal.
    degraded_after_s: float = 1.0
    request_timeout_s: float = 5.0
    timeouts_before_reconnect: int = 2
    handshake_timeout_s: float = 2.0
    connect_timeout_s: float = 10.0
    reconnect_initial_backoff_s: float = 0.5
    reconnect_max_backoff_s: float = 10.0
    max_offline_s: float = 60.0
    # Interpreter: the longest a thread waits for the interpreter lock before it makes the
    # holder hand it over, while the engine's worker runs (process-wide; 0 = leave it alone).
    # Python's 5 ms default would let the worker hold up the control loop for as long.
    switch_interval_s: float = 0.0005

    def __post_init__(self) -> None:
        if not self.client_id:
            self.client_id = f"robot-{uuid.uuid4().hex[:8]}"
        client_segment(self.client_id)
        for name in ("model_id", "revision", "task_slug"):
            value = getattr(self, name)
            if value:
                sanitize_segment(value, name)
        if not _ENDPOINT.match(self.endpoint):
            raise ValueError(
                f"endpoint {self.endpoint!r} must look like <protocol>/<address>, e.g. "
                "tcp/192.168.1.10:7447 (a router, or a server listening in peer mode), or "
                "ws://host:8000 for an OpenPI server"
            )
        if self.openpi_response_key not in OPENPI_RESPONSE_KEYS:
            raise ValueError(
                f"openpi_response_key must be one of {OPENPI_RESPONSE_KEYS}, got "
                f"{self.openpi_response_key!r}"
            )
        if self.zenoh_mode not in ZENOH_MODES:
            raise ValueError(f"zenoh_mode must be one of {ZENOH_MODES}, got {self.zenoh_mode!r}")
        # TLS: the CA, this robot's certificate (common name = client_id) and its key, or the
        # CA alone (the server is verified, the robot unnamed: an mTLS endpoint refuses it).
        # The config is built where it runs, so a file that is not there is an error now, not
        # at the first connect.
        problem = tls_problem(self.tls_root_ca, self.tls_cert, self.tls_key)
        if problem:
            raise ValueError(problem)
        missing = missing_files(
            {"tls_root_ca": self.tls_root_ca, "tls_cert": self.tls_cert, "tls_key": self.tls_key}
        )
        if missing:
            raise ValueError(f"no such file: {', '.join(missing)}")
        try:
            self.fallback = Fallback(self.fallback)
        except ValueError:
            options = [f.value for f in Fallback]
            raise ValueError(f"fallback must be one of {options}, got {self.fallback!r}") from None
        if not 0 <= self.jpeg_quality <= 100:
            raise ValueError(
                f"jpeg_quality must be 1..100, or 0 to send raw images; got {self.jpeg_quality}"
            )
        if not 1 <= self.jpeg_quality_min <= 100:
            raise ValueError(
                f"jpeg_quality_min must be 1..100 (the lowest quality a saturated uplink may "
                f"push JPEG to), got {self.jpeg_quality_min}"
            )
        rise = self.uplink_rise_factor
        if not (isinstance(rise, int | float) and math.isfinite(rise) and rise > 1):
            raise ValueError(
                "uplink_rise_factor must be a number above 1 (round trips this many times their "
                f"floor mean a saturated uplink), got {self.uplink_rise_factor}"
            )
        if self.rtc_horizon < 0:
            raise ValueError(
                f"rtc_horizon must be >= 0 (0 = the server's horizon), got {self.rtc_horizon}"
            )
        if self.timeouts_before_reconnect < 1:
            raise ValueError(
                "timeouts_before_reconnect must be at least 1, got "
                f"{self.timeouts_before_reconnect}"
            )
        for name in (
            "fps",
            "max_action_age_s",
            "degraded_after_s",
            "request_timeout_s",
            "handshake_timeout_s",
            "connect_timeout_s",
            "reconnect_initial_backoff_s",
            "reconnect_max_backoff_s",
            "max_offline_s",
        ):
            _require_positive(name, getattr(self, name))
        if not math.isfinite(self.buffer_time_s) or self.buffer_time_s < 0:
            raise ValueError(f"buffer_time_s must be >= 0 seconds, got {self.buffer_time_s}")
        if not math.isfinite(self.switch_interval_s) or self.switch_interval_s < 0:
            raise ValueError(
                "switch_interval_s must be >= 0 seconds (0 = leave the interpreter's setting "
                f"alone), got {self.switch_interval_s}"
            )
        if self.reconnect_max_backoff_s < self.reconnect_initial_backoff_s:
            raise ValueError(
                f"reconnect_max_backoff_s ({self.reconnect_max_backoff_s}) must be at least "
                f"reconnect_initial_backoff_s ({self.reconnect_initial_backoff_s})"
            )

    @property
    def dt_s(self) -> float:
        return 1.0 / self.fps


def _require_positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
