"""May one policy instance serve several robots at once? Decided from a registry, never guessed.

`shared` is safe only when a family's chunk call has been verified to touch no cross-request
state (no hidden recurrent memory, no internal action queue). Everything else is served
`exclusive`: one session, and an episode reset resets the policy too. A policy that cannot emit a
chunk per call is refused: streaming it one action per round trip would defeat the system.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from policylink.policy.base import PolicySpec

SHARED = "shared"
EXCLUSIVE = "exclusive"

# Family → mode, for families whose chunk call has been checked. Add a verified family here.
VERIFIED_FAMILIES: dict[str, str] = {
    "policylink.transformer": SHARED,
    "policylink.relative": SHARED,
    "policylink.sim_expert": SHARED,
    # LeRobot 0.6.1, checked in policylink.policy.lerobot (FAMILIES) and tests/lerobot.
    "lerobot.act": SHARED,
    "lerobot.pi0": SHARED,
    "lerobot.pi05": SHARED,
    "lerobot.pi0_fast": SHARED,
    "lerobot.smolvla": SHARED,
    "lerobot.groot": SHARED,
    "lerobot.evo1": SHARED,
    "lerobot.molmoact2": SHARED,
    "lerobot.xvla": SHARED,
    "lerobot.wall_x": SHARED,
    "lerobot.vla_jepa": SHARED,
    "lerobot.eo1": SHARED,
    "lerobot.fastwam": SHARED,
    "lerobot.diffusion": EXCLUSIVE,
    "lerobot.vqbet": EXCLUSIVE,
    "lerobot.multi_task_dit": EXCLUSIVE,
}


class ServingModeError(ValueError):
    """The policy cannot be served as configured; the message says why and what to change."""


@dataclass(frozen=True)
class ServingDecision:
    mode: str
    max_sessions: int
    warnings: list[str] = field(default_factory=list)


def decide_serving_mode(spec: PolicySpec, requested: str, max_sessions: int) -> ServingDecision:
    if not spec.has_chunk_api:
        raise ServingModeError(
            f"policy family {spec.family!r} has no chunk API (it emits one action per call); "
            "policylink serves chunking policies only: wrap it so predict_chunk returns [N, T, A]"
        )
    verified = VERIFIED_FAMILIES.get(spec.family)
    warnings: list[str] = []
    if requested == SHARED and verified != SHARED:
        raise ServingModeError(
            f"serving_mode 'shared' is refused for policy family {spec.family!r}: it is not "
            "verified free of cross-request state; use serving_mode 'exclusive' or 'auto'"
        )
    if requested == EXCLUSIVE:
        mode = EXCLUSIVE
    elif requested == SHARED:
        mode = SHARED
    elif verified is None:
        mode = EXCLUSIVE
        warnings.append(
            f"policy family {spec.family!r} is not in the verified registry; serving it "
            "exclusive (one session at a time)"
        )
    else:
        mode = verified
    if mode == EXCLUSIVE and max_sessions != 1:
        warnings.append(f"serving exclusive: max_sessions {max_sessions} lowered to 1")
        max_sessions = 1
    return ServingDecision(mode, max_sessions, warnings)
