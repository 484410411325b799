"""LeRobot integration tests run in `.venv-lerobot` (`make test-lerobot`); elsewhere each module
skips itself (`pytest.importorskip`), and nothing here imports LeRobot at collection time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.lerobot import checkpoints

# Set before LeRobot (and huggingface_hub) load: a test that reaches for the hub fails fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def act_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoints.save_act(tmp_path_factory.mktemp("act"))


@pytest.fixture(scope="session")
def diffusion_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoints.save_diffusion(tmp_path_factory.mktemp("diffusion"))
