"""A robot that holds a valid certificate of its own and tries to act as another robot.

It speaks the protocol by hand over raw Zenoh, so nothing in the policylink client can stop it
from sending what the transport lets through: whatever it achieves against another robot's
keys, it achieved against Zenoh's access control and the server, not against a polite client.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import zenoh

from policylink import wire
from policylink.net.zenoh_session import gather, open_zenoh_session, query
from policylink.net.zenoh_settings import ZenohSettings

SCHEMA = wire.SCHEMA_VERSION


class RawRobot:
    """A Zenoh session with one robot's certificate and the protocol spoken by hand."""

    def __init__(self, settings: ZenohSettings, namespace: wire.Namespace, replica: str) -> None:
        self.namespace, self.replica = namespace, replica
        self.session = open_zenoh_session(settings)
        self._lock = threading.Lock()
        self.heard: list[str] = []  # keys of every sample any eavesdropping subscriber got
        self._declared: list[zenoh.Subscriber | zenoh.Queryable | zenoh.LivelinessToken] = []

    def ask(self, key: str, message: wire.Message, timeout_s: float) -> list[wire.Message]:
        """Every answer to one control query on `key` (none when Zenoh drops the query)."""
        header = wire.Header(SCHEMA, message.MSG_TYPE, seq_id=1, client_mono_ns=time.monotonic_ns())
        answers: list[wire.Message] = []
        replies = query(
            self.session, key, wire.encode_message(message), wire.pack_header(header), timeout_s
        )
        for reply in replies:
            sample = reply.ok
            if sample is None or sample.attachment is None:
                continue
            reply_header = wire.unpack_header(sample.attachment.to_bytes())
            answers.append(wire.decode_message(reply_header.msg_type, sample.payload.to_bytes()))
        return answers

    def status(self, timeout_s: float = 10.0) -> wire.Status:
        (answer,) = self.ask(self.namespace.status(self.replica), wire.StatusRequest(), timeout_s)
        assert isinstance(answer, wire.Status), answer
        return answer

    def open_request(self, client_id: str) -> wire.SessionOpen:
        """A session open with the served policy's own layout, claiming `client_id`."""
        caps = self.status().capabilities
        return wire.SessionOpen(
            client_id=client_id,
            action_names=list(caps.action_names),
            state_dim=caps.state_dim,
            cameras=list(caps.cameras),
            fps=caps.trained_fps,
        )

    def open_as(self, key_client: str, body_client: str, timeout_s: float) -> list[wire.Message]:
        key = self.namespace.session(key_client, self.replica)
        return self.ask(key, self.open_request(body_client), timeout_s)

    def answering_replicas(self, key: str, timeout_s: float = 10.0) -> list[str]:
        """Who answers a status gather on `key`: the replica id of each answer that is a
        status, and `?<key>` for each that is not."""
        header = wire.pack_header(wire.Header(SCHEMA, wire.MsgType.STATUS_REQUEST))
        body = wire.encode_message(wire.StatusRequest())
        found = []
        for reply in gather(self.session, key, body, header, timeout_s):
            sample = reply.ok
            if sample is None:
                continue
            try:
                status = wire.decode_message(wire.MsgType.STATUS, sample.payload.to_bytes())
                assert isinstance(status, wire.Status)
                found.append(status.replica_id)
            except (wire.WireError, AssertionError):
                found.append(f"?{sample.key_expr}")
        return found

    def pose_as_replica(self, replica: str) -> None:
        """Answer status queries as if this robot were a replica named `replica`."""
        key = self.namespace.status(replica)

        def answer(query: zenoh.Query) -> None:
            with query:
                query.reply(key, b"not a status")

        self._declared.append(self.session.declare_queryable(key, answer))

    def hold_token(self, key: str) -> None:
        """Declare a liveliness token on `key`, held until `close()`."""
        self._declared.append(self.session.liveliness().declare_token(key))

    def eavesdrop(self, key: str) -> None:
        """Subscribe to `key`; every sample that arrives is recorded in `heard`."""
        self._declared.append(self.session.declare_subscriber(key, self._on_sample))

    def _on_sample(self, sample: zenoh.Sample) -> None:
        with self._lock:
            self.heard.append(str(sample.key_expr))

    def heard_so_far(self) -> list[str]:
        with self._lock:
            return list(self.heard)

    def put(self, key: str, payload: bytes) -> None:
        """Raw bytes on `key`, with an observation's header."""
        header = wire.Header(SCHEMA, wire.MsgType.OBSERVATION, seq_id=1 << 40)
        self.session.put(key, payload, attachment=wire.pack_header(header))

    def observe(self, client_id: str, ack: wire.SessionAck, state: list[float]) -> None:
        """A well-formed observation on `client_id`'s key, in the session `ack` opened."""
        header = wire.Header(
            SCHEMA,
            wire.MsgType.OBSERVATION,
            seq_id=1,
            client_mono_ns=time.monotonic_ns(),
            session_epoch=ack.session_epoch,
        )
        body = wire.encode_observation(wire.Observation(state=np.asarray(state, np.float32)))
        key = self.namespace.obs(client_id, self.replica)
        self.session.put(key, body, attachment=wire.pack_header(header))

    def close(self) -> None:
        for entity in self._declared:
            entity.undeclare()
        self.session.close()
