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


@pytest.mark.parametrize("value", ["arm-7", "robot_01", "lab.arm-7", "A"])
def test_a_valid_client_id_is_used_as_given(value: str) -> None:
    assert wire.client_segment(value) == value


@pytest.mark.parametrize("value", ["arm 1", "arm/1", "arm*", ".hidden", "", "ロボット", "a$*b"])
def test_a_client_id_that_is_not_a_valid_segment_is_refused_not_rewritten(value: str) -> None:
    with pytest.raises(wire.KeyExprError, match="not a valid key segment"):
        wire.client_segment(value)


def test_robots_that_differ_only_in_unsafe_characters_never_share_keys() -> None:
    ns = wire.Namespace.of("act")
    with pytest.raises(wire.KeyExprError):
        ns.obs("arm 1", "r1")
    with pytest.raises(wire.KeyExprError):
        ns.obs("arm/1", "r1")
    assert ns.obs("arm_1", "r1") == "@policylink/act/main/default/robot/arm_1/r1/obs"


def test_an_identity_over_the_length_limit_is_refused() -> None:
    with pytest.raises(wire.KeyExprError, match=f"longer than {MAX_SEGMENT}"):
        wire.replica_segment("r" * (MAX_SEGMENT + 1))


def test_root_is_the_verbatim_policylink_chunk() -> None:
    assert wire.ROOT == "@policylink"


def test_namespace_sanitises_model_revision_and_task() -> None:
    ns = wire.Namespace.of("lerobot/pi0", "v1.0", "pick up")
    assert ns.base == "@policylink/lerobot_pi0/v1.0/pick_up"


def test_namespace_defaults_to_main_revision_and_default_task() -> None:
    assert wire.Namespace.of("act").base == "@policylink/act/main/default"


def test_replica_keys_follow_the_protocol_layout() -> None:
    ns = wire.Namespace.of("act")
    assert ns.status("gpu-0") == "@policylink/act/main/default/status/gpu-0"
    assert ns.all_status == "@policylink/act/main/default/status/*"
    assert ns.replica_alive("gpu-0") == "@policylink/act/main/default/replica/gpu-0/alive"


def test_every_robot_key_names_the_robot_at_one_position_and_the_replica_after_it() -> None:
    ns = wire.Namespace.of("act")
    base = "@policylink/act/main/default/robot/arm-7"
    assert ns.session("arm-7", "gpu-0") == f"{base}/gpu-0/session"
    assert ns.obs("arm-7", "gpu-0") == f"{base}/gpu-0/obs"
    assert ns.action("arm-7", "gpu-0") == f"{base}/gpu-0/action"
    assert ns.reset("arm-7", "gpu-0") == f"{base}/gpu-0/reset"
    assert ns.robot_alive("arm-7", "p1") == f"{base}/p1/alive"
    assert ns.robot_alive("arm-7") == f"{base}/*/alive"


def test_a_replica_hears_every_robot_through_single_level_wildcards_only() -> None:
    ns = wire.Namespace.of("act")
    keys = [ns.every_robot("gpu-0", leaf) for leaf in ("session", "obs", "reset")]
    for key in (*keys, ns.all_robot_alive, ns.all_status, wire.EVERY_STATUS):
        assert "**" not in key
        assert key.startswith("@policylink/")
    assert keys[1] == "@policylink/act/main/default/robot/*/gpu-0/obs"


def test_status_pattern_matches_any_segment_left_empty() -> None:
    assert wire.status_pattern("act") == "@policylink/act/*/*/status/*"
    assert wire.EVERY_STATUS == "@policylink/*/*/*/status/*"


def test_robot_of_reads_the_robot_back_from_every_per_robot_key() -> None:
    ns = wire.Namespace.of("act")
    for key in (
        ns.obs("arm-7", "gpu-0"),
        ns.session("arm-7", "gpu-0"),
        ns.robot_alive("arm-7", "p1"),
    ):
        assert ns.robot_of(key) == "arm-7"
    assert ns.robot_instance_of(ns.robot_alive("arm-7", "p1")) == ("arm-7", "p1")


@pytest.mark.parametrize(
    "key",
    [
        "@policylink/other/main/default/robot/arm/gpu-0/obs",
        "@policylink/act/main/default/replica/gpu-0/alive",
        "@policylink/act/main/default/robot/arm/gpu-0/obs/extra",
        "@policylink/act/main/default/status/gpu-0",
        "@policylink/act/main/default/robot/arm",
        "@policylink/act/main/default/robot/arm/alive",
    ],
)
def test_robot_of_refuses_keys_that_are_not_per_robot_keys_of_this_namespace(key: str) -> None:
    with pytest.raises(wire.KeyExprError):
        wire.Namespace.of("act").robot_of(key)
