"""One request in flight from a robot-side transport: the round trips a benchmark times.

Each observation goes out the moment the chunk for the one before it has arrived, so nothing
queues anywhere and each round trip is the transport's own cost plus the server's: encode,
network, server (decode, checks, forward, encode), network, decode.
"""

from __future__ import annotations

import queue
import time

from policylink.client.link import ClientLink
from policylink.wire import (
    ActionChunk,
    Header,
    Message,
    MsgType,
    Observation,
    SessionAck,
    SessionOpen,
)

HANDSHAKE_TIMEOUT_S = 10.0
REPLY_TIMEOUT_S = 30.0


def one_in_flight(
    transport: ClientLink, request: SessionOpen, obs: Observation, requests: int, warmup: int
) -> tuple[list[float], list[float]]:
    """Round trips and the forwards the server reported for them, in ms, for the last
    `requests` of `warmup + requests` observations. Connects the transport, opens the session,
    and closes the transport at the end."""
    replies: queue.SimpleQueue[tuple[int, Header, Message]] = queue.SimpleQueue()
    transport.connect(lambda header, msg: replies.put((time.perf_counter_ns(), header, msg)))
    try:
        ack = transport.handshake(request, HANDSHAKE_TIMEOUT_S)
        if not isinstance(ack, SessionAck):
            raise RuntimeError(f"session refused: {ack.message}")
        rtt_ms, forward_ms = [], []
        for seq in range(1, warmup + requests + 1):
            header = Header(
                ack.schema_version,
                MsgType.OBSERVATION,
                seq_id=seq,
                client_mono_ns=time.monotonic_ns(),
                session_epoch=ack.session_epoch,
            )
            began = time.perf_counter_ns()
            transport.send(header, obs)
            arrived, reply_header, reply = replies.get(timeout=REPLY_TIMEOUT_S)
            if reply_header.seq_id != seq or not isinstance(reply, ActionChunk):
                raise RuntimeError(f"unexpected reply to request {seq}: {reply}")
            if seq > warmup:
                rtt_ms.append((arrived - began) / 1e6)
                forward_ms.append(reply.inference_ms)
    finally:
        transport.close()
    return rtt_ms, forward_ms
