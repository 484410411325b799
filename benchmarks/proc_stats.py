"""What Linux says of a process: its CPU time and its memory, read from /proc.

Benchmarks watch a server in a process of its own, so its figures are its own and nothing the
watching process does adds to them. Every reader returns zeros once the process is gone.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds the process has used so far."""
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def status_fields(pid: int, *names: str) -> dict[str, int]:
    """Numeric fields of /proc/<pid>/status (`VmRSS`, `VmHWM` in KiB, `Threads`); 0 if absent."""
    found = dict.fromkeys(names, 0)
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in found:
                found[name] = int(value.split()[0])
    return found


def rss_mib(pid: int) -> float:
    """Resident memory in MiB."""
    return status_fields(pid, "VmRSS")["VmRSS"] / 1024
