"""Free loopback ports, chosen by the kernel.

Binding port 0 lets the kernel pick a port no one holds, so demos, tests and benchmarks that
run side by side never collide on a hard-coded number. The probe socket is closed before the
port is used; a process that takes the port in between makes the later bind fail loudly, it
never shares the port silently.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
