"""A session closing during its own forward must not break the publish of that forward."""

from __future__ import annotations

import threading

import numpy as np

from policylink.net.ports import free_port
from policylink.net.zenoh_session import declare_action_publisher, open_zenoh_session
from policylink.net.zenoh_settings import ZenohSettings
from policylink.server.surfaces.zenoh import _ActionLink
from policylink.wire import ActionChunk, Header, MsgType


def test_closing_a_link_while_the_worker_publishes_on_it_raises_nowhere() -> None:
    session = open_zenoh_session(ZenohSettings(listen=[f"tcp/127.0.0.1:{free_port()}"]))
    try:
        header = Header(1, MsgType.ACTION_CHUNK, seq_id=1)
        chunk = ActionChunk(np.zeros((50, 14), np.float32), np.zeros((50, 14), np.float32))
        errors: list[BaseException] = []
        for attempt in range(20):
            key = f"@policylink/m/main/default/robot{attempt}/action"
            link = _ActionLink(declare_action_publisher(session, key))
            publishing = threading.Event()

            def publish(link: _ActionLink = link, publishing: threading.Event = publishing) -> None:
                try:
                    for _ in range(200):
                        link.send(header, chunk)
                        publishing.set()
                except BaseException as exc:
                    errors.append(exc)

            worker = threading.Thread(target=publish, name="test-publisher")
            worker.start()
            publishing.wait(10)
            try:
                link.close()
            except BaseException as exc:
                errors.append(exc)
            worker.join(10)
        assert errors == []
    finally:
        session.close()
