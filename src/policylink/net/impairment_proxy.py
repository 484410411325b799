"""An impairment proxy: delay, jitter, reordering and loss on a path the kernel cannot impair.

`python -m policylink.net.impairment_proxy --listen 127.0.0.1:0 --upstream 10.213.0.2:7447
--rtt-ms 100 --loss 0.02` accepts connections (TCP, or datagrams with `--udp`) and relays them
to the upstream address, each direction delayed by half the round trip plus a uniform ±jitter.
It prints one `proxying <protocol> <host>:<port> -> ...` line once it listens (port 0 lets the
kernel choose; the line tells which) and a `stats {json}` line when SIGTERM or SIGINT ends it.

What "loss" is depends on what crosses the link:

- **TCP** is a byte stream: a lost segment is never lost to the application, it is sent again.
  The receiver gets nothing past the hole until the retransmission arrives (head-of-line
  blocking), so the proxy models a loss as a late delivery. Each chunk the proxy reads stands
  for `ceil(bytes / 1448)` segments, each lost with probability `loss`. A segment with three
  or more behind it is repaired by fast retransmit, one round trip late; one at the tail (the
  common case for a robot's request/reply traffic) waits for the timer: `max(rto_ms, 2 * RTT)`,
  `rto_ms` defaulting to 200 ms, Linux's minimum retransmission timeout. Every byte after a late
  segment waits for it. Reordering on a stream is the same shape, smaller: the overtaken
  segment holds the rest back by `reorder_ms`.
- **UDP** datagrams are dropped with probability `loss`, and each one is delayed on its own, so
  jitter reorders them as it would on a real path; `reorder` holds a datagram back by
  `reorder_ms` more, letting later ones overtake it.

Memory is bounded: a TCP direction holds at most `QUEUE_CHUNKS` chunks of at most `CHUNK_BYTES`
(reading stops when it is full, and TCP's flow control pushes back to the sender), at most
`max_connections` connections (more are closed at once) and at most `MAX_DATAGRAMS_IN_FLIGHT`
datagrams (more are dropped, as a full router queue drops them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import IO, cast

TCP_SEGMENT_BYTES = 1448
CHUNK_BYTES = 64 * 1024
QUEUE_CHUNKS = 32
MAX_DATAGRAMS_IN_FLIGHT = 4096
UPSTREAM_CONNECT_TIMEOUT_S = 10.0
UDP_FLOW_IDLE_S = 60.0
READY_MARK = "proxying "
STATS_MARK = "stats "


@dataclass(frozen=True)
class Impairment:
    """What the proxy does to each direction; times in milliseconds, probabilities in [0, 1)."""

    rtt_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    reorder: float = 0.0
    rto_ms: float = 200.0
    reorder_ms: float = 5.0

    def __post_init__(self) -> None:
        for name in ("rtt_ms", "jitter_ms", "rto_ms", "reorder_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("loss", "reorder"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} is a probability in [0, 1), got {getattr(self, name)}")

    def describe(self) -> str:
        parts = [f"+{self.rtt_ms:g} ms RTT", f"±{self.jitter_ms:g} ms jitter each way"]
        if self.loss:
            parts.append(f"{self.loss:.1%} loss")
        if self.reorder:
            parts.append(f"{self.reorder:.1%} reordered")
        return ", ".join(parts)

    def to_args(self) -> list[str]:
        """The command-line flags that give a proxy this impairment."""
        return [f"--{name.replace('_', '-')}={value!r}" for name, value in asdict(self).items()]


@dataclass
class ProxyStats:
    """Counters of one proxy run; the event loop's thread is the only writer."""

    connections: int = 0
    refused_connections: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    fast_retransmits: int = 0
    timeout_retransmits: int = 0
    late_for_reorder: int = 0
    datagrams: int = 0
    dropped_datagrams: int = 0
    reordered_datagrams: int = 0


