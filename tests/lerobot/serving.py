"""`policylink serve` as a real subprocess, and real robot-side clients that dial it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from policylink.client import ClientConfig, RobotLayout, SyncEngine
from policylink.net.ports import free_port
from policylink.net.processes import terminate
from policylink.wire.messages import CameraSpec, Observation
from tests.lerobot.checkpoints import ACTION_NAMES, CAMERA, IMAGE_SHAPE, STATE_DIM

POLICYLINK = str(Path(sys.executable).parent / "policylink")
ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 120.0
DIFFUSION_SEED = 11


def lerobot_manifest(path: Path, **policy_fields: Any) -> dict[str, Any]:
    """A manifest serving the checkpoint at `path` on a free loopback port."""
    params = {"action_names": ACTION_NAMES, **policy_fields.pop("params", {})}
    return {
        "policy": {"kind": "lerobot", "path": str(path), "params": params, **policy_fields},
        "model_id": "lerobot-test",
        "warmup_inferences": 1,
        "health_port": 0,
        "zenoh": {"listen": [f"tcp/127.0.0.1:{free_port()}"]},
    }


class ServerProcess:
    """One `policylink serve --manifest` process; stdout and stderr are collected by threads
    so a chatty server can never block on a full pipe."""

    def __init__(self, manifest: dict[str, Any], directory: Path) -> None:
        self.manifest = manifest
        self.endpoint = manifest["zenoh"]["listen"][0]
        manifest_path = directory / "manifest.yaml"
        manifest_path.write_text(yaml.safe_dump(manifest))
        self.process = subprocess.Popen(
            [POLICYLINK, "serve", "--manifest", str(manifest_path), "--log-level", "WARNING"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._readers = [
            threading.Thread(
                target=self._collect, args=(stream, lines), name=f"serve-{name}", daemon=True
            )
            for name, stream, lines in (
                ("stdout", self.process.stdout, self._stdout),
                ("stderr", self.process.stderr, self._stderr),
            )
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _collect(stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self._stdout) + "".join(self._stderr)

    @property
    def announced_serving(self) -> bool:
        return any(line.startswith("serving") for line in self._stdout)

    def wait_serving(self) -> ServerProcess:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self.announced_serving:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited {self.process.returncode}:\n{self.output}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"server not serving after {STARTUP_TIMEOUT_S} s:\n{self.output}"
                )
            time.sleep(0.05)
        return self

    def wait_exit(self, timeout_s: float = STARTUP_TIMEOUT_S) -> int:
        code = self.process.wait(timeout_s)
        for reader in self._readers:
            reader.join(5.0)
        return code

    def stop(self) -> None:
        terminate(self.process, 30.0, kill_timeout_s=10.0)
        for reader in self._readers:
            reader.join(5.0)


LAYOUT = RobotLayout(
    action_names=tuple(ACTION_NAMES),
    state_names=tuple(f"state_{i}" for i in range(STATE_DIM)),
    cameras=(CameraSpec(CAMERA, IMAGE_SHAPE[1], IMAGE_SHAPE[2]),),
)


def sync_client(endpoint: str, client_id: str) -> SyncEngine:
    """A robot-side engine that asks for a chunk exactly when its queue is empty, with raw
    (lossless) images so the server sees the very pixels the reference sees."""
    config = ClientConfig(
        endpoint=endpoint,
        client_id=client_id,
        jpeg_quality=0,
        rtc=False,
        fps=30.0,
        request_timeout_s=30.0,
        max_action_age_s=60.0,
        connect_timeout_s=30.0,
    )
    return SyncEngine(config, LAYOUT)


def fetch_chunk(engine: SyncEngine, obs: Observation) -> np.ndarray:
    """The whole robot-space chunk the server answered `obs` with.

    The reset empties the queue, so the blocking `get_action` sends `obs` and returns the
    chunk's first row; the rest is still queued, untouched.
    """
    engine.reset()
    engine.notify_observation(obs)
    first = engine.get_action()
    assert first is not None, f"no chunk for the observation: {engine.stats}"
    _, rest, _ = engine.queue_contents()
    return np.vstack([first, rest])
