"""`policylink demo --rtt-ms` puts its robots behind a real link, and says so in results.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.demo.conftest import policylink

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("namespaces_allowed")]

SHORT_DEMO = (
    *("demo", "--robots", "2", "--episodes", "1", "--policy-size", "none"),
    *("--image-size", "96x128", "--track-s", "1", "--no-compare"),
)


def _results(runs: Path) -> dict:
    [folder] = runs.iterdir()
    return json.loads((folder / "results.json").read_text())


def test_demo_runs_its_robots_through_the_real_link(tmp_path: Path) -> None:
    result = policylink(*SHORT_DEMO, "--rtt-ms", "100", "--runs-dir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "real link: impairment proxy (+100 ms RTT" in result.stdout
    results = _results(tmp_path)
    settings = results["settings"]
    assert settings["link"] == "real", settings
    # Every robot's Zenoh session crossed the proxy: one connection each.
    assert settings["proxy"]["connections"] == 2, settings
    [summary] = results["summaries"]
    assert summary["success_rate"] == 1.0, summary
    assert summary["rtt_p50_ms"] >= 100.0, summary


def test_demo_keeps_the_robot_side_wrapper_when_asked(tmp_path: Path) -> None:
    result = policylink(
        *SHORT_DEMO, "--rtt-ms", "50", "--link", "wrapper", "--runs-dir", str(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    settings = _results(tmp_path)["settings"]
    assert settings["link"] == "wrapper", settings
    assert "proxy" not in settings
