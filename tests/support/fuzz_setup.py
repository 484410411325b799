"""The server every fuzz run attacks, shared by the short run in `make test` and the benchmark.

An echo policy (no model: a forward costs microseconds, so what a robot's round trip measures
is the server's handling of the traffic around it) with one small camera, more session slots
than the good robots need (a flood must find free slots to take), the OpenPI surface and the
health port on. Importing this module imports neither torch nor the test policies, so the
benchmark's parent process stays light.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

from policylink.net.ports import free_port
from policylink.wire import CameraSpec
from tests.support.servers import echo_policy

# tests.server.policies.ECHO_FAMILY, named here without importing torch.
ECHO_FAMILY = "tests.echo"
STATE_DIM, CHUNK_SIZE, FPS = 6, 8, 50.0
CAMERA = CameraSpec("front", 32, 32)
MAX_SESSIONS = 16


def echo_manifest(**fields: Any) -> dict[str, Any]:
    """The fuzzed server's manifest fields; `fields` add to or override them."""
    params = {
        "state_dim": STATE_DIM,
        "chunk_size": CHUNK_SIZE,
        "trained_fps": FPS,
        "cameras": [{"name": CAMERA.name, "height": CAMERA.height, "width": CAMERA.width}],
    }
    return {
        "policy": echo_policy(**params),
        "serving_mode": "shared",
        "max_sessions": MAX_SESSIONS,
        "health_port": free_port(),
        "openpi": {"enabled": True, "port": 0, "key_map": "aloha"},
        **fields,
    }


def http_get(port: int, path: str) -> tuple[int, str]:
    """Status and body of a GET on loopback; status 0 and the reason when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)
