"""The parts of an engine wired together with no worker, no network and no policy, so a test
plays the worker's side itself, one call at a time."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from policylink.client import ClientConfig, RobotLayout
from policylink.client.control_face import ControlFace
from policylink.client.request_ledger import Request, RequestLedger, Verdict
from policylink.client.safety_ladder import SafetyLadder, ShutdownCallback
from policylink.wire import ActionChunk, ErrorReply, Observation
from policylink.wire.header import MsgType

LAYOUT = RobotLayout(("a", "b", "c"), ("s0", "s1", "s2"))


@dataclass
class Parts:
    face: ControlFace
    ledger: RequestLedger
    ladder: SafetyLadder

    def request(self, value: float) -> Request:
        """Offer an observation whose state is `value` and take the request built from it."""
        self.face.notify_observation(observation(value))
        request = self.ledger.take_request(time.monotonic_ns())
        assert request is not None
        return request

    def answer(self, request: Request, reply: ActionChunk | ErrorReply) -> Verdict:
        """Hand the ledger a reply carrying `request`'s identity, as a server would echo it."""
        header = request.header.echo(MsgType.ACTION_CHUNK)
        return self.ledger.accept(header, reply, time.monotonic_ns())


def build(on_shutdown: ShutdownCallback | None = None, **config: Any) -> Parts:
    config.setdefault("fps", 100.0)
    config.setdefault("buffer_time_s", 0.0)
    client = ClientConfig(**config)
    face = ControlFace(client, LAYOUT)
    ledger = RequestLedger(client, LAYOUT, face)
    return Parts(face, ledger, SafetyLadder(client, face, ledger, on_shutdown))


def observation(value: float) -> Observation:
    return Observation(state=np.full(3, value, np.float32))


def chunk(first: float, rows: int = 4) -> ActionChunk:
    """Row i commands `first + i` on every motor."""
    robot = np.repeat(first + np.arange(rows, dtype=np.float32)[:, None], 3, axis=1)
    return ActionChunk(chunk_model=robot.copy(), chunk_robot=robot)
