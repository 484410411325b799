"""Fixtures: a chaos cluster and the robot processes on it, always torn down (robots first, so
none of them sees its servers leave), and the figures every test measured, printed at the end
of the run and written to `chaos-results.jsonl` in pytest's temporary directory."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from policylink.server import serving_modes
from tests.chaos.rig import ChaosCluster
from tests.scaleout.policies import VERIFIED
from tests.support.robot_process import RobotProcess

# A forward as quick as a small policy's on a GPU: the faults, not the forwards, set the pace.
FORWARD_MS = 5.0
RESULTS: list[dict[str, Any]] = []


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ChaosCluster]:
    """The marked policy is vouched for as shared here; server processes copy the registry."""
    for family, mode in VERIFIED.items():
        monkeypatch.setitem(serving_modes.VERIFIED_FAMILIES, family, mode)
    made = ChaosCluster(tmp_path / "cluster", FORWARD_MS)
    try:
        yield made
    finally:
        made.close()


RobotStarter = Callable[..., list[RobotProcess]]


@pytest.fixture
def robots(cluster: ChaosCluster) -> Iterator[RobotStarter]:
    """`robots(endpoint, count, **config)` starts `count` robot processes together and waits
    for each one's first action; every robot started is stopped before the cluster goes."""
    started: list[RobotProcess] = []

    def start(endpoint: str, count: int = 1, **config: Any) -> list[RobotProcess]:
        made = [
            RobotProcess(cluster.workdir, len(started) + i, endpoint, **config)
            for i in range(count)
        ]
        started.extend(made)
        return [robot.wait_started() for robot in made]

    try:
        yield start
    finally:
        for robot in started:
            robot.stop()


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[..., str]:
    """`record(**figures)` keeps a test's measured figures for the end-of-run summary and
    returns them as one line, for the test's assertion messages."""

    def keep(**figures: Any) -> str:
        line = {"test": request.node.name, **figures}
        RESULTS.append(line)
        path = request.config._tmp_path_factory.getbasetemp() / "chaos-results.jsonl"  # type: ignore[attr-defined]
        with path.open("a") as out:
            out.write(json.dumps(line) + "\n")
        return ", ".join(f"{key} {value}" for key, value in figures.items())

    return keep


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    terminalreporter.section("chaos: what each fault cost the robots")
    for line in RESULTS:
        figures = ", ".join(f"{k} {v}" for k, v in line.items() if k != "test")
        terminalreporter.write_line(f"{line['test']}: {figures}")
