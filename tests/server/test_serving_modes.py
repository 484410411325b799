"""Serving modes come from the registry of verified families, never from a guess."""

from __future__ import annotations

import pytest

from policylink.policy.base import PolicySpec
from policylink.server.serving_modes import ServingModeError, decide_serving_mode


def spec(family: str, has_chunk_api: bool = True) -> PolicySpec:
    return PolicySpec(("a",), 4, 1, family, has_chunk_api=has_chunk_api)


def test_verified_stateless_family_is_shared_in_auto():
    decision = decide_serving_mode(spec("policylink.transformer"), "auto", 8)
    assert (decision.mode, decision.max_sessions, decision.warnings) == ("shared", 8, [])


def test_unknown_family_in_auto_is_served_exclusive_with_a_warning():
    decision = decide_serving_mode(spec("someone.recurrent"), "auto", 8)
    assert (decision.mode, decision.max_sessions) == ("exclusive", 1)
    assert any("not in the verified registry" in w for w in decision.warnings)


def test_manifest_may_force_exclusive_on_a_shared_family():
    decision = decide_serving_mode(spec("policylink.transformer"), "exclusive", 8)
    assert (decision.mode, decision.max_sessions) == ("exclusive", 1)


def test_forcing_shared_on_an_unverified_family_is_a_startup_error():
    with pytest.raises(ServingModeError, match="'shared' is refused"):
        decide_serving_mode(spec("someone.recurrent"), "shared", 8)


def test_policy_without_a_chunk_api_is_refused_with_the_reason():
    with pytest.raises(ServingModeError, match="no chunk API"):
        decide_serving_mode(spec("policylink.transformer", has_chunk_api=False), "auto", 8)
