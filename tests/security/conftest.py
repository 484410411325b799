"""A fleet with real certificates, and the two shapes a deployment takes, each with Zenoh's
access control on: robots and the server dialling a `policylink router --acl`, and robots
dialling a server that listens itself (peer mode) and enforces the ACL in its own process.

Robot A is a real `RemoteEngine` with its own certificate, driven like a control loop for the
whole module, so every attack in it happens while A streams, and the last test checks that A
never noticed any of them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from policylink.client import ClientConfig, RemoteEngine, RobotLayout
from policylink.net import certs
from policylink.net.acl import acl_document, write_acl
from policylink.net.ports import free_port
from policylink.net.zenoh_settings import ZenohSettings
from policylink.server import serving_modes
from policylink.wire import Namespace, Observation
from tests.server.policies import ECHO_FAMILY
from tests.support.router_process import RouterProcess
from tests.support.servers import echo_policy, in_process_servers
from tests.support.waiting import wait_for

ROBOT_A, ROBOT_B = "arm-a", "arm-b"
STATE_DIM, FPS = 3, 50.0


@dataclass(frozen=True)
class Fleet:
    """What `policylink certs` makes, plus a second CA's certificate that claims robot A."""

    dir: Path
    acl: Path
    rogue_dir: Path

    @property
    def ca(self) -> str:
        return str(self.dir / certs.CA_CERT)

    def robot(self, client_id: str, *, rogue: bool = False) -> tuple[str, str]:
        base = (self.rogue_dir if rogue else self.dir) / certs.ROBOTS_DIR / client_id
        return str(base.with_suffix(".pem")), str(base.with_suffix(".key"))

    def server(self) -> tuple[str, str]:
        return str(self.dir / certs.SERVER_CERT), str(self.dir / certs.SERVER_KEY)

    def router(self) -> tuple[str, str]:
        return str(self.dir / certs.ROUTER_CERT), str(self.dir / certs.ROUTER_KEY)

    def robot_settings(
        self, client_id: str, endpoint: str, *, rogue: bool = False, mode: str = "client"
    ) -> ZenohSettings:
        """TLS settings with robot `client_id`'s certificate; `rogue`: the forged one (it
        still trusts the fleet CA, so only the other side can refuse it)."""
        cert, key = self.robot(client_id, rogue=rogue)
        return ZenohSettings(
            mode=mode,
            connect=[endpoint],
            tls_root_ca=self.ca,
            tls_cert=cert,
            tls_key=key,
            tls_mtls=True,
        )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    root = tmp_path_factory.mktemp("fleet")
    issued = certs.issue_fleet(
        root / "tls", robots=[ROBOT_A, ROBOT_B], router_names=["policylink-router"]
    )
    acl = root / "tls" / "acl.json5"
    write_acl(
        acl,
        acl_document(
            issued.robots,
            server_common_names=[certs.SERVER_COMMON_NAME, certs.ROUTER_COMMON_NAME],
        ),
    )
    # Another CA, whose robot certificate carries robot A's common name: a forgery.
    certs.issue_fleet(root / "rogue", robots=[ROBOT_A])
    return Fleet(root / "tls", acl, root / "rogue")


def mtls_router(fleet: Fleet, workdir: Path) -> RouterProcess:
    """`policylink router` with mTLS and the fleet's ACL, as the separate process it is."""
    cert, key = fleet.router()
    options = ["--tls-root-ca", fleet.ca, "--tls-cert", cert, "--tls-key", key]
    options += ["--acl", str(fleet.acl)]
    return RouterProcess(workdir, scheme="tls", options=options)


class ControlLoop:
    """Robot A's control loop: an observation and an action every tick, on its own thread."""

    def __init__(self, engine: RemoteEngine) -> None:
        self.engine = engine
        self._stop = threading.Event()
        self._reset = threading.Event()
        self._thread = threading.Thread(target=self._run, name="robot-a-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        step = 0
        while not self._stop.wait(1.0 / FPS):
            if self._reset.is_set():
                self._reset.clear()
                self.engine.reset()
            self.engine.notify_observation(
                Observation(state=np.full(STATE_DIM, float(step % 100), np.float32))
            )
            self.engine.get_action()
            step += 1

    def chunks(self) -> int:
        return self.engine.stats.chunks_merged

    def wait_more_chunks(self, count: int = 3) -> None:
        """A positive event: A got `count` more chunks (so anything else had time to arrive)."""
        target = self.chunks() + count
        wait_for(lambda: self.chunks() >= target, 30.0, f"robot A's next {count} chunks")

    def reset_episode(self) -> None:
        """Start the next episode from the loop's own thread, as a control loop does."""
        self._reset.set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@dataclass
class Deployment:
    """One running deployment: where robots dial, the server, and robot A streaming."""

    topology: str
    endpoint: str
    fleet: Fleet
    app: object  # ServerApp; typed loosely so this module imports without torch at collection
    namespace: Namespace
    replica: str
    robot_a: ControlLoop
    session_a: str


def _echo_manifest(zenoh: dict[str, object]) -> dict[str, object]:
    params = {"state_dim": STATE_DIM, "chunk_size": 8, "trained_fps": FPS}
    return {
        "policy": echo_policy(**params),
        "serving_mode": "shared",
        "zenoh": zenoh,
    }


@pytest.fixture(scope="module", params=["router", "peer"])
def deployment(
    request: pytest.FixtureRequest, fleet: Fleet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """`router`: robots and the server (client mode) dial a router that enforces the ACL.
    `peer`: robots dial the server, which listens with mTLS and enforces the ACL itself."""
    topology = request.param
    server_cert, server_key = fleet.server()
    tls = {
        "tls_root_ca": fleet.ca,
        "tls_cert": server_cert,
        "tls_key": server_key,
        "tls_mtls": True,
    }
    router = (
        mtls_router(fleet, tmp_path_factory.mktemp("router")).wait_routing()
        if topology == "router"
        else None
    )
    engine: RemoteEngine | None = None
    loop: ControlLoop | None = None
    try:
        with pytest.MonkeyPatch.context() as patch, in_process_servers() as start:
            patch.setitem(serving_modes.VERIFIED_FAMILIES, ECHO_FAMILY, serving_modes.SHARED)
            try:
                if router is not None:
                    endpoint = router.endpoint
                    zenoh = {"mode": "client", "connect": [endpoint], "listen": [], **tls}
                else:
                    endpoint = f"tls/127.0.0.1:{free_port()}"
                    zenoh = {
                        "mode": "peer",
                        "listen": [endpoint],
                        **tls,
                        "acl_file": str(fleet.acl),
                    }
                app = start(_echo_manifest(zenoh))
                cert, key = fleet.robot(ROBOT_A)
                layout = RobotLayout(tuple(f"joint_{i}" for i in range(STATE_DIM)), ("a", "b", "c"))
                config = ClientConfig(
                    endpoint=endpoint,
                    zenoh_mode="client",
                    client_id=ROBOT_A,
                    tls_root_ca=fleet.ca,
                    tls_cert=cert,
                    tls_key=key,
                    fps=FPS,
                    buffer_time_s=0.05,
                    connect_timeout_s=20.0,
                )
                engine = RemoteEngine(config, layout)
                engine.start()
                loop = ControlLoop(engine)
                loop.wait_more_chunks()
                yield Deployment(
                    topology,
                    endpoint,
                    fleet,
                    app,
                    app.manifest.namespace(),
                    app.core.replica_id,
                    loop,
                    engine.stats.session_id,
                )
            finally:
                if loop is not None:
                    loop.stop()
                if engine is not None:
                    engine.stop()
    finally:
        if router is not None:
            router.stop()
