"""The manifest's `openpi:` block: where the OpenPI WebSocket surface listens and how it maps keys.

Kept free of websockets so the manifest can validate it on any machine. The API key itself is
never configuration: only the name of the environment variable holding it is, so the key stays
out of manifests, argv and process listings.

An API key sent over plain `ws://` crosses the network in clear text, so a surface that checks
a key and listens beyond loopback must serve `wss://` (`tls_cert` and `tls_key`); without them
it refuses to start unless `allow_plaintext_api_key` says the network is trusted (a private
link, a TLS-terminating proxy in front).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policylink.wire.openpi.keymap import DEFAULT_PRESET, KeyMap

DEFAULT_PATHS = ("/", "/v1/realtime/robot/openpi")
HEALTH_PATH = "/healthz"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback(host: str) -> bool:
    """Whether binding `host` serves this machine only (`0.0.0.0` and names serve others)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class OpenPISettings:
    """`host` defaults to loopback: serving other machines is a deliberate `host: 0.0.0.0`.

    `key_map` is a preset name (`libero`, `aloha`, `droid`) or a map of key-map fields over a
    preset (see `policylink.wire.openpi.keymap`). `max_frame_bytes` caps one incoming
    frame; a larger one closes that connection (WebSocket code 1009), nothing else; None derives
    it from the served policy (every camera as a float64 array, its state, 1 MiB for other
    keys). `request_timeout_s` bounds how long a connection waits for its chunk before it gets
    an error frame instead.

    `tls_cert` and `tls_key` (PEM paths) serve `wss://`. After `auth_max_failures` wrong or
    missing API keys within `auth_failure_window_s`, an address is answered 429 for
    `auth_lockout_s` without its key being checked.
    """

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    paths: list[str] = field(default_factory=lambda: list(DEFAULT_PATHS))
    api_key_env: str | None = None
    key_map: str | dict[str, Any] = DEFAULT_PRESET
    max_frame_bytes: int | None = None
    request_timeout_s: float = 30.0
    tls_cert: str | None = None
    tls_key: str | None = None
    allow_plaintext_api_key: bool = False
    auth_max_failures: int = 5
    auth_failure_window_s: float = 60.0
    auth_lockout_s: float = 60.0

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:
            raise ValueError(
                f"openpi.port must be in [0, 65535] (0 picks a free port), got {self.port}"
            )
        if not self.paths or not all(path.startswith("/") for path in self.paths):
            raise ValueError(f"openpi.paths must be URL paths starting with '/', got {self.paths}")
        if HEALTH_PATH in self.paths:
            raise ValueError(f"openpi.paths cannot include {HEALTH_PATH}, which serves health")
        if self.max_frame_bytes is not None and self.max_frame_bytes < 1024:
            raise ValueError(
                f"openpi.max_frame_bytes must be at least 1024 (or null: from the policy), got "
                f"{self.max_frame_bytes}"
            )
        if self.request_timeout_s <= 0:
            raise ValueError(
                f"openpi.request_timeout_s must be positive, got {self.request_timeout_s}"
            )
        if self.api_key_env is not None and not self.api_key_env.strip():
            raise ValueError("openpi.api_key_env must name an environment variable, or be unset")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("openpi.tls_cert and openpi.tls_key must be given together")
        if self.auth_max_failures < 1:
            raise ValueError(
                f"openpi.auth_max_failures must be at least 1, got {self.auth_max_failures}"
            )
        if self.auth_failure_window_s <= 0 or self.auth_lockout_s < 0:
            raise ValueError(
                "openpi.auth_failure_window_s must be positive and openpi.auth_lockout_s "
                f"non-negative, got {self.auth_failure_window_s} and {self.auth_lockout_s}"
            )
        if self.enabled:
            self.check_key_transport(self.api_key_env is not None)
        self.key_map_spec()

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert and self.tls_key)

    def check_key_transport(self, has_api_key: bool) -> None:
        """Refuse to send an API key in clear text beyond this machine (see the module doc)."""
        if not has_api_key or self.tls or self.allow_plaintext_api_key:
            return
        if is_loopback(self.host):
            return
        raise ValueError(
            f"openpi: an API key on host {self.host!r} without TLS would cross the network in "
            "clear text; set openpi.tls_cert and openpi.tls_key (PEM files) to serve wss://, or "
            "set openpi.allow_plaintext_api_key: true if the network is trusted or a proxy in "
            "front terminates TLS"
        )

    def key_map_spec(self) -> KeyMap:
        return KeyMap.from_config(self.key_map)

    def api_key(self, environ: Mapping[str, str]) -> str | None:
        """The key clients must present, read once at start-up from the named variable."""
        if self.api_key_env is None:
            return None
        value = environ.get(self.api_key_env, "")
        if not value.strip():
            raise ValueError(
                f"openpi.api_key_env names {self.api_key_env!r}, but that environment variable "
                "is unset or empty; export it before starting the server"
            )
        return value.strip()
