"""Joining a recording with the server's audit log: where each executed action's time went.

Every executed action's row names the request that produced it, `(session_id, seq_id)`, and
the server writes one audit line per request under the same key. Joined, a request's round
trip splits into the robot's part (the observation waiting for the request to be sent), the
network (round trip minus the server's time), the server's queue, the forward, and the
server's own overhead (decode, checks, encode). Durations only: no clock crosses machines.

The audit log may be a file of bare JSON lines or `policylink serve`'s log (each audit line
prefixed by time and logger name): anything before a line's first `{` is ignored, and lines
that are not request audit lines are skipped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from policylink.episodes.reader import Episode, Recording

AuditKey = tuple[str, int]


def read_audit(path: Path) -> dict[AuditKey, dict[str, Any]]:
    """Request audit lines by `(session_id, seq_id)`."""
    lines: dict[AuditKey, dict[str, Any]] = {}
    with path.open() as stream:
        for text in stream:
            start = text.find("{")
            if start < 0:
                continue
            try:
                line = json.loads(text[start:])
            except json.JSONDecodeError:
                continue
            if isinstance(line, dict) and "inference_ms" in line and "seq_id" in line:
                lines[(str(line.get("session_id", "")), int(line["seq_id"]))] = line
    return lines


@dataclass(frozen=True)
class RequestTime:
    """One request whose chunk was played, and where its round trip went (ms)."""

    seq_id: int
    session_id: str
    first_tick_s: float
    actions: int
    robot_ms: float
    network_ms: float
    queue_ms: float
    forward_ms: float
    server_ms: float
    rtt_ms: float
    batch_size: int


@dataclass
class EpisodeJoin:
    robot: str
    episode: int
    ticks: int
    executed: int
    matched: int
    requests: list[RequestTime] = field(default_factory=list)
    unmatched: list[AuditKey] = field(default_factory=list)

    def totals(self) -> dict[str, float]:
        """Mean milliseconds per request of each part."""
        parts = ("robot_ms", "network_ms", "queue_ms", "forward_ms", "server_ms", "rtt_ms")
        count = max(1, len(self.requests))
        return {part: sum(getattr(r, part) for r in self.requests) / count for part in parts}

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"mean_ms": self.totals()}


def join_episode(
    robot: str, episode: Episode, audit: dict[AuditKey, dict[str, Any]]
) -> EpisodeJoin:
    table = episode.ticks().to_pydict()
    ticks = len(table["tick"])
    joined = EpisodeJoin(robot, episode.index, ticks, 0, 0)
    start_ns = table["mono_ns"][0] if ticks else 0
    seen: dict[AuditKey, int] = {}
    unmatched: set[AuditKey] = set()
    for i in range(ticks):
        session, seq = table["session_id"][i], table["seq_id"][i]
        if session is None or seq is None:
            continue
        joined.executed += 1
        key = (session, int(seq))
        line = audit.get(key)
        if line is None:
            unmatched.add(key)
            continue
        joined.matched += 1
        if key in seen:
            seen[key] += 1
            continue
        seen[key] = 1
        queue, forward = float(line["queue_wait_ms"]), float(line["inference_ms"])
        server = float(line.get("overhead_ms", 0.0))
        rtt = float(table["rtt_ms"][i])
        joined.requests.append(
            RequestTime(
                seq_id=int(seq),
                session_id=session,
                first_tick_s=(table["mono_ns"][i] - start_ns) / 1e9,
                actions=0,
                robot_ms=float(table["obs_wait_ms"][i] or 0.0),
                network_ms=max(0.0, rtt - queue - forward - server),
                queue_ms=queue,
                forward_ms=forward,
                server_ms=server,
                rtt_ms=rtt,
                batch_size=int(line.get("batch_size", 1)),
            )
        )
    joined.requests = [
        RequestTime(**{**asdict(r), "actions": seen[(r.session_id, r.seq_id)]})
        for r in joined.requests
    ]
    joined.unmatched = sorted(unmatched)
    return joined


def join_recordings(
    recordings: list[Recording], audit: dict[AuditKey, dict[str, Any]]
) -> list[EpisodeJoin]:
    return [
        join_episode(recording.name, episode, audit)
        for recording in recordings
        for episode in recording.episodes
    ]


def format_timeline(joins: list[EpisodeJoin]) -> str:
    """Per episode: a line per request in playback order, then the mean of each part."""
    out = []
    for join in joins:
        out.append(
            f"{join.robot} episode {join.episode}: {join.ticks} ticks, {join.executed} "
            f"executed actions, {join.matched} matched to the server's audit"
            + (f", {len(join.unmatched)} requests not in the audit" if join.unmatched else "")
        )
        out.append(
            "     t (s)      seq  actions   robot  network   queue  forward  server     rtt (ms)"
        )
        for r in join.requests:
            out.append(
                f"  {r.first_tick_s:8.2f} {r.seq_id:8d} {r.actions:8d} {r.robot_ms:7.1f} "
                f"{r.network_ms:8.1f} {r.queue_ms:7.1f} {r.forward_ms:8.1f} {r.server_ms:7.1f} "
                f"{r.rtt_ms:7.1f}"
            )
        mean = join.totals()
        out.append(
            f"  {'mean':>8} {'':8} {'':8} {mean['robot_ms']:7.1f} {mean['network_ms']:8.1f} "
            f"{mean['queue_ms']:7.1f} {mean['forward_ms']:8.1f} {mean['server_ms']:7.1f} "
            f"{mean['rtt_ms']:7.1f}"
        )
        out.append("")
    return "\n".join(out)
