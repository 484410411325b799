"""The server's audit lines, captured in this process while a benchmark runs.

Server-side timings (`inference_ms`, `overhead_ms`, `queue_wait_ms`) come from the server's own
audit line for each request, not from a client clock, so they hold no network time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from policylink.server.audit import logger as audit_logger


class AuditCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(record.getMessage()))

    def answered(self, skip: int) -> list[dict[str, Any]]:
        """Lines of requests answered with a chunk, less the first `skip` (the warm-up)."""
        return [line for line in self.lines if line["outcome"] == "ok"][skip:]


@contextmanager
def collect_audit() -> Iterator[AuditCollector]:
    """Every audit line logged inside the block; none of them reaches the console."""
    collector = AuditCollector()
    audit_logger.addHandler(collector)
    audit_logger.setLevel(logging.INFO)
    audit_logger.propagate = False
    try:
        yield collector
    finally:
        audit_logger.removeHandler(collector)
