"""Runs benchmarks by name and writes each one's results as JSON."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PREFIX = "bench_"


def available() -> list[str]:
    return sorted(path.stem.removeprefix(PREFIX) for path in HERE.glob(f"{PREFIX}*.py"))


def to_json(value: object) -> object:
    """numpy scalars and arrays that slip into results become plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"benchmark result holds a {type(value).__name__}, which JSON cannot store")


def main(argv: list[str] | None = None) -> int:
    names = available()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="name", help=f"any of {names}; default all")
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke run")
    parser.add_argument("--results-dir", type=Path, default=HERE / "results")
    args, options = parser.parse_known_args(argv)
    unknown = sorted(set(args.names) - set(names))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {names}")
    if options and len(args.names) != 1:
        parser.error(f"options {options} belong to one named benchmark (e.g. soak --robots 16)")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    for name in args.names or names:
        print(f"== {name}{' (quick)' if args.quick else ''}", flush=True)
        module = importlib.import_module(f"benchmarks.{PREFIX}{name}")
        # A benchmark with options of its own parses them (`parse_options`), e.g. soak's --robots.
        extra = module.parse_options(options) if hasattr(module, "parse_options") else {}
        if options and not extra:
            parser.error(f"benchmark {name!r} takes no options {options}")
        results = module.run(quick=args.quick, **extra)
        record = {
            "benchmark": name,
            "quick": args.quick,
            "finished_unix_s": round(time.time(), 3),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "results": results,
        }
        path = args.results_dir / f"{name}.json"
        path.write_text(json.dumps(record, indent=2, default=to_json) + "\n")
        print(f"wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
