"""The server manifest: everything one `policylink serve` process needs, validated once at load.

A manifest is YAML; every field can also be set from the command line (dotted paths reach into
blocks, e.g. `rtc.enabled=false`). Validation happens here and only here, and every error names
the field, the value it got and what would be accepted, so a typo fails at start-up with a line
a person can act on instead of a stack trace an hour into a run.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from policylink.net.zenoh_settings import ZenohSettings
from policylink.policy.registry import PolicyConfig
from policylink.server.openpi_settings import OpenPISettings
from policylink.server.scheduler import SchedulerName
from policylink.wire.errors import KeyExprError
from policylink.wire.keys import Namespace, replica_segment

DEFAULT_MANIFEST = "default_manifest.yaml"
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


class ManifestError(ValueError):
    """A manifest that cannot be served; the message lists every bad field."""


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PolicyBlock(_Block):
    """Which policy to serve; `params` holds options of that kind (see its builder)."""

    kind: str = "transformer"
    path: str | None = None
    preset: str | None = None
    seed: int = 0
    factory: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    def to_config(self) -> PolicyConfig:
        return PolicyConfig(
            kind=self.kind,
            path=self.path,
            preset=self.preset,
            seed=self.seed,
            factory=self.factory,
            params=dict(self.params),
        )


class RTCBlock(_Block):
    """Real-time chunking: the robot's unexecuted prefix guides the next chunk."""

    enabled: bool = True
    execution_horizon: int = Field(default=10, ge=0)


class ZenohBlock(_Block):
    """How the server attaches to Zenoh. TLS: `tls_root_ca`, `tls_cert` and `tls_key` together
    (with `tls_mtls`, peers must present certificates too), or `tls_root_ca` alone. `acl_file`:
    an access-control list (`policylink certs` writes `acl.json5`) this server enforces in peer
    mode, where robots connect to it; a router enforces it in client mode. Whether the files
    exist is checked when the server starts, on the machine that reads them."""

    mode: Literal["peer", "client", "router"] = "peer"
    connect: list[str] = Field(default_factory=list)
    listen: list[str] = Field(default_factory=lambda: ["tcp/127.0.0.1:7447"])
    lease_ms: int = Field(default=1000, ge=100)
    tls_root_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_mtls: bool = False
    acl_file: str | None = None
    # Same-host robots with `shared_memory` on send observations through shared memory.
    shared_memory: bool = False
    json5: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _tls(self) -> ZenohBlock:
        # ZenohSettings holds the rules (TLS files together, the ACL needs mTLS and a mode that
        # accepts connections), so a manifest and a router refuse the same things alike.
        self.to_settings()
        return self

    def to_settings(self) -> ZenohSettings:
        return ZenohSettings(
            mode=self.mode,
            connect=list(self.connect),
            listen=list(self.listen),
            lease_ms=self.lease_ms,
            tls_root_ca=self.tls_root_ca,
            tls_cert=self.tls_cert,
            tls_key=self.tls_key,
            tls_mtls=self.tls_mtls,
            acl_file=self.acl_file,
            shared_memory=self.shared_memory,
            json5=dict(self.json5),
        )


class CaptureBlock(_Block):
    """Raw requests and replies written for offline replay; off while `dir` is unset."""

    dir: str | None = None
    max_requests: int = Field(default=1000, ge=1)


class LimitsBlock(_Block):
    """Per-robot rate limits, as token buckets: a sustained rate and a burst; a rate of 0 turns
    that limit off. A session open or reset over its limit is answered `rate_limited`. An
    observation takes a token only when it arrives while the robot's previous one is still
    unserved (or without a session): a robot with one request in flight is never limited;
    one that floods is dropped (counted as `rate_limited`). The defaults sit far above what a
    robot's control loop sends (a 100 Hz loop asks for a chunk at most every tick)."""

    session_opens_per_s: float = Field(default=2.0, ge=0)
    session_open_burst: int = Field(default=20, ge=1)
    observations_per_s: float = Field(default=200.0, ge=0)
    observation_burst: int = Field(default=50, ge=1)
    resets_per_s: float = Field(default=5.0, ge=0)
    reset_burst: int = Field(default=20, ge=1)


