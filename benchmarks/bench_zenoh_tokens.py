"""What liveliness tokens under ever-new keys cost a Zenoh peer, with no policylink in the way.

The fuzz benchmark found one attack class that the server cannot shed: a peer that declares
and undeclares liveliness tokens, each on a key it never used before, makes the server's Zenoh
runtime slower with every token and grows its memory. This benchmark shows it on bare Zenoh, so
it can be reported upstream and rechecked on each Zenoh release:

- a *listener* peer (the server's role: it listens, and holds a liveliness subscriber on the
  tokens' key space and a queryable), in a process of its own;
- a *churner* peer dials it and declares tokens at a fixed rate, holding at most `HOLD` at once
  and undeclaring the oldest — on keys it cycles through (`reused`), or on a new key each time
  (`fresh`); then, for `fresh`, it disconnects and a second churner on reused keys follows, to
  see whether the state went with the first connection;
- a *pinger* peer queries the listener's queryable 100 times a second throughout: its round
  trips are what any other traffic through the listener pays meanwhile.

Reported per case and per window: the listener's CPU per token (ms), its RSS, and the pinger's
round trip p50/p99 — side by side, reused against fresh keys, in one run.
"""

from __future__ import annotations

import collections
import contextlib
import json
import multiprocessing
import random
import time
from multiprocessing.synchronize import Event
from typing import Any

import zenoh

from benchmarks.proc_stats import cpu_seconds, rss_mib
from benchmarks.timing import percentile
from policylink.net.ports import free_port

TOKENS_KEY = "bench/robot/*/*/alive"
ECHO_KEY = "bench/echo"
HOLD = 16
REUSED_KEYS = 256
PING_PERIOD_S = 0.01
FULL = {"rate_per_s": 300.0, "seconds": 60.0, "window_s": 10.0}
QUICK = {"rate_per_s": 300.0, "seconds": 10.0, "window_s": 5.0}


def _config(*, listen: str | None = None, connect: str | None = None) -> zenoh.Config:
    config = zenoh.Config()
    config.insert_json5("mode", json.dumps("peer"))
    config.insert_json5("scouting/multicast/enabled", "false")
    config.insert_json5("transport/shared_memory/enabled", "false")
    if listen:
        config.insert_json5("listen/endpoints", json.dumps([listen]))
    if connect:
        config.insert_json5("connect/endpoints", json.dumps([connect]))
    return config


def _listener(endpoint: str, ready: Event, stop: Event) -> None:
    with zenoh.open(_config(listen=endpoint)) as session:
        session.liveliness().declare_subscriber(TOKENS_KEY, lambda _: None, history=True)
        session.declare_queryable(ECHO_KEY, lambda query: query.reply(ECHO_KEY, b"pong"))
        ready.set()
        stop.wait()


def _churner(endpoint: str, fresh: bool, rate_per_s: float, seconds: float) -> None:
    rng = random.Random(1)
    tokens: collections.deque[zenoh.LivelinessToken] = collections.deque()
    with zenoh.open(_config(connect=endpoint)) as session:
        began, sent = time.monotonic(), 0
        while (now := time.monotonic()) - began < seconds:
            robot = f"r{rng.getrandbits(48):012x}" if fresh else f"r{sent % REUSED_KEYS}"
            if len(tokens) >= HOLD:
                tokens.popleft().undeclare()
            tokens.append(session.liveliness().declare_token(f"bench/robot/{robot}/i0/alive"))
            sent += 1
            time.sleep(max(0.0, began + sent / rate_per_s - now))
        while tokens:
            tokens.popleft().undeclare()


def _pinger(endpoint: str, stop: Event, out: Any) -> None:
    """Sends `(monotonic time, round trip s)` pairs over `out` every window's worth of pings."""
    with zenoh.open(_config(connect=endpoint)) as session:
        batch: list[tuple[float, float]] = []
        while not stop.is_set():
            sent = time.monotonic()
            for _ in session.get(ECHO_KEY, timeout=5.0):
                pass
            batch.append((sent, time.monotonic() - sent))
            if len(batch) >= 100:
                out.send(batch)
                batch = []
            time.sleep(PING_PERIOD_S)
        out.send(batch)


