"""`python -m benchmarks` runs a named benchmark and writes its results as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_benchmarks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_quick_wire_benchmark_writes_sizes_and_ratios_against_its_peers(tmp_path: Path) -> None:
    result = run_benchmarks("wire", "--quick", "--results-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "wire.json").read_text())
    assert record["benchmark"] == "wire"
    assert record["quick"] is True
    observation = record["results"]["observation"]
    assert set(observation) == {
        "policylink jpeg q90",
        "policylink raw",
        "pickle protocol 5",
        "openpi msgpack-numpy",
    }
    raw, jpeg = observation["policylink raw"]["bytes"], observation["policylink jpeg q90"]["bytes"]
    assert 3 * 480 * 640 * 3 <= raw < 1.01 * observation["pickle protocol 5"]["bytes"]
    assert jpeg < raw / 5
    assert set(record["results"]["ratios"]["chunk_time"]) == {
        "pickle protocol 5",
        "openpi msgpack-numpy",
    }
    assert "simplejpeg/pillow" in result.stdout


def test_an_unknown_benchmark_name_is_refused_with_the_choices(tmp_path: Path) -> None:
    result = run_benchmarks("no_such_bench", "--results-dir", str(tmp_path))
    assert result.returncode == 2
    assert "unknown benchmark(s) ['no_such_bench']" in result.stderr
    assert "'wire'" in result.stderr