class _Shaper:
    """Draws one-way delays and the fate of each chunk or datagram from one seeded source."""

    def __init__(self, impairment: Impairment, stats: ProxyStats, seed: int) -> None:
        self.impairment = impairment
        self.stats = stats
        self._random = random.Random(seed)

    def one_way_s(self) -> float:
        spread = self._random.uniform(-1.0, 1.0) * self.impairment.jitter_ms
        return max(0.0, self.impairment.rtt_ms / 2 + spread) / 1e3

    def stream_penalty_s(self, size: int) -> float:
        """The extra wait of a TCP chunk of `size` bytes for a lost or overtaken segment."""
        impairment = self.impairment
        segments = math.ceil(size / TCP_SEGMENT_BYTES)
        if impairment.loss:
            for index in range(segments):
                if self._random.random() < impairment.loss:
                    return self._retransmission_s(segments - index - 1)
        if impairment.reorder and self._random.random() < 1 - (1 - impairment.reorder) ** segments:
            self.stats.late_for_reorder += 1
            return impairment.reorder_ms / 1e3
        return 0.0

    def _retransmission_s(self, segments_behind: int) -> float:
        """How long a lost segment takes to come again: with three segments behind it, their
        duplicate ACKs trigger a fast retransmit one round trip later; a loss at the tail waits
        for the timer (a tail-loss probe or the retransmission timeout, whichever is later in
        Linux: at least `rto_ms`, at least two round trips)."""
        rtt_ms = self.impairment.rtt_ms
        if segments_behind >= 3:
            self.stats.fast_retransmits += 1
            return rtt_ms / 1e3
        self.stats.timeout_retransmits += 1
        return max(self.impairment.rto_ms, 2 * rtt_ms) / 1e3

    def datagram_delay_s(self) -> float | None:
        """A datagram's delay, or None when it is lost."""
        self.stats.datagrams += 1
        if self.impairment.loss and self._random.random() < self.impairment.loss:
            self.stats.dropped_datagrams += 1
            return None
        delay = self.one_way_s()
        if self.impairment.reorder and self._random.random() < self.impairment.reorder:
            self.stats.reordered_datagrams += 1
            delay += self.impairment.reorder_ms / 1e3
        return delay


class TcpProxy:
    """Relays each accepted connection to `upstream`, both directions through a delay line."""

    def __init__(
        self, upstream: tuple[str, int], shaper: _Shaper, max_connections: int = 256
    ) -> None:
        self.upstream = upstream
        self.shaper = shaper
        self.max_connections = max_connections
        self._open = 0

    async def handle(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        stats = self.shaper.stats
        if self._open >= self.max_connections:
            stats.refused_connections += 1
            client_out.close()
            return
        self._open += 1
        stats.connections += 1
        try:
            try:
                server_in, server_out = await asyncio.wait_for(
                    asyncio.open_connection(*self.upstream), UPSTREAM_CONNECT_TIMEOUT_S
                )
            except (OSError, asyncio.TimeoutError):
                return
            up = asyncio.ensure_future(self._carry(client_in, server_out, "bytes_up"))
            down = asyncio.ensure_future(self._carry(server_in, client_out, "bytes_down"))
            # A reset on either side ends the connection; an orderly end waits for the other.
            done, pending = await asyncio.wait((up, down), return_when=asyncio.FIRST_EXCEPTION)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                task.exception()  # retrieved: a peer's reset is how connections end
            server_out.close()
        finally:
            self._open -= 1
            client_out.close()

    async def _carry(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, counter: str
    ) -> None:
        """One direction: a reader stamps each chunk with its due time, a writer waits for it.

        Either failing ends the direction: a writer whose peer reset must not leave the reader
        blocked on a full line."""
        line: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(QUEUE_CHUNKS)
        tasks = (
            asyncio.ensure_future(self._read(source, line)),
            asyncio.ensure_future(self._deliver(line, sink, counter)),
        )
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if (error := task.exception()) is not None:
                    raise error
        finally:
            for task in tasks:
                task.cancel()

    async def _read(
        self, source: asyncio.StreamReader, line: asyncio.Queue[tuple[float, bytes] | None]
    ) -> None:
        loop = asyncio.get_running_loop()
        shaper = self.shaper
        last_due = 0.0
        while data := await source.read(CHUNK_BYTES):
            due = loop.time() + shaper.one_way_s() + shaper.stream_penalty_s(len(data))
            # A stream delivers in order: nothing overtakes a chunk that is held back.
            last_due = max(due, last_due)
            await line.put((last_due, data))
        await line.put(None)

    async def _deliver(
        self,
        line: asyncio.Queue[tuple[float, bytes] | None],
        sink: asyncio.StreamWriter,
        counter: str,
    ) -> None:
        loop = asyncio.get_running_loop()
        stats = self.shaper.stats
        while (item := await line.get()) is not None:
            due, data = item
            await asyncio.sleep(max(0.0, due - loop.time()))
            sink.write(data)
            setattr(stats, counter, getattr(stats, counter) + len(data))
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()


class _UdpFlow(asyncio.DatagramProtocol):
    """The upstream socket of one client address; replies go back to that address."""

    def __init__(self, relay: UdpProxy, client: tuple[str, int]) -> None:
        self.relay = relay
        self.client = client
        self.transport: asyncio.DatagramTransport | None = None
        self.opening: asyncio.Future[None] | None = None
        self.last_used = asyncio.get_running_loop().time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.last_used = asyncio.get_running_loop().time()
        self.relay.schedule(data, self.to_client)

    def to_client(self, data: bytes) -> None:
        self.relay.send_to_client(self.client, data)

    def to_upstream(self, data: bytes) -> None:
        if self.transport is not None:  # a datagram sent before the socket opened is lost
            self.transport.sendto(data)
            self.relay.shaper.stats.bytes_up += len(data)


class UdpProxy(asyncio.DatagramProtocol):
    """Relays datagrams from each client address through its own upstream socket."""

    def __init__(self, upstream: tuple[str, int], shaper: _Shaper, max_flows: int = 256) -> None:
        self.upstream = upstream
        self.shaper = shaper
        self.max_flows = max_flows
        self.transport: asyncio.DatagramTransport | None = None
        self._flows: dict[tuple[str, int], _UdpFlow] = {}
        self._in_flight = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        flow = self._flows.get(addr)
        if flow is None:
            if len(self._flows) >= self.max_flows:
                self.shaper.stats.refused_connections += 1
                return
            flow = _UdpFlow(self, addr)
            self._flows[addr] = flow
            self.shaper.stats.connections += 1
            flow.opening = asyncio.ensure_future(self._open_flow(flow))
        flow.last_used = asyncio.get_running_loop().time()
        self.schedule(data, flow.to_upstream)

    async def _open_flow(self, flow: _UdpFlow) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: flow, remote_addr=self.upstream)

    def schedule(self, data: bytes, deliver: Callable[[bytes], None]) -> None:
        delay = self.shaper.datagram_delay_s()
        if delay is None:
            return
        if self._in_flight >= MAX_DATAGRAMS_IN_FLIGHT:
            self.shaper.stats.dropped_datagrams += 1
            return
        self._in_flight += 1
        asyncio.get_running_loop().call_later(delay, self._release, deliver, data)

    def _release(self, deliver: Callable[[bytes], None], data: bytes) -> None:
        self._in_flight -= 1
        deliver(data)

    def send_to_client(self, client: tuple[str, int], data: bytes) -> None:
        if self.transport is not None:
            self.transport.sendto(data, client)
            self.shaper.stats.bytes_down += len(data)

    def forget_idle(self, now: float) -> None:
        for addr, flow in list(self._flows.items()):
            if now - flow.last_used > UDP_FLOW_IDLE_S:
                del self._flows[addr]
                if flow.transport is not None:
                    flow.transport.close()


