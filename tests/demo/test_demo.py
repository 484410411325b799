"""A short `policylink demo` run, end to end: server process, fleet, summary, run folder."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.browser import painted, screenshot

from .conftest import policylink


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    runs = tmp_path_factory.mktemp("runs")
    result = policylink(
        "demo",
        "--robots",
        "2",
        "--episodes",
        "1",
        "--policy-size",
        "none",
        "--image-size",
        "96x128",
        "--track-s",
        "1",
        "--runs-dir",
        str(runs),
    )
    folders = list(runs.iterdir())
    return result, folders[0] if folders else runs


@pytest.fixture(scope="module")
def results(demo_run) -> dict:
    _, folder = demo_run
    return json.loads((folder / "results.json").read_text())


def test_demo_exits_zero_and_names_its_run_folder(demo_run):
    result, folder = demo_run
    assert result.returncode == 0, result.stderr
    assert f"report: {folder / 'report.html'}" in result.stdout
    assert {p.name for p in folder.iterdir()} >= {
        "report.html",
        "results.json",
        "server.log",
        "server_manifest.yaml",
    }


def test_demo_prints_the_comparison(demo_run):
    result, _ = demo_run
    assert "async completes the task" in result.stdout
    assert "ticks waiting on network" in result.stdout


def test_both_phases_ran_the_same_episodes_to_success(results):
    summaries = {s["engine"]: s for s in results["summaries"]}
    assert set(summaries) == {"async", "sync"}
    for summary in summaries.values():
        assert summary["episodes"] == 2
        assert summary["success_rate"] == 1.0
    assert results["comparison"]["paired_episodes"] == 2


def test_the_async_control_loop_never_waited_for_the_network(results):
    [asynchronous] = [s for s in results["summaries"] if s["engine"] == "async"]
    assert asynchronous["waiting_ticks"] == 0
    assert asynchronous["ticks"] > 0


def test_results_hold_the_data_of_every_figure(results):
    figures = results["figures"]
    assert figures["completion_s"]["episodes"] == ["0·0", "1·0"]
    assert all(len(figures["rtt_ms"][engine]) > 0 for engine in ("async", "sync"))
    assert set(figures["queue_depth"]["async"]) == {"robot-0", "robot-1"}
    assert figures["engine_states"]["sync"]["robot-0"][0]["state"] in {"connecting", "streaming"}


def test_report_is_self_contained(demo_run):
    _, folder = demo_run
    html = (folder / "report.html").read_text()
    assert html.count("<svg") == 5
    assert "<script" not in html
    assert not re.search(r"\s(src|href)=", html)


def test_report_plots_render_in_a_headless_browser(demo_run, tmp_path):
    _, folder = demo_run
    pixels = screenshot(folder / "report.html", tmp_path / "report.png", height=4200)
    # Bars of both engines, and the timeline's streaming lanes, are drawn.
    assert painted(pixels, "#1f77b4") > 500
    assert painted(pixels, "#e8710a") > 500
    assert painted(pixels, "#2ca02c") > 500