class Manifest(_Block):
    """One policy on one device behind one namespace. `Manifest()` serves the tiny transformer."""

    policy: PolicyBlock = Field(default_factory=PolicyBlock)
    device: str = "cpu"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    torch_threads: int | None = Field(default=None, ge=1)
    default_task: str = ""
    pin_task: bool = False
    model_id: str = "policylink-transformer"
    revision: str = "main"
    task_slug: str = "default"
    replica_id: str | None = None
    serving_mode: Literal["auto", "shared", "exclusive"] = "auto"
    max_sessions: int = Field(default=8, ge=1, le=1024)
    scheduler: SchedulerName = "batch"
    max_batch_size: int = Field(default=8, ge=1, le=256)
    max_wait_ms: float = Field(default=2.0, ge=0.0, le=1000.0)
    planning_request_hz: float = Field(default=10.0, gt=0)
    warmup_inferences: int = Field(default=3, ge=0)
    trained_fps: float | None = Field(default=None, gt=0)
    strict_fps: bool = False
    rtc: RTCBlock = Field(default_factory=RTCBlock)
    session_idle_timeout_s: float = Field(default=30.0, gt=0)
    session_first_observation_timeout_s: float = Field(default=10.0, gt=0)
    limits: LimitsBlock = Field(default_factory=LimitsBlock)
    zenoh: ZenohBlock = Field(default_factory=ZenohBlock)
    health_port: int = Field(default=0, ge=0, le=65535)
    health_host: str = "127.0.0.1"
    capture: CaptureBlock = Field(default_factory=CaptureBlock)
    openpi: OpenPISettings = Field(default_factory=OpenPISettings)

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if not _DEVICE.match(self.device):
            raise ValueError(f"device {self.device!r} must be cpu, mps, cuda or cuda:<index>")
        if self.pin_task and not self.default_task:
            raise ValueError("pin_task is true but default_task is empty; set the task to pin")
        try:
            self.namespace()
            if self.replica_id is not None:
                replica_segment(self.replica_id)
        except KeyExprError as exc:
            raise ValueError(str(exc)) from None
        return self

    def namespace(self) -> Namespace:
        return Namespace.of(self.model_id, self.revision, self.task_slug)

    @classmethod
    def load(cls, path: str | None = None, overrides: dict[str, Any] | None = None) -> Manifest:
        """YAML file (optional) + overrides (dotted keys allowed) → a validated manifest."""
        data: dict[str, Any] = {}
        if path is not None:
            data = _read_yaml(Path(path))
        for key, value in (overrides or {}).items():
            _set_dotted(data, key, value)
        return cls.from_data(data, source=path or "overrides")

    @classmethod
    def from_data(cls, data: dict[str, Any], source: str = "manifest") -> Manifest:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ManifestError(_describe(exc, source)) from None


def default_manifest_text() -> str:
    """The fully commented default manifest `policylink serve --print-manifest` prints."""
    return resources.files("policylink.server").joinpath(DEFAULT_MANIFEST).read_text()


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ManifestError(f"manifest {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ManifestError(f"manifest {str(path)!r} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ManifestError(f"manifest {str(path)!r} must be a mapping of fields at the top level")
    return data


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ManifestError(f"override {dotted!r}: {part!r} is not a block of fields")
        node = child
    node[leaf] = value


def _describe(exc: ValidationError, source: str) -> str:
    lines = [f"invalid manifest ({source}):"]
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "manifest"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field; check the spelling (policylink serve --print-manifest)"
            lines.append(f"  {where}: {message}")
            continue
        got = error.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {where}: {message}{shown}")
    return "\n".join(lines)
