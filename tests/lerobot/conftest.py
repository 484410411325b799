"""LeRobot integration tests run in `.venv-lerobot` (`make test-lerobot`); elsewhere they skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Set before LeRobot (and huggingface_hub) load: a test that reaches for the hub fails fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("lerobot", reason="LeRobot lives in its own environment: make test-lerobot")

from tests.lerobot import checkpoints


@pytest.fixture(scope="session")
def act_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoints.save_act(tmp_path_factory.mktemp("act"))


@pytest.fixture(scope="session")
def diffusion_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return checkpoints.save_diffusion(tmp_path_factory.mktemp("diffusion"))
