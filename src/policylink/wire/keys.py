"""Zenoh key expressions of the native protocol.

Everything lives under the verbatim chunk `@policylink`: a `**` subscriber elsewhere in a
deployment can never match it. User-supplied segments are sanitised so a model id such as
`org/model` cannot add levels or smuggle wildcards, and reserved words cannot become client ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from policylink.wire.errors import KeyExprError

ROOT = "@policylink"
MAX_SEGMENT = 96
RESERVED = frozenset({"server", "status", "session", "obs", "action", "reset", "alive"})
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


def sanitize_segment(value: str, what: str = "segment") -> str:
    """One key-expression level: `[A-Za-z0-9_.-]`, runs of anything else become `_`."""
    cleaned = _UNSAFE.sub("_", value.strip()).strip("_")
    if not cleaned or set(cleaned) <= {"."}:
        raise KeyExprError(f"{what} {value!r} has no usable characters; use letters and digits")
    if len(cleaned) > MAX_SEGMENT:
        raise KeyExprError(f"{what} {value!r} is longer than {MAX_SEGMENT} characters")
    return cleaned


def client_segment(client_id: str) -> str:
    segment = sanitize_segment(client_id, "client id")
    if segment.lower() in RESERVED:
        raise KeyExprError(
            f"client id {client_id!r} is reserved; choose another (not one of {sorted(RESERVED)})"
        )
    return segment


@dataclass(frozen=True, slots=True)
class Namespace:
    """`<model>/<revision>/<task>`: which policy a key expression addresses."""

    model: str
    revision: str = "main"
    task: str = "default"

    @classmethod
    def of(cls, model: str, revision: str = "main", task: str = "default") -> Namespace:
        return cls(
            sanitize_segment(model, "model id"),
            sanitize_segment(revision, "revision"),
            sanitize_segment(task, "task slug"),
        )

    @property
    def base(self) -> str:
        return f"{ROOT}/{self.model}/{self.revision}/{self.task}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def session(self) -> str:
        return f"{self.base}/session"

    @property
    def server_alive(self) -> str:
        return f"{self.base}/server/alive"

    @property
    def all_obs(self) -> str:
        return f"{self.base}/*/obs"

    @property
    def all_client_alive(self) -> str:
        return f"{self.base}/*/alive"

    @property
    def all_status(self) -> str:
        """Every namespace's status queryable: lets a client list what a server serves."""
        return f"{ROOT}/*/*/*/status"

    def obs(self, client_id: str) -> str:
        return f"{self.base}/{client_segment(client_id)}/obs"

    def action(self, client_id: str) -> str:
        return f"{self.base}/{client_segment(client_id)}/action"

    def reset(self, client_id: str) -> str:
        return f"{self.base}/{client_segment(client_id)}/reset"

    def client_alive(self, client_id: str) -> str:
        return f"{self.base}/{client_segment(client_id)}/alive"

    def client_of(self, key: str) -> str:
        """The client segment of a per-client key under this namespace."""
        prefix = self.base + "/"
        if not key.startswith(prefix):
            raise KeyExprError(f"key {key!r} is not under {self.base}")
        parts = key[len(prefix) :].split("/")
        if len(parts) != 2 or parts[0] in RESERVED:
            raise KeyExprError(f"key {key!r} is not a per-client key")
        return parts[0]
