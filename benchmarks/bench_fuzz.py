"""A million hostile messages while two well-behaved robots keep running (DESIGN §6a).

The server is a `policylink serve` child (Zenoh and OpenPI surfaces, health port on), so its
resident memory, threads and log output are its own and measurable. Two robots — real
`RemoteEngine`s with their own control loops — run in a process of their own for the whole
benchmark. A quiet window measures their round trips; then two attacker processes send every
attack class of `tests.support.hostile_traffic` (seeded `random.Random`, weighted and paced)
while the robots keep running, and the same round trips are measured again; a second quiet
window follows (the baseline is both quiet windows).

CPU: every process shares the two cores, as they must. The attackers run under SCHED_IDLE (and
nice 19), on CPU time nobody else wants: in a deployment they are other machines, and at any
higher priority a robot's tail latency would measure who else wanted a core rather than what the
server did with the traffic (nice 19 alone is not enough: the kernel's EEVDF scheduler lets a
niced task finish its slice before a woken robot thread runs). Their start-up (a spawned
interpreter importing its modules) is not part of the attacked window either. The Zenoh attacker
behaves like a flooder: it never waits for an answer (at most 64 queries unanswered, more are
skipped and counted) and its puts under DROP congestion control are dropped at once when its
queue is full.

Rate: a flood at whatever rate the attackers manage measures a 2-core machine with every
process on it saturated; what it says about the server is its cost per message, which this run
reports (server CPU over the attack). The full run paces a million messages at `FULL.rate_per_s`
(about half of one core of server time here), so the robots' tail measures how the server
handles hostile traffic beside their requests, not how an oversubscribed machine queues
threads. `--quick` keeps its shorter, faster burst.

Liveliness tokens under ever-new keys cost the server's Zenoh runtime more with every one (its
routing tables keep them; `bench_zenoh_tokens` shows it without policylink), which nothing above
Zenoh can shed. `--without-token-churn` counts those shots instead of sending them, so a run
tells that cost from what the server does with everything else.

Reported: messages sent per attack class and how they were answered, the robots' round-trip
p50/p99 under attack against the quiet baseline of the same run (acceptance: p99 within 2x),
what the robots noticed (stalls, errors, reconnects, sessions), the server's CPU, RSS (over
time, and before, during and after) and threads, its log volume, any traceback or Zenoh
callback error in its log, whether it stayed up and healthy, and its exit code on SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import random
import re
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from benchmarks.proc_stats import cpu_seconds, status_fields
from benchmarks.timing import percentile
from policylink import wire
from policylink.net.zenoh_session import gather, open_zenoh_session
from policylink.net.zenoh_settings import ZenohSettings
from policylink.server import serving_modes
from tests.support import attackers
from tests.support import hostile_traffic as hostile
from tests.support.fuzz_setup import (
    CAMERA,
    CHUNK_SIZE,
    ECHO_FAMILY,
    FPS,
    MAX_SESSIONS,
    STATE_DIM,
    echo_manifest,
    http_get,
)
from tests.support.server_process import ServerProcess
from tests.support.servers import loopback_manifest_data
from tests.support.steady_robots import RobotPlan, SteadyRobotsProcess

ROBOTS = ["steady-a", "steady-b"]
P99_RATIO_LIMIT = 2.0
ATTACKER_NICE = 19
RSS_PERIOD_S = 0.25
RENEW_OWN_SESSIONS_S = 5.0
SERIES_PERIOD_S = 10.0
# The longest an attack may run (at most 2.5 times its paced duration; a million at 2,000 a
# second take about 8.5 minutes); past this the attackers stop where they are.
MAX_ATTACK_S = 900.0
TIMELINE_PERIOD_S = 10.0
OK_REQUESTS = 'policylink_requests_total{outcome="ok"}'
RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Pace:
    """How much and how fast: the hostile budget, its rate, and the windows around it."""

    messages: int
    rate_per_s: float
    baseline_s: float
    # Shares of the budget: OpenPI frames and HTTP requests each answer in turn, so they
    # carry less than the Zenoh puts and queries.
    openpi_share: float = 0.05
    http_share: float = 0.015
    # For diagnosis: attack class labels to send (`zenoh.flood`, ...; empty: every class),
    # and `dry`: build every shot and pace as usual but send none (the attackers' own CPU,
    # without their traffic).
    only: tuple[str, ...] = ()
    dry: bool = False
    # False: liveliness-token shots are counted, not sent (`--without-token-churn`).
    token_churn: bool = True


QUICK = Pace(messages=20_000, rate_per_s=5_000, baseline_s=8.0)
FULL = Pace(messages=1_000_000, rate_per_s=2_000, baseline_s=30.0)


# Builds per round of each class (1 unless named). Most of a million messages are what an
# attacker sends at line rate for free — puts of noise, truncated, oversized, mistyped and
# non-finite bodies, unknown sessions; the classes made mostly of queries, session opens,
# liveliness tokens and key oddities run at a tenth of that, each still thousands of messages.
WEIGHTS = {
    "zenoh.random_bytes": 10,
    "zenoh.truncated": 10,
    "zenoh.oversized": 10,
    "zenoh.wrong_dtype": 10,
    "zenoh.non_finite": 10,
    "zenoh.unknown_session": 10,
}


@dataclass(frozen=True)
class AttackJob:
    """One attacker process: which surfaces and classes, how many messages, how fast."""

    name: str
    surfaces: tuple[str, ...]
    target: hostile.Target
    zenoh_endpoint: str
    openpi_url: str
    http_ports: dict[str, int]
    messages: int
    rate_per_s: float
    seed: int
    max_seconds: float
    only: tuple[str, ...] = ()
    dry: bool = False
    token_churn: bool = True


def _manifest() -> dict[str, Any]:
    return loopback_manifest_data(echo_manifest(torch_threads=1))


@contextlib.contextmanager
def _echo_verified() -> Any:
    """The child server verifies what this process verifies when it starts (`ServerProcess`)."""
    had = serving_modes.VERIFIED_FAMILIES.get(ECHO_FAMILY)
    serving_modes.VERIFIED_FAMILIES[ECHO_FAMILY] = serving_modes.SHARED
    try:
        yield
    finally:
        if had is None:
            serving_modes.VERIFIED_FAMILIES.pop(ECHO_FAMILY, None)
        else:
            serving_modes.VERIFIED_FAMILIES[ECHO_FAMILY] = had


class ProcessWatch:
    """Samples a process's resident memory and thread count from /proc on a named thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.max_rss_kb = 0
        self.max_threads = 0
        # (seconds since start, RSS MiB) every SERIES_PERIOD_S: growth shows as a slope.
        self.series: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-watch", daemon=True)

    def cpu_s(self) -> float:
        return cpu_seconds(self.pid)

    def sample(self) -> dict[str, int]:
        """VmRSS, VmHWM (the kernel's peak RSS) in KiB and the thread count; zeros once gone."""
        fields = status_fields(self.pid, "VmRSS", "VmHWM", "Threads")
        return {
            "rss_kb": fields["VmRSS"],
            "hwm_kb": fields["VmHWM"],
            "threads": fields["Threads"],
        }

    def _run(self) -> None:
        began = next_point = time.monotonic()
        while not self._stop.wait(RSS_PERIOD_S):
            now = self.sample()
            self.max_rss_kb = max(self.max_rss_kb, now["rss_kb"])
            self.max_threads = max(self.max_threads, now["threads"])
            if time.monotonic() >= next_point:
                self.series.append((round(time.monotonic() - began, 1), now["rss_kb"] / 1024))
                next_point += SERIES_PERIOD_S

    def __enter__(self) -> ProcessWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _metrics(port: int) -> dict[str, float]:
    status, text = http_get(port, "/metrics")
    if status != 200:
        return {}
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                samples[name] = float(value)
    return samples


