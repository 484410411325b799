"""A tiny `policylink eval` sweep end to end: a server process, one robot per engine, two
round-trip times over the robot-side wrapper; the JSON's shape and sanity, the table, and the
HTML report. `test_eval_real_link.py` runs a point over a real link."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.demo.conftest import policylink
from tests.support.browser import painted, screenshot

ENGINES = {"async_rtc", "async_append", "sync"}
RTTS = (0.0, 100.0)


@pytest.fixture(scope="module")
def sweep(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    folder = tmp_path_factory.mktemp("eval")
    result = policylink(
        "eval",
        "--rtt-ms",
        ",".join(f"{rtt:g}" for rtt in RTTS),
        "--robots",
        "1",
        "--episodes",
        "1",
        "--policy-size",
        "none",
        "--image-size",
        "96x128",
        "--track-s",
        "0.5",
        "--max-episode-s",
        "10",
        "--link",
        "wrapper",
        "--out-dir",
        str(folder),
        timeout_s=600,
    )
    return result, folder


@pytest.fixture(scope="module")
def results(sweep) -> dict:
    result, folder = sweep
    assert result.returncode == 0, result.stderr
    return json.loads((folder / "eval.json").read_text())


def test_eval_prints_a_row_per_engine_and_point_and_its_progress(sweep):
    result, folder = sweep
    assert result.returncode == 0, result.stderr
    rows = [
        line.split()
        for line in result.stdout.splitlines()
        if line.split()[:1] in ([e] for e in ENGINES)
    ]
    assert len(rows) == len(ENGINES) * len(RTTS)
    assert {row[3] for row in rows} == {"loopback", "wrapper"}  # engine, "+0", "ms", link
    assert f"report: {folder / 'eval.html'}" in result.stdout
    assert "[6/6] sync at +100 ms RTT" in result.stderr


def test_every_engine_ran_at_every_point_with_sane_numbers(results):
    points = results["points"]
    assert {(p["engine"], p["rtt_ms"]) for p in points} == {(e, r) for e in ENGINES for r in RTTS}
    for point in points:
        assert point["episodes"] == 1
        assert 0.0 <= point["success_rate"] <= 1.0
        assert 0.0 <= point["stale_action_ratio"] <= 1.0
        assert 0.0 < point["effective_control_hz"] <= 30.0 + 1e-6
        assert point["errors"] == []
        assert point["link"] == ("wrapper" if point["rtt_ms"] else "loopback")
        assert point["proxy"] is None
        p50, p95, p99 = point["rtt_p50_ms"], point["rtt_p95_ms"], point["rtt_p99_ms"]
        assert p50 <= p95 <= p99
        if point["rtt_ms"] == 100.0:
            assert p50 >= 100.0  # the injected delay is in every round trip
        else:
            assert p50 < 100.0


def test_the_blocking_engine_is_the_baseline_of_the_speedup(results):
    sync = [p for p in results["points"] if p["engine"] == "sync"]
    assert all(p["speedup_vs_sync"] in (None, 1.0) for p in sync)
    goal = results["goal"]
    assert set(goal["by_rtt_ms"]) == {"0", "100"}
    assert goal["success_drop_points_0_to_200_ms"] is None  # 200 ms was not swept
    assert results["settings"]["engines"] == ["async_rtc", "async_append", "sync"]


def test_report_is_self_contained_with_a_plot_per_metric(sweep):
    _, folder = sweep
    html = (folder / "eval.html").read_text()
    assert html.count("<svg") == 5
    assert "<script" not in html
    assert not re.search(r"\s(src|href)=", html)
    for engine in ENGINES:
        assert engine in html


def test_report_plots_render_in_a_headless_browser(sweep, tmp_path):
    _, folder = sweep
    pixels = screenshot(folder / "eval.html", tmp_path / "eval.png", height=3000)
    # The lines of the RTC and the blocking engine are drawn.
    assert painted(pixels, "#1f77b4") > 100
    assert painted(pixels, "#e8710a") > 100


def test_eval_refuses_an_unknown_engine_naming_the_choices():
    result = policylink("eval", "--engines", "async_rtc,turbo")
    assert result.returncode == 2
    message = " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())
    assert "'turbo']: use some of async_rtc, async_append, sync" in message
