"""The manifest's `openpi:` block: where the OpenPI WebSocket surface listens and how it maps keys.

Kept free of websockets so the manifest can validate it on any machine. The API key itself is
never configuration: only the name of the environment variable holding it is, so the key stays
out of manifests, argv and process listings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policylink.wire.openpi.keymap import DEFAULT_PRESET, KeyMap

MiB = 1024 * 1024
DEFAULT_PATHS = ("/", "/v1/realtime/robot/openpi")
HEALTH_PATH = "/healthz"


@dataclass
class OpenPISettings:
    """`host` defaults to loopback: serving other machines is a deliberate `host: 0.0.0.0`.

    `key_map` is a preset name (`libero`, `aloha`, `droid`) or a map of key-map fields over a
    preset (see `policylink.wire.openpi.keymap`). `max_frame_bytes` caps one incoming
    frame; a larger one closes that connection (WebSocket code 1009), nothing else.
    `request_timeout_s` bounds how long a connection waits for its chunk before it gets an
    error frame instead.
    """

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    paths: list[str] = field(default_factory=lambda: list(DEFAULT_PATHS))
    api_key_env: str | None = None
    key_map: str | dict[str, Any] = DEFAULT_PRESET
    max_frame_bytes: int = 32 * MiB
    request_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:
            raise ValueError(
                f"openpi.port must be in [0, 65535] (0 picks a free port), got {self.port}"
            )
        if not self.paths or not all(path.startswith("/") for path in self.paths):
            raise ValueError(f"openpi.paths must be URL paths starting with '/', got {self.paths}")
        if HEALTH_PATH in self.paths:
            raise ValueError(f"openpi.paths cannot include {HEALTH_PATH}, which serves health")
        if self.max_frame_bytes < 1024:
            raise ValueError(
                f"openpi.max_frame_bytes must be at least 1024, got {self.max_frame_bytes}"
            )
        if self.request_timeout_s <= 0:
            raise ValueError(
                f"openpi.request_timeout_s must be positive, got {self.request_timeout_s}"
            )
        if self.api_key_env is not None and not self.api_key_env.strip():
            raise ValueError("openpi.api_key_env must name an environment variable, or be unset")
        self.key_map_spec()

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