class _Rig:
    """A listener and a pinger, fresh for each case, so no case inherits another's state."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.endpoint = f"tcp/127.0.0.1:{free_port()}"
        self.stop = ctx.Event()
        ready = ctx.Event()
        self.listener = ctx.Process(target=_listener, args=(self.endpoint, ready, self.stop))
        self.listener.start()
        if not ready.wait(30):
            raise RuntimeError("the listener peer did not start within 30 s")
        self.pings, sender = ctx.Pipe(duplex=False)
        self.pinger = ctx.Process(target=_pinger, args=(self.endpoint, self.stop, sender))
        self.pinger.start()
        self.rtts: list[tuple[float, float]] = []

    def drain_pings(self) -> None:
        while self.pings.poll():
            self.rtts.extend(self.pings.recv())

    def churn(self, fresh: bool, pace: dict[str, float]) -> list[dict[str, float]]:
        """Runs one churner and returns a row per window."""
        pid, window_s, rate = self.listener.pid, pace["window_s"], pace["rate_per_s"]
        assert pid is not None
        churner = self.ctx.Process(
            target=_churner, args=(self.endpoint, fresh, rate, pace["seconds"])
        )
        rows: list[dict[str, float]] = []
        began = last = time.monotonic()
        cpu = cpu_seconds(pid)
        churner.start()
        while churner.is_alive():
            churner.join(window_s)
            self.drain_pings()
            now, cpu_now = time.monotonic(), cpu_seconds(pid)
            rtts = [rtt * 1e3 for sent, rtt in self.rtts if last <= sent < now]
            sending = min(now - began, pace["seconds"]) - min(last - began, pace["seconds"])
            if sending < window_s / 2:
                break  # the churner is undeclaring what it holds: no full window left
            rows.append(
                {
                    "t_s": round(now - began, 1),
                    "tokens_so_far": round(min(now - began, pace["seconds"]) * rate),
                    "cpu_ms_per_token": round((cpu_now - cpu) / (sending * rate) * 1e3, 3),
                    "rss_mib": round(rss_mib(pid), 1),
                    "ping_p50_ms": round(percentile(rtts, 50), 2) if rtts else 0.0,
                    "ping_p99_ms": round(percentile(rtts, 99), 2) if rtts else 0.0,
                }
            )
            last, cpu = now, cpu_now
        churner.join()
        return rows

    def close(self) -> None:
        self.stop.set()
        self.drain_pings()
        for process in (self.pinger, self.listener):
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join()


def _print(case: str, rows: list[dict[str, float]]) -> None:
    print(f"  {case}")
    print("    t s   tokens  cpu ms/token  rss MiB  ping p50  ping p99")
    for row in rows:
        print(
            f"    {row['t_s']:5.1f} {row['tokens_so_far']:7.0f} {row['cpu_ms_per_token']:12.3f}"
            f" {row['rss_mib']:8.1f} {row['ping_p50_ms']:8.2f}  {row['ping_p99_ms']:8.2f}"
        )


def run(quick: bool = False) -> dict[str, Any]:
    pace = QUICK if quick else FULL
    ctx = multiprocessing.get_context("spawn")
    print(
        f"tokens at {pace['rate_per_s']:.0f}/s for {pace['seconds']:.0f} s, {HOLD} held at once;"
        " listener CPU per token and a pinger's round trips through the listener"
    )
    cases: dict[str, list[dict[str, float]]] = {}
    for case, fresh in (("reused keys", False), ("fresh keys", True)):
        rig = _Rig(ctx)
        try:
            cases[case] = rig.churn(fresh, pace)
            if fresh:
                cases["reused keys, after the fresh-key peer left"] = rig.churn(False, pace)
        finally:
            rig.close()
    for case, rows in cases.items():
        _print(case, rows)
    reused, fresh = cases["reused keys"][-1], cases["fresh keys"][-1]
    with contextlib.suppress(ZeroDivisionError):
        print(
            f"  last full window, fresh / reused keys: CPU per token "
            f"{fresh['cpu_ms_per_token'] / reused['cpu_ms_per_token']:.1f}x, ping p99 "
            f"{fresh['ping_p99_ms'] / reused['ping_p99_ms']:.1f}x"
        )
    return {"pace": pace, "hold": HOLD, "reused_keys": REUSED_KEYS, "cases": cases}
