"""Key expressions: one verbatim root, sanitised segments, no wildcards, no reserved client ids."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policylink import wire
from policylink.wire.keys import MAX_SEGMENT

SAFE_SEGMENT = re.compile(r"[A-Za-z0-9_.\-]+")


@pytest.mark.parametrize("value", ["pi0", "smolvla_base", "v1.2", "arm-7", "A_b.c-9"])
def test_safe_segments_pass_unchanged(value: str) -> None:
    assert wire.sanitize_segment(value) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("lerobot/pi0", "lerobot_pi0"),
        ("org//model///x", "org_model_x"),
        ("pick up the cube", "pick_up_the_cube"),
        ("a*b", "a_b"),
        ("model/**", "model"),
        ("task$*x", "task_x"),
        ("@admin", "admin"),
        ("@policylink", "policylink"),
        ("café", "caf"),
        ("robot-ü-1", "robot-_-1"),
        ("  arm 7  ", "arm_7"),
        ("q?x#y", "q_x_y"),
    ],
)
def test_unsafe_characters_become_underscores_and_edges_are_trimmed(
    value: str, expected: str
) -> None:
    assert wire.sanitize_segment(value) == expected


@pytest.mark.parametrize(
    "value", ["", "   ", "*", "**", "$*", "/", "@", "ロボット", ".", "..", "_"]
)
def test_segments_with_nothing_usable_are_refused(value: str) -> None:
    with pytest.raises(wire.KeyExprError, match="has no usable characters"):
        wire.sanitize_segment(value, "model id")


def test_a_segment_at_the_length_limit_is_kept() -> None:
    assert wire.sanitize_segment("a" * MAX_SEGMENT) == "a" * MAX_SEGMENT


def test_a_segment_over_the_length_limit_is_refused() -> None:
    with pytest.raises(wire.KeyExprError, match=f"longer than {MAX_SEGMENT} characters"):
        wire.sanitize_segment("a" * (MAX_SEGMENT + 1), "task slug")


def test_errors_name_what_the_segment_was_for() -> None:
    with pytest.raises(wire.KeyExprError, match=r"^revision '\*\*' has no usable") as caught:
        wire.sanitize_segment("**", "revision")
    assert caught.value.code is wire.ErrorCode.BAD_KEY


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(st.text())
def test_any_text_sanitises_to_one_safe_level_or_is_refused(value: str) -> None:
    try:
        segment = wire.sanitize_segment(value)
    except wire.KeyExprError:
        return
    assert SAFE_SEGMENT.fullmatch(segment)
    assert 0 < len(segment) <= MAX_SEGMENT
    assert wire.sanitize_segment(segment) == segment


@pytest.mark.parametrize("word", sorted(wire.RESERVED))
def test_reserved_words_cannot_be_client_ids(word: str) -> None:
    with pytest.raises(wire.KeyExprError, match="is reserved; choose another"):
        wire.client_segment(word)


@pytest.mark.parametrize("value", ["Server", "ALIVE", " obs ", "@status"])
def test_reserved_words_are_refused_in_any_case_or_disguise(value: str) -> None:
    with pytest.raises(wire.KeyExprError, match="is reserved"):
        wire.client_segment(value)


def test_an_ordinary_client_id_is_sanitised() -> None:
    assert wire.client_segment("lab/arm 7") == "lab_arm_7"


def test_root_is_the_verbatim_policylink_chunk() -> None:
    assert wire.ROOT == "@policylink"


def test_namespace_sanitises_model_revision_and_task() -> None:
    ns = wire.Namespace.of("lerobot/pi0", "v1.0", "pick up")
    assert ns.base == "@policylink/lerobot_pi0/v1.0/pick_up"


def test_namespace_defaults_to_main_revision_and_default_task() -> None:
    assert wire.Namespace.of("act").base == "@policylink/act/main/default"


def test_server_keys_follow_the_protocol_layout() -> None:
    ns = wire.Namespace.of("act")
    assert ns.status == "@policylink/act/main/default/status"
    assert ns.session == "@policylink/act/main/default/session"
    assert ns.server_alive == "@policylink/act/main/default/server/alive"


def test_per_client_keys_follow_the_protocol_layout() -> None:
    ns = wire.Namespace.of("act")
    assert ns.obs("arm/7") == "@policylink/act/main/default/arm_7/obs"
    assert ns.action("arm/7") == "@policylink/act/main/default/arm_7/action"
    assert ns.reset("arm/7") == "@policylink/act/main/default/arm_7/reset"
    assert ns.client_alive("arm/7") == "@policylink/act/main/default/arm_7/alive"


def test_server_subscriptions_use_single_level_wildcards_only() -> None:
    ns = wire.Namespace.of("act")
    for key in (ns.all_obs, ns.all_client_alive, ns.all_status):
        assert "**" not in key
        assert key.startswith("@policylink/")
    assert ns.all_obs == "@policylink/act/main/default/*/obs"


def test_a_reserved_client_id_cannot_address_per_client_keys() -> None:
    with pytest.raises(wire.KeyExprError, match="is reserved"):
        wire.Namespace.of("act").obs("server")


def test_client_of_reads_the_client_segment_back() -> None:
    ns = wire.Namespace.of("act")
    assert ns.client_of(ns.obs("arm-7")) == "arm-7"


@pytest.mark.parametrize(
    "key",
    [
        "@policylink/other/main/default/arm/obs",
        "@policylink/act/main/default/server/alive",
        "@policylink/act/main/default/arm/obs/extra",
        "@policylink/act/main/default/status",
    ],
)
def test_client_of_refuses_keys_that_are_not_per_client_keys_of_this_namespace(key: str) -> None:
    with pytest.raises(wire.KeyExprError):
        wire.Namespace.of("act").client_of(key)
