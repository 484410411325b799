"""A bare robot for server tests: raw Zenoh and the wire format, no policylink client.

It speaks the native protocol by hand so the server is tested against the protocol itself, not
against another component's interpretation of it.
"""

from __future__ import annotations

import queue
import time

import numpy as np
import zenoh

from policylink import wire
from policylink.net.zenoh_session import declare_observation_publisher, open_zenoh_session, query
from policylink.net.zenoh_settings import ZenohSettings

SCHEMA = wire.SCHEMA_VERSION


class Robot:
    def __init__(
        self,
        endpoint: str,
        namespace: wire.Namespace,
        client_id: str,
        *,
        replica: str,
        declare_liveliness: bool = False,
        instance: str | None = None,
    ) -> None:
        self.namespace, self.client_id, self.replica = namespace, client_id, replica
        self.instance = instance or f"{client_id}-process"
        self.session = open_zenoh_session(ZenohSettings(mode="peer", connect=[endpoint]))
        self.replies: queue.Queue[tuple[wire.Header, wire.Message]] = queue.Queue()
        self._subscriber = self.session.declare_subscriber(
            namespace.action(client_id, replica), self._on_action
        )
        self._publisher = declare_observation_publisher(
            self.session, namespace.obs(client_id, replica)
        )
        self.token = (
            self.session.liveliness().declare_token(namespace.robot_alive(client_id, self.instance))
            if declare_liveliness
            else None
        )
        self.ack: wire.SessionAck | None = None
        self._closed = False

    def _on_action(self, sample: zenoh.Sample) -> None:
        attachment = sample.attachment
        header = wire.unpack_header(None if attachment is None else attachment.to_bytes())
        self.replies.put((header, wire.decode_message(header.msg_type, sample.payload.to_bytes())))

    def request(self, key: str, message: wire.Message) -> tuple[wire.Header, wire.Message]:
        header = wire.Header(SCHEMA, message.MSG_TYPE, seq_id=1, client_mono_ns=time.monotonic_ns())
        replies = query(
            self.session, key, wire.encode_message(message), wire.pack_header(header), 10.0
        )
        assert len(replies) == 1, f"expected one reply on {key}, got {len(replies)}"
        sample = replies[0].ok
        assert sample is not None, f"query on {key} failed: {replies[0].err}"
        reply_header = wire.unpack_header(sample.attachment.to_bytes())
        return reply_header, wire.decode_message(reply_header.msg_type, sample.payload.to_bytes())

    def status(self) -> wire.Status:
        _, message = self.request(self.namespace.status(self.replica), wire.StatusRequest())
        assert isinstance(message, wire.Status)
        return message

    def session_open(self, **fields: object) -> wire.SessionAck | wire.ErrorReply:
        """Open with the server's own capabilities, except the fields given."""
        caps = self.status().capabilities
        request = wire.SessionOpen(
            client_id=self.client_id,
            action_names=list(caps.action_names),
            state_dim=caps.state_dim,
            cameras=list(caps.cameras),
            fps=caps.trained_fps,
            instance=self.instance,
        )
        for name, value in fields.items():
            setattr(request, name, value)
        _, reply = self.request(self.namespace.session(self.client_id, self.replica), request)
        assert isinstance(reply, wire.SessionAck | wire.ErrorReply)
        if isinstance(reply, wire.SessionAck):
            self.ack = reply
        return reply

    def opened(self, **fields: object) -> wire.SessionAck:
        reply = self.session_open(**fields)
        assert isinstance(reply, wire.SessionAck), reply
        return reply

    def send(
        self,
        state: np.ndarray | list[float],
        seq_id: int,
        *,
        episode_id: int = 0,
        epoch: int | None = None,
        images: dict[str, np.ndarray] | None = None,
        **fields: object,
    ) -> None:
        obs = wire.Observation(state=np.asarray(state, dtype=np.float32), images=images or {})
        for name, value in fields.items():
            setattr(obs, name, value)
        if epoch is None:
            epoch = self.ack.session_epoch if self.ack else 0
        header = wire.Header(
            SCHEMA,
            wire.MsgType.OBSERVATION,
            seq_id=seq_id,
            episode_id=episode_id,
            client_mono_ns=time.monotonic_ns(),
            session_epoch=epoch,
        )
        self._publisher.put(wire.encode_observation(obs), attachment=wire.pack_header(header))

    def next_reply(self, timeout_s: float = 20.0) -> tuple[wire.Header, wire.Message]:
        try:
            return self.replies.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"no reply for {self.client_id} within {timeout_s} s") from None

    def next_chunk(self, timeout_s: float = 20.0) -> tuple[wire.Header, wire.ActionChunk]:
        header, message = self.next_reply(timeout_s)
        assert isinstance(message, wire.ActionChunk), message
        return header, message

    def reset(self, episode_id: int) -> wire.Message:
        assert self.ack is not None
        _, reply = self.request(
            self.namespace.reset(self.client_id, self.replica),
            wire.Reset(session_id=self.ack.session_id, episode_id=episode_id),
        )
        return reply

    def close(self) -> None:
        """Idempotent: a test may close a robot (a crash) before the fixture does."""
        if self._closed:
            return
        self._closed = True
        if self.token is not None:
            self.token.undeclare()
        self._subscriber.undeclare()
        self._publisher.undeclare()
        self.session.close()
