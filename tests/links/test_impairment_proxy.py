"""The impairment proxy on loopback: real sockets through a real proxy process.

What each test holds it to: a stream arrives whole and in order however late its segments are,
no byte arrives before the link's delay, many connections share one proxy, and datagrams are
dropped and overtaken as on a real lossy path.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import statistics
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from policylink.net.impairment_proxy import Impairment
from policylink.net.proxy_process import ProxyProcess


@contextlib.contextmanager
def tcp_echo() -> Iterator[int]:
    """A TCP echo server on a loopback port, a thread per connection; closed on exit."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, name="tcp-echo", daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


@contextlib.contextmanager
def udp_echo() -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def echo() -> None:
        while True:
            try:
                data, addr = sock.recvfrom(65536)
            except OSError:
                return
            sock.sendto(data, addr)

    threading.Thread(target=echo, name="udp-echo", daemon=True).start()
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _round_trip(conn: socket.socket, payload: bytes) -> tuple[bytes, float]:
    began = time.monotonic()
    conn.sendall(payload)
    got = bytearray()
    while len(got) < len(payload):
        chunk = conn.recv(1 << 20)
        assert chunk, "the proxy closed the connection"
        got += chunk
    return bytes(got), (time.monotonic() - began) * 1e3


def test_stream_arrives_whole_and_in_order_through_loss_and_jitter() -> None:
    payload = os.urandom(2_000_000)
    impairment = Impairment(rtt_ms=10, jitter_ms=5, loss=0.01, reorder=0.05)
    with tcp_echo() as port, ProxyProcess(("127.0.0.1", port), impairment) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as conn:
            echoed, _ = _round_trip(conn, payload)
        stats = proxy.stop()
    assert echoed == payload
    assert stats is not None and stats.bytes_up == stats.bytes_down == len(payload)
    assert stats.fast_retransmits + stats.timeout_retransmits >= 1, stats


def test_no_reply_arrives_before_the_links_round_trip() -> None:
    impairment = Impairment(rtt_ms=40)
    with (
        tcp_echo() as port,
        ProxyProcess(("127.0.0.1", port), impairment) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as conn,
    ):
        rtts = [_round_trip(conn, b"ping")[1] for _ in range(10)]
    assert min(rtts) >= 40.0, rtts
    assert statistics.median(rtts) < 40.0 + 50.0, rtts


def test_many_connections_share_one_proxy() -> None:
    def session(port: int, index: int) -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            payload = struct.pack("!I", index) * 2048
            return all(_round_trip(conn, payload)[0] == payload for _ in range(3))

    with tcp_echo() as port, ProxyProcess(("127.0.0.1", port), Impairment(rtt_ms=5)) as proxy:
        with ThreadPoolExecutor(max_workers=64) as pool:
            results = list(pool.map(lambda i: session(proxy.port, i), range(64)))
        stats = proxy.stop()
    assert all(results)
    assert stats is not None and stats.connections == 64 and stats.refused_connections == 0


def test_datagrams_are_dropped_and_overtaken() -> None:
    impairment = Impairment(rtt_ms=20, jitter_ms=8, loss=0.2)
    sent = 300
    with udp_echo() as port, ProxyProcess(("127.0.0.1", port), impairment, udp=True) as proxy:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2.0)
            for seq in range(sent):
                sock.sendto(struct.pack("!I", seq), ("127.0.0.1", proxy.port))
                time.sleep(0.001)
            arrived = []
            with contextlib.suppress(TimeoutError):
                while len(arrived) < sent:
                    arrived.append(struct.unpack("!I", sock.recv(64))[0])
        stats = proxy.stop()
    # Each datagram crosses twice: about (1 - 0.2)^2 = 64 % come back.
    assert 0.45 * sent <= len(arrived) <= 0.8 * sent, (len(arrived), stats)
    assert stats is not None and stats.dropped_datagrams >= 0.1 * sent, stats
    assert any(later < earlier for earlier, later in itertools.pairwise(arrived)), "none overtaken"
