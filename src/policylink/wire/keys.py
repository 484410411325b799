"""Zenoh key expressions of the native protocol (schema 2).

    <ns> = @policylink/<model>/<revision>/<task>
    <ns>/status/<replica>                      queryable: a replica's capabilities and load
    <ns>/replica/<replica>/alive               liveliness token of a replica
    <ns>/robot/<client>/<instance>/alive       liveliness token of one robot process
    <ns>/robot/<client>/<replica>/session      queryable: open / close this robot's session
    <ns>/robot/<client>/<replica>/obs          robot → replica
    <ns>/robot/<client>/<replica>/action       replica → robot
    <ns>/robot/<client>/<replica>/reset        queryable: this robot's episode boundary

Two rules shape it. Every robot-specific key names the robot at one fixed position, so an
access-control policy keyed on a certificate's common name can confine a robot to
`<ns>/robot/<its id>/**`. Every replica-specific key names the replica, so N server processes of
one namespace coexist without seeing each other's traffic, and a robot gathers every replica's
status (`<ns>/status/*`) to choose where to open its session.

A robot's liveliness names its process (`instance`, random per process): a session open for a
robot id whose session belongs to another, still-live process is refused, while a restarted
robot — whose old process and token are gone — re-joins at once.

Everything lives under the verbatim chunk `@policylink`, which a `**` subscriber elsewhere in a
deployment can never match. Model, revision and task are sanitised (a hub id such as
`org/model` must not add levels); robot and replica ids are identities, so an id that is not a
valid segment is refused, never rewritten — "arm 1", "arm/1" and "arm_1" are not one robot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from policylink.wire.errors import KeyExprError

ROOT = "@policylink"
MAX_SEGMENT = 96
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")
_IDENTITY = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")
# Fixed positions of the identities in a per-robot key, counted in levels from the root (the
# replica's position holds the robot's instance in its liveliness key).
_ROBOT_LEVEL = 5
_REPLICA_LEVEL = 6


def sanitize_segment(value: str, what: str = "segment") -> str:
    """One key-expression level: `[A-Za-z0-9_.-]`, runs of anything else become `_`."""
    cleaned = _UNSAFE.sub("_", value.strip()).strip("_")
    if not cleaned or set(cleaned) <= {"."}:
        raise KeyExprError(f"{what} {value!r} has no usable characters; use letters and digits")
    if len(cleaned) > MAX_SEGMENT:
        raise KeyExprError(f"{what} {value!r} is longer than {MAX_SEGMENT} characters")
    return cleaned


def identity_segment(value: str, what: str = "client id") -> str:
    """A robot or replica id exactly as given, or `KeyExprError` naming what is wrong."""
    if len(value) > MAX_SEGMENT:
        raise KeyExprError(f"{what} {value!r} is longer than {MAX_SEGMENT} characters")
    if not _IDENTITY.fullmatch(value):
        raise KeyExprError(
            f"{what} {value!r} is not a valid key segment: use letters, digits, '_', '-' and "
            "'.', not starting with '.' (it is used as given, never rewritten)"
        )
    return value


def client_segment(client_id: str) -> str:
    return identity_segment(client_id, "client id")


def replica_segment(replica_id: str) -> str:
    return identity_segment(replica_id, "replica id")


def instance_segment(instance: str) -> str:
    return identity_segment(instance, "robot instance")


def status_pattern(model: str = "", revision: str = "", task: str = "") -> str:
    """Every replica's status under a namespace pattern; an empty segment matches any."""
    segments = [
        sanitize_segment(value, name) if value else "*"
        for name, value in (("model id", model), ("revision", revision), ("task slug", task))
    ]
    return f"{ROOT}/{'/'.join(segments)}/status/*"


EVERY_STATUS = status_pattern()


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

    def status(self, replica: str) -> str:
        return f"{self.base}/status/{replica_segment(replica)}"

    @property
    def all_status(self) -> str:
        return f"{self.base}/status/*"

    def replica_alive(self, replica: str) -> str:
        return f"{self.base}/replica/{replica_segment(replica)}/alive"

    def robot_alive(self, client: str, instance: str = "*") -> str:
        """One robot process's token; `instance="*"` matches every process of the robot."""
        segment = instance if instance == "*" else instance_segment(instance)
        return f"{self.base}/robot/{client_segment(client)}/{segment}/alive"

    @property
    def all_robot_alive(self) -> str:
        return f"{self.base}/robot/*/*/alive"

    def session(self, client: str, replica: str) -> str:
        return self._robot_key(client, replica, "session")

    def obs(self, client: str, replica: str) -> str:
        return self._robot_key(client, replica, "obs")

    def action(self, client: str, replica: str) -> str:
        return self._robot_key(client, replica, "action")

    def reset(self, client: str, replica: str) -> str:
        return self._robot_key(client, replica, "reset")

    def every_robot(self, replica: str, leaf: str) -> str:
        """What a replica declares to hear every robot's `leaf` (session, obs or reset)."""
        return f"{self.base}/robot/*/{replica_segment(replica)}/{leaf}"

    def robot_of(self, key: str) -> str:
        """The robot a per-robot key (or a robot's liveliness key) under this namespace names."""
        prefix = self.base + "/robot/"
        parts = key.split("/")
        if not key.startswith(prefix) or len(parts) != _REPLICA_LEVEL + 2:
            raise KeyExprError(f"key {key!r} is not a per-robot key under {self.base}")
        return client_segment(parts[_ROBOT_LEVEL])

    def robot_instance_of(self, key: str) -> tuple[str, str]:
        """(robot, instance) of a robot's liveliness key."""
        parts = key.split("/")
        if len(parts) != _REPLICA_LEVEL + 2 or parts[-1] != "alive":
            raise KeyExprError(f"key {key!r} is not a robot's liveliness key")
        return self.robot_of(key), instance_segment(parts[_REPLICA_LEVEL])

    def _robot_key(self, client: str, replica: str, leaf: str) -> str:
        return f"{self.base}/robot/{client_segment(client)}/{replica_segment(replica)}/{leaf}"


def replica_of_status(key: str) -> str:
    """The replica a status key names (`<ns>/status/<replica>`)."""
    parts = key.split("/")
    if len(parts) != 6 or parts[0] != ROOT or parts[4] != "status":
        raise KeyExprError(f"key {key!r} is not a status key")
    return replica_segment(parts[5])
