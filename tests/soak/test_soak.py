"""A short soak (`benchmarks.bench_soak`, about a minute): real robots stream against a server
process while a quarter of them are SIGKILLed and replaced every period; a leak shows as server
memory that climbs after warm-up, or as sessions the server keeps for robots that are gone.

The thresholds are generous for a loaded 2-core machine and still far below what a leak does:
Zenoh's shared memory, on by default, grew the server by ~20 MiB for every robot process that
came and went (~140 MiB a minute at this churn), against ~1 MiB a minute of noise.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks.bench_soak import SoakPlan, parse_options, soak

pytestmark = pytest.mark.slow

PLAN = SoakPlan(robots=8, periods=4, period_s=12.0, warmup_periods=1)
MAX_SERVER_SLOPE_MIB_PER_MIN = 10.0


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workdir: Path = tmp_path_factory.mktemp("soak")
    return soak(PLAN, workdir, progress=False)


def test_every_period_serves_every_robot(record: dict[str, Any]) -> None:
    for index, period in enumerate(record["periods"]):
        assert period["server"]["requests_ok"] > PLAN.robots, f"period {index}: {period}"
        assert period["robots"]["not_streaming"] == 0, f"period {index}: {period['robots']}"
        assert period["server"]["errors"] == 0, f"period {index}: {period['server']}"


def test_server_memory_stays_flat_while_robots_come_and_go(record: dict[str, Any]) -> None:
    verdicts = record["verdicts"]
    slope = verdicts["server_rss_slope_mib_per_min"]
    assert slope < MAX_SERVER_SLOPE_MIB_PER_MIN, (
        f"server RSS grew {slope:.1f} MiB/min after warm-up (growth "
        f"{verdicts['server_rss_growth_pct']:.1f} %): {record['server_rss_series']}"
    )


def test_sessions_of_vanished_robots_are_collected(record: dict[str, Any]) -> None:
    churned = [period["churn_collected_s"] for period in record["periods"]]
    assert all(math.isfinite(seconds) for seconds in churned), churned
    assert record["verdicts"]["leaked_sessions"] == 0, record
    for period in record["periods"]:
        assert period["server"]["closed_liveliness"] >= 2, period["server"]


def test_server_survives_the_soak(record: dict[str, Any]) -> None:
    assert record["server_alive_at_end"]
    assert record["server_exit_code"] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--robots", "2"], "at least 4"), (["--minutes", "1"], "at least 3")],
)
def test_soak_options_too_small_to_judge_are_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        parse_options(argv)
    assert message in capsys.readouterr().err


def test_soak_options_choose_robots_and_minutes() -> None:
    assert parse_options(["--robots", "16", "--minutes", "60"]) == {
        "plan": SoakPlan(robots=16, periods=60)
    }
