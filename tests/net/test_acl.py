"""The generated access-control list: what it grants a robot, and that Zenoh accepts it.

Whether it holds against a robot that tries another's keys is `tests/security`; here is its
shape, and the loader's refusals.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zenoh

from policylink.net.acl import access_control, acl_document, namespace_pattern, write_acl
from policylink.net.zenoh_session import load_access_control

SERVER = "policylink-server"


def grants(block: dict, subject: str) -> set[tuple[str, str, str]]:
    """(message, flow, key expression) for every rule of every policy naming `subject`."""
    rules = {rule["id"]: rule for rule in block["rules"]}
    found = set()
    for policy in block["policies"]:
        if subject in policy["subjects"]:
            for rule in map(rules.__getitem__, policy["rules"]):
                assert rule["permission"] == "allow"
                for message in rule["messages"]:
                    for flow in rule["flows"]:
                        found.update((message, flow, key) for key in rule["key_exprs"])
    return found


def test_a_robot_may_use_only_the_keys_that_name_it() -> None:
    block = access_control(["arm-1", "arm-2"], server_common_names=[SERVER])
    assert block["enabled"] and block["default_permission"] == "deny"
    ns, own = "@policylink/*/*/*", "@policylink/*/*/*/robot/arm-1"
    assert grants(block, "robot/arm-1") == {
        ("query", "ingress", f"{own}/*/session"),
        ("query", "ingress", f"{own}/*/reset"),
        ("reply", "egress", f"{own}/*/session"),
        ("reply", "egress", f"{own}/*/reset"),
        ("put", "ingress", f"{own}/*/obs"),
        ("declare_subscriber", "ingress", f"{own}/*/action"),
        ("put", "egress", f"{own}/*/action"),
        ("liveliness_token", "ingress", f"{own}/*/alive"),
    }
    shared = grants(block, "policylink-robots")
    assert ("query", "ingress", f"{ns}/status/*") in shared
    assert ("reply", "egress", f"{ns}/status/*") in shared
    assert ("declare_liveliness_subscriber", "ingress", f"{ns}/replica/*/alive") in shared
    assert ("liveliness_token", "egress", f"{ns}/replica/*/alive") in shared
    # What a robot may *receive* of the replicas' declarations; nothing of another robot's.
    assert {flow for _, flow, _ in shared if "/robot/" in _} == {"egress"}
    subjects = {s["id"]: s["cert_common_names"] for s in block["subjects"]}
    assert subjects == {
        "policylink-servers": [SERVER],
        "policylink-robots": ["arm-1", "arm-2"],
        "robot/arm-1": ["arm-1"],
        "robot/arm-2": ["arm-2"],
    }


def test_the_server_may_do_anything_under_the_namespace() -> None:
    block = access_control([], server_common_names=[SERVER, "policylink-router"])
    servers = grants(block, "policylink-servers")
    assert {key for _, _, key in servers} == {"@policylink/*/*/*/**"}
    assert len(servers) == 9 * 2  # every message kind, both ways
    assert [s["id"] for s in block["subjects"]] == ["policylink-servers"]


def test_an_acl_for_one_namespace_names_it() -> None:
    ns = namespace_pattern("org/model", "", "pick")
    assert ns == "@policylink/org_model/*/pick"
    block = access_control(["arm-1"], server_common_names=[SERVER], namespace=ns)
    assert all(key.startswith(ns + "/") for rule in block["rules"] for key in rule["key_exprs"])


def test_robot_ids_are_checked_and_may_not_be_a_server() -> None:
    with pytest.raises(ValueError, match="not a valid key segment"):
        access_control(["arm 1"], server_common_names=[SERVER])
    with pytest.raises(ValueError, match="both a robot and a server"):
        access_control([SERVER], server_common_names=[SERVER])


def test_zenoh_accepts_the_acl(tmp_path: Path) -> None:
    path = tmp_path / "acl.json5"
    write_acl(path, acl_document(["arm-1", "arm_2.b"], server_common_names=[SERVER]))
    config = zenoh.Config()
    config.insert_json5("mode", '"peer"')
    config.insert_json5("scouting/multicast/enabled", "false")
    config.insert_json5("listen/endpoints", "[]")
    config.insert_json5("access_control", load_access_control(str(path)))
    zenoh.open(config).close()  # Zenoh builds its policy enforcer here, or refuses to open


def test_a_json5_acl_with_comments_loads(tmp_path: Path) -> None:
    path = tmp_path / "acl.json5"
    block = access_control(["arm-1"], server_common_names=[SERVER])
    path.write_text("// hand-edited\n{access_control: " + json.dumps(block) + ",}\n")
    assert json.loads(load_access_control(str(path)))["policies"] == block["policies"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{}", "no enabled access_control block"),
        ("{access_control: {enabled: false}}", "no enabled access_control block"),
        ("{rules: []}", "is not a Zenoh configuration"),
        ("not json", "is not a Zenoh configuration"),
    ],
)
def test_an_acl_file_that_would_enforce_nothing_is_refused(
    tmp_path: Path, text: str, error: str
) -> None:
    path = tmp_path / "acl.json5"
    path.write_text(text)
    with pytest.raises(ValueError, match=error):
        load_access_control(str(path))
