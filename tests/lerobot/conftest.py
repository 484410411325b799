"""LeRobot integration tests run in `.venv-lerobot` (`make test-lerobot`); elsewhere each module
skips itself (`pytest.importorskip`), and nothing here imports LeRobot at collection time."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lerobot import checkpoints
from tests.lerobot.serving import DIFFUSION_SEED, ServerProcess, lerobot_manifest

# Set before LeRobot (and huggingface_hub) load: a test that reaches for the hub fails fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def act_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoints.save_act(tmp_path_factory.mktemp("act"))


@pytest.fixture(scope="session")
def diffusion_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoints.save_diffusion(tmp_path_factory.mktemp("diffusion"))


@pytest.fixture(scope="session")
def vqbet_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoints.save_vqbet(tmp_path_factory.mktemp("vqbet"))


@pytest.fixture(scope="session")
def act_server(act_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """`policylink serve` with the ACT checkpoint; shared, so each test uses its own client ids."""
    server = ServerProcess(lerobot_manifest(act_path), tmp_path_factory.mktemp("act-serve"))
    try:
        yield server.wait_serving()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def diffusion_server(
    diffusion_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """`policylink serve` with the diffusion checkpoint and per-request fixed noise, so a chunk
    is a pure function of its observation and comparable with LeRobot's."""
    manifest = lerobot_manifest(diffusion_path, seed=DIFFUSION_SEED, params={"fixed_noise": True})
    server = ServerProcess(manifest, tmp_path_factory.mktemp("diffusion-serve"))
    try:
        yield server.wait_serving()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def vqbet_server(
    vqbet_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """`policylink serve` with the VQ-BeT checkpoint and per-request fixed noise (its code
    sampling draws from torch's generator)."""
    manifest = lerobot_manifest(vqbet_path, seed=DIFFUSION_SEED, params={"fixed_noise": True})
    server = ServerProcess(manifest, tmp_path_factory.mktemp("vqbet-serve"))
    try:
        yield server.wait_serving()
    finally:
        server.stop()
