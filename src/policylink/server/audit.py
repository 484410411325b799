"""One JSON line per request on the `policylink.audit` logger, for grep and log pipelines.

`overhead_ms` is the server's time on the request outside the policy's chunk call (decode,
checks, processors, encode, publish): its own cost, which should stay far below the forward.
`batch_size` is how many requests shared that chunk call.

The line is built only when the logger is enabled, so an unconfigured audit log costs a level
check per request and nothing more.
"""

from __future__ import annotations

import json
import logging

logger = logging.getLogger("policylink.audit")


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
