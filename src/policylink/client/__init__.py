"""The robot side: engines that keep a buffer of future actions so the control loop never waits.

Numpy only: importing or running this package needs neither torch nor (until a `RemoteEngine`
is built without an explicit transport) zenoh.
"""

from policylink.client.action_queue import ActionQueue, MergeResult, QueueSnapshot
from policylink.client.config import ClientConfig, Fallback
from policylink.client.engine import Engine, EngineState, EngineStats, Transition
from policylink.client.handshake import HandshakeError
from policylink.client.latency import LatencyTracker
from policylink.client.link import ClientLink, ServerUnreachable
from policylink.client.local_engine import LocalEngine
from policylink.client.loop import LoopStats, run_loop
from policylink.client.remote_engine import RemoteEngine
from policylink.client.robot import Robot, RobotLayout
from policylink.client.sync_engine import SyncEngine

__all__ = [
    "ActionQueue",
    "ClientConfig",
    "ClientLink",
    "Engine",
    "EngineState",
    "EngineStats",
    "Fallback",
    "HandshakeError",
    "LatencyTracker",
    "LocalEngine",
    "LoopStats",
    "MergeResult",
    "QueueSnapshot",
    "RemoteEngine",
    "Robot",
    "RobotLayout",
    "ServerUnreachable",
    "SyncEngine",
    "Transition",
    "run_loop",
]
