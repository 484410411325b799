"""A real network path on one machine: a network namespace joined to this one by a veth pair.

A process started in the namespace (`NetPath.exec_prefix()`) has a network stack of its own:
whatever it says to this namespace crosses the veth pair, with the kernel's own queues, TCP
and, when a rate is set, a `tc` token bucket (`tbf`) on each end that caps the bandwidth both
ways. Delay, jitter and loss are not the kernel's here (`netem` is absent from the kernels we run
on); `impairment_proxy` adds them in a process on the path.

Every name starts with `policylink-` (namespaces) or `pl` (veth ends) and carries the creating
process id, so parallel runs never collide and a later run deletes what a crashed one left
(`sweep_stale`). Teardown runs on `close()`, on leaving the `with` block, and at interpreter
exit; deleting the namespace deletes both veth ends.
"""

from __future__ import annotations

import atexit
import functools
import ipaddress
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

NAMESPACE_PREFIX = "policylink-"
_NAMESPACE = re.compile(rf"^{NAMESPACE_PREFIX}(\d+)-([0-9a-f]{{8}})$")
_HOST_END = re.compile(r"^pl([0-9a-f]{8})h$")
# /30 blocks for the two ends, from a private range that home and office networks rarely use.
_POOL = ipaddress.ip_network("10.213.0.0/16")
COMMAND_TIMEOUT_S = 20.0
TEARDOWN_WAIT_S = 5.0


class NetPathError(RuntimeError):
    """An `ip` or `tc` command failed; the message quotes it and what it printed."""


def _run(*argv: str) -> str:
    try:
        done = subprocess.run(  # noqa: S603 (fixed iproute2 commands, no shell)
            argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetPathError(f"`{' '.join(argv)}` could not run: {exc}") from None
    if done.returncode != 0:
        raise NetPathError(
            f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip() or done.stdout}"
        )
    return done.stdout


@functools.lru_cache(maxsize=1)
def netpath_refusal() -> str | None:
    """Why this machine cannot build a `NetPath` (None when it can), found by trying once."""
    if not sys.platform.startswith("linux"):
        return f"network namespaces are Linux-only (this is {sys.platform})"
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found: install iproute2"
    probe = f"{NAMESPACE_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        _run("ip", "netns", "add", probe)
    except NetPathError as exc:
        return (
            f"the kernel refused a network namespace ({exc}); run as root or with "
            "CAP_NET_ADMIN and CAP_SYS_ADMIN"
        )
    try:
        _run("ip", "netns", "del", probe)
    except NetPathError as exc:
        return f"a probe namespace could not be deleted: {exc}"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _run("ip", "netns", "list").splitlines() if line.strip()]


def _kill_inside(namespace: str) -> None:
    """SIGKILL whatever still runs in `namespace`: the namespace (and its veth) outlives its
    name while a process holds it."""
    for pid in _run("ip", "netns", "pids", namespace).split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            continue


def sweep_stale() -> list[str]:
    """Deletes the namespaces and veth ends of runs whose process is gone; returns their names."""
    # Links first: a veth end listed now belongs to a namespace that the listing below shows,
    # so a run that is building its path meanwhile never loses its veth to this sweep.
    host_ends = [
        line.split(":")[1].strip().split("@")[0]
        for line in _run("ip", "-o", "link", "show").splitlines()
    ]
    swept = []
    live_tokens = set()
    for namespace in _namespaces():
        match = _NAMESPACE.match(namespace)
        if match is None:
            continue
        if _alive(int(match.group(1))):
            live_tokens.add(match.group(2))
            continue
        _kill_inside(namespace)
        _run("ip", "netns", "del", namespace)
        swept.append(namespace)
    for name in host_ends:
        match = _HOST_END.match(name)
        if match is not None and match.group(1) not in live_tokens:
            try:
                _run("ip", "link", "del", name)
            except NetPathError:
                continue  # gone with its namespace just now
            swept.append(name)
    return swept


def _free_block() -> ipaddress.IPv4Network:
    """A /30 of the pool that no address of this namespace falls in."""
    used = [
        ipaddress.ip_interface(field).network
        for line in _run("ip", "-4", "-o", "addr", "show").splitlines()
        for field in line.split()[3:4]
    ]
    blocks = list(_POOL.subnets(new_prefix=30))
    for block in random.sample(blocks, 64):
        if not any(block.overlaps(net) for net in used):
            return block
    raise NetPathError(f"no free /30 left in {_POOL} after 64 tries; delete stale veth pairs")


