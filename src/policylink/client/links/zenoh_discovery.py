"""What is served behind an endpoint: every policylink server's status, whatever its namespace.

A robot that names the wrong model, revision or task finds nobody under its own key. Asking
the wildcard status key instead lists what *is* there, which turns "no server answered" into
"this endpoint serves X, you asked for Y".
"""

from __future__ import annotations

import time

from policylink.net.zenoh_session import gather, open_zenoh_session
from policylink.net.zenoh_settings import ZenohSettings
from policylink.wire.codec import decode_expected, encode_message
from policylink.wire.errors import WireError
from policylink.wire.header import Header, MsgType, pack_header, unpack_header
from policylink.wire.keys import EVERY_STATUS
from policylink.wire.messages import Status, StatusRequest
from policylink.wire.schema import SCHEMA_VERSION

LINK_POLL_S = 0.02


class DiscoveryError(ConnectionError):
    """Nothing could be asked: no link to the endpoint came up in time."""


def discover(
    settings: ZenohSettings, key: str = EVERY_STATUS, timeout_s: float = 2.0
) -> tuple[list[Status], list[str]]:
    """Statuses of every replica answering `key` (all of them), and a line for each
    unreadable answer."""
    session = open_zenoh_session(settings)
    try:
        deadline = time.monotonic() + timeout_s
        info = session.info
        while not (info.routers_zid() or info.peers_zid()):
            if time.monotonic() > deadline:
                raise DiscoveryError(
                    f"no Zenoh link to {', '.join(settings.connect) or 'any endpoint'} within "
                    f"{timeout_s:g} s; check the address, the port and that the server or router "
                    "is running"
                )
            time.sleep(LINK_POLL_S)
        header = pack_header(Header(SCHEMA_VERSION, MsgType.STATUS_REQUEST))
        statuses: list[Status] = []
        problems: list[str] = []
        for reply in gather(session, key, encode_message(StatusRequest()), header, timeout_s):
            sample = reply.ok
            if sample is None:
                continue
            try:
                attachment = None if sample.attachment is None else sample.attachment.to_bytes()
                reply_header = unpack_header(attachment)
                answer = decode_expected(Status, reply_header.msg_type, sample.payload.to_bytes())
            except WireError as exc:
                problems.append(f"{sample.key_expr}: unreadable status ({exc})")
                continue
            if isinstance(answer, Status):
                statuses.append(answer)
            else:
                problems.append(f"{sample.key_expr}: {answer.code.value}: {answer.message}")
        return statuses, problems
    finally:
        session.close()
