"""Benchmarks: `python -m benchmarks [name ...] [--quick]` (or `make bench`).

Each `bench_<name>.py` exposes `run(quick: bool = False) -> dict`: it measures policylink and its
peers side by side in the same run, prints a table with ratios, and returns the numbers, which
the runner writes to `benchmarks/results/<name>.json`. Benchmarks are never part of `make test`;
speed targets live here, not in timed test assertions.
"""