def _counter_deltas(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Counters the attack moved: drops, errors and refusals by reason, sessions opened."""
    watched = (
        "policylink_dropped_total",
        "policylink_errors_total",
        "policylink_sessions_rejected_total",
        "policylink_sessions_closed_total",
        "policylink_sessions_opened_total",
        "policylink_requests_total",
        "policylink_superseded_total",
        "policylink_auth_failures_total",
    )
    return {
        name: after[name] - before.get(name, 0.0)
        for name in sorted(after)
        if name.startswith(watched) and after[name] != before.get(name, 0.0)
    }


def _discover(endpoint: str, namespace: wire.Namespace) -> tuple[str, wire.Capabilities]:
    """What any peer learns from a status query: the replica's id and the policy's layout."""
    session = open_zenoh_session(ZenohSettings(mode="client", connect=[endpoint]))
    try:
        attachment = wire.pack_header(wire.Header(wire.SCHEMA_VERSION, wire.MsgType.STATUS_REQUEST))
        body = wire.encode_message(wire.StatusRequest())
        for reply in gather(session, namespace.all_status, body, attachment, 10.0):
            if reply.ok is None:
                continue
            status = wire.decode_message(wire.MsgType.STATUS, reply.ok.payload.to_bytes())
            assert isinstance(status, wire.Status)
            return status.replica_id, status.capabilities
    finally:
        session.close()
    raise RuntimeError("no replica answered the status query")


def _openpi_keys(url: str) -> dict[str, Any]:
    from websockets.sync.client import connect

    from policylink.wire.openpi.msgpack_numpy import unpackb

    with connect(url, compression=None, max_size=None, proxy=None) as ws:
        metadata = unpackb(ws.recv(timeout=10))
    assert isinstance(metadata, dict)
    return metadata["key_map"]


def _step_aside() -> None:
    """Run this attacker only on CPU time nobody else wants (before any thread starts, so
    Zenoh's and the senders' threads inherit it)."""
    os.nice(ATTACKER_NICE)
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def _attacker_main(job: AttackJob, results: Connection) -> None:
    """Child process: send `job.messages` hostile messages at `job.rate_per_s`, round-robin
    over the classes of its surfaces, then report the tally."""
    _step_aside()
    tally = attackers.Tally()
    senders = attackers.Senders()
    if job.dry:
        pass
    elif "zenoh" in job.surfaces:
        # Like a flooder: it never waits for an answer, and listens only to its own robots.
        senders.zenoh = attackers.ZenohAttacker(
            job.zenoh_endpoint,
            job.target,
            tally,
            every_robot=False,
            wait_for_answers=False,
            tokens=job.token_churn,
        )
        senders.zenoh.open_own_sessions()
    if "openpi" in job.surfaces and not job.dry:
        senders.openpi = attackers.OpenPIAttacker(job.openpi_url, tally)
        senders.openpi.connect()
    if "http" in job.surfaces and not job.dry:
        senders.http = attackers.HttpAttacker(job.http_ports, tally)
    rng = random.Random(job.seed)
    classes = [
        attack
        for attack in hostile.ALL_CLASSES
        if attack.surface in job.surfaces and (not job.only or attack.label in job.only)
    ]
    # The robots' round trips count as attacked from here: the start-up before (a spawned
    # interpreter importing its modules, at normal priority until `_step_aside`) is not an
    # attack a server sees.
    firing_from_ns = time.monotonic_ns()
    began = time.monotonic()
    deadline = began + job.max_seconds
    sent = 0
    next_renewal = began + RENEW_OWN_SESSIONS_S
    try:
        while classes and sent < job.messages and time.monotonic() < deadline:
            for attack in classes:
                for _ in range(WEIGHTS.get(attack.label, 1)):
                    shots = attack.build(rng, job.target)
                    if job.dry:
                        tally.add(attack.label, "built", len(shots))
                        sent += len(shots)
                    else:
                        sent += senders.fire(attack, shots)
            ahead_s = sent / job.rate_per_s - (time.monotonic() - began)
            if ahead_s > 0 and sent < job.messages:
                time.sleep(min(ahead_s, max(0.0, deadline - time.monotonic())))
            if senders.zenoh is not None and time.monotonic() > next_renewal:
                # Own sessions get replaced by replayed opens and closed when idle or at
                # capacity; reopening them keeps hostile bodies reaching the worker's decoder.
                next_renewal = time.monotonic() + RENEW_OWN_SESSIONS_S
                senders.zenoh.renew_own_sessions()
        seconds = time.monotonic() - began
        firing_until_ns = time.monotonic_ns()
        zenoh = senders.zenoh
        replies = dict(zenoh.replies_seen) if zenoh is not None else {}
        non_finite = zenoh.non_finite_chunks if zenoh is not None else 0
    finally:
        senders.close()
    results.send(
        {
            "name": job.name,
            "seconds": seconds,
            "firing_ns": [firing_from_ns, firing_until_ns],
            "counts": tally.by_class(),
            "replies_on_action_keys": replies,
            "non_finite_chunks": non_finite,
        }
    )


def _attack(jobs: list[AttackJob]) -> list[dict[str, Any]]:
    """Run every job in its own process at once; their reports when all are done."""
    context = multiprocessing.get_context("spawn")
    running = []
    for job in jobs:
        receive, send = context.Pipe(duplex=False)
        process = context.Process(target=_attacker_main, args=(job, send), name=job.name)
        process.start()
        running.append((job, process, receive))
    reports = []
    for job, process, receive in running:
        if receive.poll(job.max_seconds + 120):
            reports.append(receive.recv())
        else:
            reports.append({"name": job.name, "seconds": 0.0, "counts": {}, "hung": True})
        process.join(30)
        if process.is_alive():
            process.kill()
            process.join()
    return reports


class _Timeline:
    """Every `TIMELINE_PERIOD_S` while the attack runs: what the robots and the server show, so
    a robot that stops being served can be placed in time against the server's counters."""

    WATCHED = (
        "policylink_sessions_active",
        OK_REQUESTS,
        'policylink_requests_total{outcome="error"}',
        'policylink_dropped_total{reason="rate_limited"}',
        'policylink_sessions_closed_total{reason="idle"}',
        'policylink_sessions_closed_total{reason="liveliness"}',
        'policylink_sessions_closed_total{reason="replaced"}',
        "policylink_server_load",
    )

    def __init__(self, robots: SteadyRobotsProcess, watch: ProcessWatch, health_port: int):
        self.robots, self.watch, self.health_port = robots, watch, health_port
        self.points: list[dict[str, Any]] = []

    def follow(self, jobs: list[AttackJob]) -> list[dict[str, Any]]:
        """Run the attack on a thread and sample until it ends; the attackers' reports."""
        reports: list[dict[str, Any]] = []
        attack = threading.Thread(
            target=lambda: reports.extend(_attack(jobs)), name="attack", daemon=True
        )
        began = time.monotonic()
        attack.start()
        while attack.is_alive():
            attack.join(TIMELINE_PERIOD_S)
            self.sample(time.monotonic() - began)
        return reports

    def sample(self, at_s: float) -> None:
        metrics = _metrics(self.health_port)
        self.points.append(
            {
                "at_s": round(at_s, 1),
                "robots": [
                    {k: r[k] for k in ("state", "chunks_merged", "reconnects", "stalls")}
                    | {"session": r["session_now"][:8]}
                    for r in self.robots.summary()
                ],
                "server": {name: metrics.get(name) for name in self.WATCHED},
                "rss_mib": round(self.watch.sample()["rss_kb"] / 1024, 1),
            }
        )


def _keep_log(path: Path) -> None:
    """A copy of the server's log beside the results, for a look after the run."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "fuzz-server.log").write_bytes(path.read_bytes())


def _round_trip_stats(per_robot: list[list[float]]) -> dict[str, float]:
    values = [rtt for robot in per_robot for rtt in robot]
    return {
        "count": len(values),
        "p50_ms": percentile(values, 50),
        "p99_ms": percentile(values, 99),
        "max_ms": max(values) if values else float("nan"),
    }


def _log_problems(path: Path, since: int) -> dict[str, Any]:
    """What the server logged after byte `since`: tracebacks (every `log.exception`, a
    websockets handler that failed, socketserver's printed ones), Zenoh's `callback error`
    lines, and the lines per logger (the log format is `<date> <time> <logger> <message>`)."""
    with path.open("rb") as log:
        log.seek(since)
        text = log.read().decode(errors="replace")
    lines = text.splitlines()
    tracebacks = [i for i, line in enumerate(lines) if line.startswith("Traceback")]
    raised: dict[str, int] = {}
    for line in lines:
        found = re.match(r"([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt))(:|$)", line)
        if found:
            raised[found.group(1)] = raised.get(found.group(1), 0) + 1
    by_logger: dict[str, int] = {}
    for line in lines:
        parts = line.split(" ", 3)
        if len(parts) == 4 and re.fullmatch(r"\d{4}-\d\d-\d\d", parts[0]):
            by_logger[parts[2]] = by_logger.get(parts[2], 0) + 1
    return {
        "log_bytes": len(text.encode()),
        "lines": len(lines),
        "tracebacks": len(tracebacks),
        "callback_errors": sum("callback error" in line for line in lines),
        "raised": raised,
        "lines_by_logger": dict(sorted(by_logger.items(), key=lambda kv: -kv[1])[:8]),
    }


def parse_options(options: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks fuzz")
    parser.add_argument(
        "--without-token-churn",
        action="store_true",
        help="count liveliness-token shots instead of declaring them: every other class, to "
        "tell what Zenoh's routing tables cost (see the zenoh_tokens benchmark) from the server",
    )
    return {"token_churn": not parser.parse_args(options).without_token_churn}


def run(quick: bool = False, token_churn: bool = True) -> dict[str, Any]:
    pace = replace(QUICK if quick else FULL, token_churn=token_churn)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as scratch, _echo_verified():
        server = ServerProcess(_manifest(), Path(scratch), "fuzz-server").wait_serving()
        try:
            results = _measure(server, pace, began)
        finally:
            server.stop()
        # SIGTERM drains: a server that survived the attack exits 0 and says nothing more.
        results["server"]["exit_code"] = server.process.returncode
        results["server"]["tracebacks_whole_log"] = _log_problems(server.stderr_path, 0)[
            "tracebacks"
        ]
    print(f"server exit code after SIGTERM: {results['server']['exit_code']}")
    return results


def _measure(server: ServerProcess, pace: Pace, began: float) -> dict[str, Any]:
    manifest = server.manifest
    health_port, openpi_port = manifest["health_port"], server.openpi_port
    endpoint = server.endpoint
    namespace = wire.Namespace.of(
        manifest.get("model_id", "policylink-transformer"),
        manifest.get("revision", "main"),
        manifest.get("task_slug", "default"),
    )
    watch = ProcessWatch(server.process.pid)
    at_start = watch.sample()
    plan = RobotPlan(endpoint, STATE_DIM, (CAMERA,), fps=FPS, buffer_time_s=0.1)
    with watch, SteadyRobotsProcess(plan, ROBOTS) as robots:
        # The quiet baseline is two windows, before and after the attack, so a slow drift of
        # the machine (other work on shared cores) weighs on both sides of the ratio alike.
        quiet_s = pace.baseline_s / 2
        print(f"quiet baseline: 2 x {quiet_s:g} s of {len(ROBOTS)} robots", flush=True)
        quiet_from, quiet_cpu = time.monotonic_ns(), watch.cpu_s()
        time.sleep(quiet_s)
        quiet_until = time.monotonic_ns()
        quiet_before = robots.round_trips_ms(quiet_from, quiet_until)
        quiet_cores = (watch.cpu_s() - quiet_cpu) / ((quiet_until - quiet_from) / 1e9)
        before_attack = robots.summary()
        replica, capabilities = _discover(endpoint, namespace)
        openpi_url = f"ws://127.0.0.1:{openpi_port}"
        target = hostile.Target(
            namespace,
            replica,
            capabilities,
            victims={r["client_id"]: r["session_now"] for r in before_attack},
            openpi_keys=_openpi_keys(openpi_url + "/"),
        )
        http_ports = {"health": health_port, "openpi": openpi_port}
        openpi_messages = round(pace.messages * pace.openpi_share)
        http_messages = round(pace.messages * pace.http_share)
        zenoh_messages = pace.messages - openpi_messages - http_messages
        seconds = pace.messages / pace.rate_per_s
        max_seconds = min(2.5 * seconds + 30, MAX_ATTACK_S)
        jobs = [
            AttackJob(
                "attacker-zenoh",
                ("zenoh",),
                target,
                endpoint,
                openpi_url,
                http_ports,
                zenoh_messages,
                pace.rate_per_s * zenoh_messages / pace.messages,
                1,
                max_seconds,
                pace.only,
                pace.dry,
                pace.token_churn,
            ),
            AttackJob(
                "attacker-openpi-http",
                ("openpi", "http"),
                target,
                endpoint,
                openpi_url,
                http_ports,
                openpi_messages + http_messages,
                pace.rate_per_s * (openpi_messages + http_messages) / pace.messages,
                2,
                max_seconds,
                pace.only,
                pace.dry,
                pace.token_churn,
            ),
        ]
        metrics_before = _metrics(health_port)
        before = watch.sample()
        log_mark = server.stderr_path.stat().st_size
        print(f"attack: {pace.messages:,} messages at {pace.rate_per_s:,.0f}/s", flush=True)
        attack_from, attack_cpu = time.monotonic_ns(), watch.cpu_s()
        timeline = _Timeline(robots, watch, health_port)
        reports = timeline.follow(jobs)
        attack_until = time.monotonic_ns()
        attack_cores = (watch.cpu_s() - attack_cpu) / ((attack_until - attack_from) / 1e9)
        # Attacked: from when every attacker fires to when the last one stops.
        firing = [r["firing_ns"] for r in reports if "firing_ns" in r]
        if firing:
            attack_from = max(start for start, _ in firing)
            attack_until = max(end for _, end in firing)
        hostile_trips = robots.round_trips_ms(attack_from, attack_until)
        during_max = {"rss_kb": watch.max_rss_kb, "threads": watch.max_threads}
        after_attack, robot_problems = robots.more_chunks(20)
        print(f"quiet again: {quiet_s:g} s", flush=True)
        quiet_from = time.monotonic_ns()
        time.sleep(quiet_s)
        quiet_after = robots.round_trips_ms(quiet_from, time.monotonic_ns())
        after = watch.sample()
        health = http_get(health_port, "/healthz")
        metrics_after = _metrics(health_port)
        server_alive = server.process.poll() is None
        log = _log_problems(server.stderr_path, log_mark)
        _keep_log(server.stderr_path)
    tally = attackers.Tally()
    for report in reports:
        tally.merge(report.get("counts", {}))
    counts = tally.by_class()
    total = tally.sent()
    quiet = [before + after for before, after in zip(quiet_before, quiet_after, strict=True)]
    baseline, attacked = _round_trip_stats(quiet), _round_trip_stats(hostile_trips)
    ratio_p99 = attacked["p99_ms"] / baseline["p99_ms"] if baseline["p99_ms"] else float("nan")
    ratio_p50 = attacked["p50_ms"] / baseline["p50_ms"] if baseline["p50_ms"] else float("nan")
    robots_report = _robots_report(before_attack, after_attack)
    replies: dict[str, int] = {}
    for report in reports:
        for kind, n in report.get("replies_on_action_keys", {}).items():
            replies[kind] = replies.get(kind, 0) + n
    results = {
        "setup": {
            "messages_planned": pace.messages,
            "rate_per_s": pace.rate_per_s,
            "robots": ROBOTS,
            "fps": FPS,
            "chunk_size": CHUNK_SIZE,
            "camera": f"{CAMERA.height}x{CAMERA.width}",
            "max_sessions": MAX_SESSIONS,
            "attacker_nice": ATTACKER_NICE,
            "dry_run": pace.dry,
            "token_churn": pace.token_churn,
        },
        "messages_sent": total,
        "attack_seconds": (attack_until - attack_from) / 1e9,
        "messages_per_class": {label: c.get("sent", 0) for label, c in counts.items()},
        "answers_per_class": counts,
        "published_on_action_keys": replies,
        "non_finite_chunks_seen": sum(r.get("non_finite_chunks", 0) for r in reports),
        "attackers": [
            {k: r.get(k) for k in ("name", "seconds", "hung") if k in r} for r in reports
        ],
        "round_trips": {
            "quiet": baseline,
            "attacked": attacked,
            "quiet_before": _round_trip_stats(quiet_before),
            "quiet_after": _round_trip_stats(quiet_after),
        },
        "p99_ratio": ratio_p99,
        "p50_ratio": ratio_p50,
        "p99_within_limit": bool(ratio_p99 <= P99_RATIO_LIMIT),
        "robots": robots_report,
        "robots_not_served_after_attack": robot_problems,
        "timeline": timeline.points,
        "server": {
            "alive": server_alive,
            "healthz": health[0],
            "rss_kb": {
                "start": at_start["rss_kb"],
                "before_attack": before["rss_kb"],
                "max_during": during_max["rss_kb"],
                "after": after["rss_kb"],
                "peak_hwm": after["hwm_kb"],
            },
            "rss_mib_series": watch.series,
            "threads": {
                "before_attack": before["threads"],
                "max_during": during_max["threads"],
                "after": after["threads"],
            },
            "cpu_cores": {"quiet": quiet_cores, "attacked": attack_cores},
            "log": log,
            "log_bytes_per_message": log["log_bytes"] / total if total else 0.0,
            "counters": _counter_deltas(metrics_before, metrics_after),
        },
        "benchmark_seconds": time.monotonic() - began,
    }
    _print(results, counts)
    return results


def _robots_report(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict]:
    """What each robot noticed during the attack: counters moved, and its session."""
    report = []
    for start, end in zip(before, after, strict=True):
        moved = {
            key: end[key] - start[key]
            for key in (
                "chunks_merged",
                "chunks_dropped_stale",
                "error_replies",
                "malformed_replies",
                "timeouts",
                "reconnects",
                "stalls",
                "ticks",
            )
        }
        report.append(
            {
                "client_id": end["client_id"],
                "state": end["state"],
                "same_session": end["session_now"] == start["session_now"],
                **moved,
            }
        )
    return report


def _print(results: dict[str, Any], counts: dict[str, dict[str, int]]) -> None:
    print()
    print(attackers.format_table(counts))
    print(f"published on robots' action keys: {results['published_on_action_keys']}")
    trips = results["round_trips"]
    print()
    print(f"{'good robots':<12} {'samples':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, row in trips.items():
        print(
            f"{name:<12} {row['count']:>8} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
            f"{row['max_ms']:>8.2f}"
        )
    verdict = "within" if results["p99_within_limit"] else "OVER"
    print(
        f"p99 ratio {results['p99_ratio']:.2f} ({verdict} {P99_RATIO_LIMIT:g}x), "
        f"p50 ratio {results['p50_ratio']:.2f}"
    )
    for robot in results["robots"]:
        print(f"  {robot}")
    for problem in results["robots_not_served_after_attack"]:
        print(f"  NOT SERVED AFTER THE ATTACK: {problem}")
    print("timeline (s: robots' chunks/state, server sessions, ok requests, load):")
    for point in results["timeline"]:
        robots = ", ".join(f"{r['chunks_merged']}/{r['state']}" for r in point["robots"])
        metrics = point["server"]
        ok = metrics[OK_REQUESTS]
        print(
            f"  {point['at_s']:>6}: {robots} | {metrics['policylink_sessions_active']} sessions, "
            f"{ok} ok, load {metrics['policylink_server_load']}"
        )
    server = results["server"]
    rss = {k: f"{v / 1024:.0f} MiB" for k, v in server["rss_kb"].items()}
    print()
    print(f"server alive {server['alive']}, /healthz {server['healthz']}; RSS {rss}")
    print(f"server RSS over time (s, MiB): {server['rss_mib_series']}")
    print(f"server threads {server['threads']}, CPU cores {server['cpu_cores']}")
    log = server["log"]
    print(
        f"server log: {log['log_bytes']:,} bytes, {log['lines']:,} lines "
        f"({server['log_bytes_per_message']:.2f} bytes per message), {log['tracebacks']} "
        f"tracebacks, {log['callback_errors']} Zenoh callback errors"
    )
    print(f"  lines by logger: {log['lines_by_logger']}")
    print(f"  exceptions in tracebacks: {log['raised']}")
    print(f"server counters moved: {server['counters']}")
    print(
        f"{results['messages_sent']:,} hostile messages in {results['attack_seconds']:.0f} s; "
        f"benchmark ran {results['benchmark_seconds']:.0f} s"
    )
