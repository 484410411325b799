"""The Zenoh access-control list that confines each robot to the keys that name it.

Zenoh enforces it on the process robots connect to (a router, or a server in peer mode), per
connection, keyed on the common name of the certificate the connection presented under mutual
TLS. Permission is denied by default, so a connection without a known certificate can do
nothing. A robot (common name = its client id) may only:

    ingress (robot → network)                       egress (network → robot)
    query       <ns>/status/*                       reply  <ns>/status/*
    query       <ns>/robot/<id>/*/session, reset    reply  <ns>/robot/<id>/*/session, reset
    put         <ns>/robot/<id>/*/obs               put    <ns>/robot/<id>/*/action
    subscribe   <ns>/robot/<id>/*/action            token  <ns>/replica/*/alive
    token       <ns>/robot/<id>/*/alive             the replicas' declarations: subscriber
    liveliness subscriber  <ns>/replica/*/alive       <ns>/robot/*/*/obs, queryables
                                                      <ns>/status/*, <ns>/robot/*/*/session|reset

so robot B can neither open, close nor reset A's session (its query on A's keys never leaves
B's connection), nor publish A's observations, nor receive A's actions (its subscription is
refused, and the router would not forward A's actions to B's connection anyway). The egress
column matters on a router: without it a robot never hears the replies to its own queries.
The replicas' declarations are needed too (found by trying, Zenoh 1.10): without the obs
subscriber's, a robot's publisher believes nobody listens and never sends (client and peer
mode); without the queryables', a peer-mode robot never routes its queries to the server.
They are wildcards (`<ns>/robot/*/<replica>/obs`) and reveal no other robot's id.

The server's common name may do anything under the namespace: declare its queryables and
subscribers, publish actions, hold and watch liveliness tokens, and answer queries.

`<ns>` is `@policylink/<model>/<revision>/<task>`; each level is `*` unless the ACL is made
for one namespace. Zenoh matches a rule when its key expression *includes* the message's key
expression, so a robot whose own key expressions are wider than its rules (a status query for
any model under an ACL for one model) is refused, never silently widened.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from policylink.wire.errors import KeyExprError
from policylink.wire.keys import ROOT, client_segment, sanitize_segment

EVERY_MESSAGE = (
    "put",
    "delete",
    "query",
    "reply",
    "declare_subscriber",
    "declare_queryable",
    "liveliness_token",
    "declare_liveliness_subscriber",
    "liveliness_query",
)
INGRESS, EGRESS = "ingress", "egress"
SERVER_SUBJECT = "policylink-servers"
ROBOTS_SUBJECT = "policylink-robots"


def namespace_pattern(model: str = "", revision: str = "", task: str = "") -> str:
    """`@policylink/<model>/<revision>/<task>`, an empty level matching any (`*`)."""
    try:
        levels = [
            sanitize_segment(value, name) if value and value != "*" else "*"
            for name, value in (("model id", model), ("revision", revision), ("task slug", task))
        ]
    except KeyExprError as exc:
        raise ValueError(str(exc)) from None
    return "/".join([ROOT, *levels])


def access_control(
    robots: list[str],
    *,
    server_common_names: list[str],
    namespace: str | None = None,
) -> dict[str, Any]:
    """Zenoh's `access_control` block: deny by default, the rules in the module docstring.

    `robots` are client ids (= the common names of their certificates); `namespace` is a
    `namespace_pattern`, every namespace when None.
    """
    ns = namespace or namespace_pattern()
    try:
        ids = list(dict.fromkeys(client_segment(robot) for robot in robots))
    except KeyExprError as exc:
        raise ValueError(str(exc)) from None
    servers = list(dict.fromkeys(server_common_names))
    if not servers:
        raise ValueError("an ACL needs at least one server common name")
    overlap = sorted(set(ids) & set(servers))
    if overlap:
        raise ValueError(
            f"{overlap} would be both a robot and a server: a robot's client id must differ "
            "from the server certificates' common names"
        )
    rules: list[dict[str, Any]] = [
        _rule("server", list(EVERY_MESSAGE), [INGRESS, EGRESS], [f"{ns}/**"]),
    ]
    subjects: list[dict[str, Any]] = [{"id": SERVER_SUBJECT, "cert_common_names": servers}]
    policies: list[dict[str, Any]] = [
        {"id": "server", "rules": ["server"], "subjects": [SERVER_SUBJECT]}
    ]
    if ids:
        shared = [
            _rule("robots/status", ["query"], [INGRESS], [f"{ns}/status/*"]),
            _rule("robots/status-replies", ["reply"], [EGRESS], [f"{ns}/status/*"]),
            _rule(
                "robots/replica-presence",
                ["declare_liveliness_subscriber"],
                [INGRESS],
                [f"{ns}/replica/*/alive"],
            ),
            _rule(
                "robots/replica-tokens", ["liveliness_token"], [EGRESS], [f"{ns}/replica/*/alive"]
            ),
            _rule(
                "robots/replica-subscribers",
                ["declare_subscriber"],
                [EGRESS],
                [f"{ns}/robot/*/*/obs"],
            ),
            _rule(
                "robots/replica-queryables",
                ["declare_queryable"],
                [EGRESS],
                [f"{ns}/status/*", f"{ns}/robot/*/*/session", f"{ns}/robot/*/*/reset"],
            ),
        ]
        rules += shared
        subjects.append({"id": ROBOTS_SUBJECT, "cert_common_names": ids})
        policies.append(
            {"id": "robots", "rules": [rule["id"] for rule in shared], "subjects": [ROBOTS_SUBJECT]}
        )
        for robot in ids:
            own = f"{ns}/robot/{robot}"
            mine = [
                _rule(
                    f"{robot}/queries",
                    ["query"],
                    [INGRESS],
                    [f"{own}/*/session", f"{own}/*/reset"],
                ),
                _rule(
                    f"{robot}/replies", ["reply"], [EGRESS], [f"{own}/*/session", f"{own}/*/reset"]
                ),
                _rule(f"{robot}/obs", ["put"], [INGRESS], [f"{own}/*/obs"]),
                _rule(
                    f"{robot}/action-subscriber",
                    ["declare_subscriber"],
                    [INGRESS],
                    [f"{own}/*/action"],
                ),
                _rule(f"{robot}/actions", ["put"], [EGRESS], [f"{own}/*/action"]),
                _rule(f"{robot}/alive", ["liveliness_token"], [INGRESS], [f"{own}/*/alive"]),
            ]
            rules += mine
            subject = f"robot/{robot}"
            subjects.append({"id": subject, "cert_common_names": [robot]})
            policies.append(
                {"id": subject, "rules": [rule["id"] for rule in mine], "subjects": [subject]}
            )
    return {
        "enabled": True,
        "default_permission": "deny",
        "rules": rules,
        "subjects": subjects,
        "policies": policies,
    }


def acl_document(
    robots: list[str],
    *,
    server_common_names: list[str],
    namespace: str | None = None,
) -> dict[str, Any]:
    """A Zenoh configuration holding only `access_control`: what `zenoh.acl_file` and
    `policylink router --acl` load, and what a `zenohd` configuration can merge."""
    return {
        "access_control": access_control(
            robots, server_common_names=server_common_names, namespace=namespace
        )
    }


def write_acl(path: Path, document: dict[str, Any]) -> None:
    """The ACL as JSON (which is JSON5), one rule per line block, readable in review."""
    path.write_text(json.dumps(document, indent=2) + "\n")


def _rule(
    rule_id: str, messages: list[str], flows: list[str], key_exprs: list[str]
) -> dict[str, Any]:
    return {
        "id": rule_id,
        "permission": "allow",
        "flows": flows,
        "messages": messages,
        "key_exprs": key_exprs,
    }