def _address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r}: use HOST:PORT, e.g. 127.0.0.1:7447")
    return host, int(port)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m policylink.net.impairment_proxy",
        description="Relay TCP (or UDP) to an upstream address with delay, jitter, reordering "
        "and loss.",
    )
    parser.add_argument("--listen", type=_address, required=True, help="HOST:PORT (port 0: any)")
    parser.add_argument("--upstream", type=_address, required=True, help="HOST:PORT to relay to")
    parser.add_argument("--udp", action="store_true", help="relay datagrams instead of TCP")
    defaults = Impairment()
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=value)
    parser.add_argument("--seed", type=int, default=0, help="seed of the impairment draws")
    parser.add_argument("--max-connections", type=int, default=256)
    parser.add_argument(
        "--stop-on-stdin-close",
        action="store_true",
        help="exit when stdin closes (a parent that started this proxy died)",
    )
    return parser


async def serve(args: argparse.Namespace) -> ProxyStats:
    """Runs until SIGTERM or SIGINT; returns the counters."""
    names = ("rtt_ms", "jitter_ms", "loss", "reorder", "rto_ms", "reorder_ms")
    impairment = Impairment(**{name: getattr(args, name) for name in names})
    stats = ProxyStats()
    shaper = _Shaper(impairment, stats, args.seed)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if args.stop_on_stdin_close:
        watch = asyncio.ensure_future(_stop_on_close(sys.stdin, stop))
    host, port = args.listen
    if args.udp:
        relay = UdpProxy(args.upstream, shaper, args.max_connections)
        transport, _ = await loop.create_datagram_endpoint(lambda: relay, local_addr=(host, port))
        bound = transport.get_extra_info("sockname")[1]
        protocol = "udp"
    else:
        tcp = TcpProxy(args.upstream, shaper, args.max_connections)
        server = await asyncio.start_server(tcp.handle, host, port)
        bound = server.sockets[0].getsockname()[1]
        protocol = "tcp"
    upstream = f"{args.upstream[0]}:{args.upstream[1]}"
    print(
        f"{READY_MARK}{protocol} {host}:{bound} -> {upstream} ({impairment.describe()})", flush=True
    )
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), UDP_FLOW_IDLE_S / 4)
        if args.udp:
            relay.forget_idle(loop.time())
    if args.stop_on_stdin_close:
        watch.cancel()
    if args.udp:
        transport.close()
    else:
        server.close()
    return stats


async def _stop_on_close(stream: IO[str], stop: asyncio.Event) -> None:
    """Sets `stop` at end of file: the parent holding the other end is gone, however it died."""
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stream)
    while await reader.read(4096):
        continue
    stop.set()


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        stats = asyncio.run(serve(args))
    except ValueError as exc:
        print(f"impairment proxy: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as exc:
        print(f"impairment proxy: cannot listen on {args.listen}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"{STATS_MARK}{json.dumps(asdict(stats))}", flush=True)


if __name__ == "__main__":
    main()