class NetPath:
    """One namespace and the veth pair joining it to this one; `open()` builds, `close()` tears
    down.

    `rate_mbit` caps each direction with a `tbf` whose queue holds `queue_ms` of traffic at that
    rate (a saturated link then delays rather than drops, as a router's buffer does).
    """

    def __init__(self, rate_mbit: float | None = None, queue_ms: float = 100.0) -> None:
        if rate_mbit is not None and rate_mbit <= 0:
            raise ValueError(f"rate_mbit must be > 0 (or None for no cap), got {rate_mbit}")
        if queue_ms <= 0:
            raise ValueError(f"queue_ms must be > 0, got {queue_ms}")
        token = secrets.token_hex(4)
        self.namespace = f"{NAMESPACE_PREFIX}{os.getpid()}-{token}"
        self.host_end = f"pl{token}h"
        self.peer_end = f"pl{token}n"
        self.rate_mbit = rate_mbit
        self.queue_ms = queue_ms
        self.host_address = ""
        self.peer_address = ""
        self._open = False

    def open(self) -> NetPath:
        sweep_stale()
        block = _free_block()
        host, peer = (str(address) for address in block.hosts())
        _run("ip", "netns", "add", self.namespace)
        self._open = True
        atexit.register(self.close)
        try:
            _run(
                "ip", "link", "add", self.host_end, "type", "veth",
                "peer", "name", self.peer_end, "netns", self.namespace,
            )  # fmt: skip
            _run("ip", "addr", "add", f"{host}/30", "dev", self.host_end)
            _run("ip", "link", "set", self.host_end, "up")
            inside = ("ip", "-n", self.namespace)
            _run(*inside, "addr", "add", f"{peer}/30", "dev", self.peer_end)
            _run(*inside, "link", "set", self.peer_end, "up")
            _run(*inside, "link", "set", "lo", "up")
            self.host_address, self.peer_address = host, peer
            self.set_rate(self.rate_mbit)
        except NetPathError:
            self.close()
            raise
        return self

    def exec_prefix(self) -> list[str]:
        """Put before a command line to run it inside the namespace (`ip netns exec` execs it,
        so the child's pid is the command's own)."""
        return ["ip", "netns", "exec", self.namespace]

    def set_rate(self, rate_mbit: float | None) -> None:
        """Caps both directions at `rate_mbit` (None lifts the cap); takes effect at once."""
        self.rate_mbit = rate_mbit
        for end, inside in ((self.host_end, ()), (self.peer_end, ("-n", self.namespace))):
            if rate_mbit is None:
                _run("tc", *inside, "qdisc", "replace", "dev", end, "root", "pfifo_fast")
                continue
            bytes_per_s = rate_mbit * 1e6 / 8
            # A shallow bucket (a few ms at the rate, above the kernel's tick): a deep one
            # would let a whole observation through at line speed. Larger (GSO) packets are
            # split to fit it.
            burst = max(16 * 1024, int(bytes_per_s * 0.004))
            _run(
                "tc", *inside, "qdisc", "replace", "dev", end, "root", "tbf",
                "rate", f"{rate_mbit}mbit", "burst", str(burst),
                "latency", f"{self.queue_ms}ms",
            )  # fmt: skip

    def sent_bytes(self) -> int:
        """Bytes this namespace has sent into the path (towards the namespace)."""
        return int(Path(f"/sys/class/net/{self.host_end}/statistics/tx_bytes").read_text())

    def received_bytes(self) -> int:
        """Bytes that came out of the namespace over the path."""
        return int(Path(f"/sys/class/net/{self.host_end}/statistics/rx_bytes").read_text())

    def describe(self) -> str:
        cap = f"{self.rate_mbit:g} Mbit/s each way" if self.rate_mbit else "no bandwidth cap"
        return f"veth {self.host_address} ⇄ {self.peer_address} (namespace {self.namespace}), {cap}"

    def close(self) -> None:
        """Idempotent: kills what still runs inside, then deletes the namespace and its veth."""
        if not self._open:
            return
        self._open = False
        atexit.unregister(self.close)
        if self.namespace in _namespaces():
            _kill_inside(self.namespace)
            _run("ip", "netns", "del", self.namespace)
        # The kernel dismantles a namespace in the background; its veth goes with it, soon.
        host_end = Path(f"/sys/class/net/{self.host_end}")
        deadline = time.monotonic() + TEARDOWN_WAIT_S
        while host_end.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        if host_end.exists():
            _run("ip", "link", "del", self.host_end)

    def __enter__(self) -> NetPath:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
