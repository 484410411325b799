"""Policy kinds a manifest can name, resolved lazily so a kind's heavy imports load only if used.

A kind maps to a `module:function` builder with the signature
`build(config: PolicyConfig, device: str, dtype: str) -> Policy`. The `python` kind names a
user's own builder the same way (`factory: my_pkg.policies:make`), which is how tests and users
serve a policy policylink does not ship.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from policylink.policy.base import Policy

BUILTIN_KINDS: dict[str, str] = {
    "transformer": "policylink.policy.transformer:build",
    "relative": "policylink.policy.relative:build",
    "sim_expert": "policylink.sim.expert:build",
    "lerobot": "policylink.policy.lerobot:build",
}


@dataclass
class PolicyConfig:
    """The manifest's `policy:` block. `params` holds kind-specific options."""

    kind: str = "transformer"
    path: str | None = None
    preset: str | None = None
    seed: int = 0
    factory: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


Builder = Callable[[PolicyConfig, str, str], Policy]


def resolve_import(target: str, what: str) -> Any:
    """`package.module:attribute` → the attribute, with an error that says how to fix it."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{what} must look like 'package.module:function', got {target!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{what} {target!r}: cannot import {module_name!r} ({exc})") from exc
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"{what} {target!r}: {module_name!r} has no {attribute!r}") from None


def build_policy(config: PolicyConfig, device: str = "cpu", dtype: str = "float32") -> Policy:
    if config.kind == "python":
        if not config.factory:
            raise ValueError("policy.factory is required for kind 'python' (module:function)")
        builder: Builder = resolve_import(config.factory, "policy.factory")
    elif config.kind in BUILTIN_KINDS:
        builder = resolve_import(BUILTIN_KINDS[config.kind], f"policy kind {config.kind!r}")
    else:
        kinds = sorted([*BUILTIN_KINDS, "python"])
        raise ValueError(f"policy.kind {config.kind!r} is unknown; use one of {kinds}")
    return builder(config, device, dtype)
