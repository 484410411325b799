"""One JSON line per request on the `policylink.audit` logger, for grep and log pipelines.

`overhead_ms` is the server's time on the request outside the policy's chunk call (decode,
checks, processors, encode, publish): its own cost, which should stay far below the forward.
`batch_size` is how many requests shared that chunk call.

The line is built only when the logger is enabled, so an unconfigured audit log costs a level
check per request and nothing more.

Requests refused or dropped before they reach the worker (rate-limited, too large, unknown
session, a bad API key...) leave an `audit_refusal` line too, but at most
`REFUSAL_LINES_PER_S` a second: a flood must not turn into a flood of log lines. The lines
left out are counted, and the next line written says how many (`suppressed`).
"""

from __future__ import annotations

import json
import logging
import threading

from policylink.server.rate_limit import RateLimiter

logger = logging.getLogger("policylink.audit")

REFUSAL_LINES_PER_S = 20.0
# Characters of a peer-chosen string (a client id, an address) kept in a refusal line.
MAX_FIELD_CHARS = 128


class _RefusalLog:
    """The process-wide budget of refusal lines, and the count of those left out."""

    def __init__(self, lines_per_s: float) -> None:
        self._budget = RateLimiter(lines_per_s, lines_per_s)
        # Guards `_suppressed`.
        self._lock = threading.Lock()
        self._suppressed = 0

    def admit(self) -> int | None:
        """The lines suppressed since the last one written, or None to suppress this one."""
        allowed = self._budget.allow("refusals")
        with self._lock:
            if not allowed:
                self._suppressed += 1
                return None
            suppressed, self._suppressed = self._suppressed, 0
            return suppressed


_refusals = _RefusalLog(REFUSAL_LINES_PER_S)


def audit_request(
    *,
    session_id: str,
    client: str,
    seq_id: int,
    episode_id: int,
    queue_wait_ms: float,
    inference_ms: float,
    overhead_ms: float,
    batch_size: int,
    superseded: int,
    outcome: str,
) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    logger.info(
        json.dumps(
            {
                "session_id": session_id,
                "client": client,
                "seq_id": seq_id,
                "episode_id": episode_id,
                "queue_wait_ms": round(queue_wait_ms, 3),
                "inference_ms": round(inference_ms, 3),
                "overhead_ms": round(overhead_ms, 3),
                "batch_size": batch_size,
                "superseded": superseded,
                "outcome": outcome,
            },
            separators=(",", ":"),
        )
    )


def audit_refusal(
    *,
    event: str,
    outcome: str,
    client: str = "",
    session_id: str = "",
    seq_id: int | None = None,
    transport: str = "",
) -> None:
    """A request refused or dropped before the worker: `event` says what was asked
    (`observation`, `session_open`, `reset`, `connection`), `outcome` the error code or drop
    reason."""
    if not logger.isEnabledFor(logging.INFO):
        return
    suppressed = _refusals.admit()
    if suppressed is None:
        return
    line: dict[str, object] = {"event": event, "outcome": outcome}
    if client:
        line["client"] = client[:MAX_FIELD_CHARS]
    if session_id:
        line["session_id"] = session_id[:MAX_FIELD_CHARS]
    if seq_id is not None:
        line["seq_id"] = seq_id
    if transport:
        line["transport"] = transport
    if suppressed:
        line["suppressed"] = suppressed
    logger.info(json.dumps(line, separators=(",", ":")))
