"""The robot side imports and runs without torch: a fresh interpreter that refuses to import it
drives a RemoteEngine against a real server, and a LocalEngine with a numpy policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tests.client.conftest import TRACE, endpoint_of, python_policy
from tests.client.server_process import REPO
from tests.support.blocked_imports import run_blocking

if TYPE_CHECKING:
    from policylink.server.app import ServerApp


def first_action_without_torch(engine: str) -> list[str]:
    """Starts `engine` (an expression over `layout`) in a torch-less interpreter, offers one
    observation of 2.0 and returns the first action's first value and whether torch loaded."""
    return run_blocking(
        ("torch",),
        f"""
        import time
        import numpy as np
        from policylink.client import ClientConfig, LocalEngine, RemoteEngine, RobotLayout
        from policylink.wire import Observation
        from tests.client.policies import TracePolicy

        layout = RobotLayout(("shoulder.pos", "elbow.pos", "gripper.pos"), ("a", "b", "c"))
        with {engine} as engine:
            engine.notify_observation(Observation(state=np.full(3, 2.0, np.float32)))
            deadline = time.monotonic() + 30
            while engine.stats.chunks_merged == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            print(engine.get_action()[0], "torch" in sys.modules)
        """,
        REPO,
    ).split()


def test_remote_engine_streams_chunks_without_torch(
    start_server: Callable[..., ServerApp],
) -> None:
    app = start_server(policy=python_policy(TRACE, chunk_size=4), max_sessions=1)
    config = f'ClientConfig(endpoint="{endpoint_of(app)}", fps=100, buffer_time_s=0.0)'
    assert first_action_without_torch(f"RemoteEngine({config}, layout)") == ["2.0", "False"]


def test_local_engine_runs_a_numpy_policy_without_torch() -> None:
    config = "ClientConfig(fps=100, buffer_time_s=0.0)"
    engine = f"LocalEngine(TracePolicy(), {config}, layout)"
    assert first_action_without_torch(engine) == ["2.0", "False"]
