"""The per-tick table: its Arrow schema, the rows the recorder builds, and crash-safe parts.

Parquet writes its footer last, so one file written for a whole episode is unreadable until
the episode ends. The table is written instead as small part files, each complete and renamed
into place once written; the episode's end compacts them into `ticks.parquet`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from policylink.episodes.dependencies import require

if TYPE_CHECKING:
    import pyarrow as pa

TABLE_FILE = "ticks.parquet"
PARTS_DIR = "ticks.parts"

# Columns in order, each with the Arrow type name `schema()` maps to a type.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("tick", "int64"),
    ("mono_ns", "int64"),
    ("frame", "int32"),
    ("state", "list<float32>"),
    ("action", "list<float32>"),
    ("fallback", "string"),
    ("engine_state", "string"),
    ("queue_depth", "int32"),
    ("session_id", "string"),
    ("seq_id", "int64"),
    ("episode_id", "int64"),
    ("chunk_row", "int32"),
    ("queue_wait_ms", "float64"),
    ("inference_ms", "float64"),
    ("rtt_ms", "float64"),
    ("obs_wait_ms", "float64"),
)


def schema() -> pa.Schema:
    pa = require("pyarrow")
    types = {
        "int64": pa.int64(),
        "int32": pa.int32(),
        "float64": pa.float64(),
        "string": pa.string(),
        "list<float32>": pa.list_(pa.float32()),
    }
    return pa.schema([(name, types[kind]) for name, kind in COLUMNS])


@dataclass(frozen=True)
class TickRow:
    """One row of the table; None is a null (no action, no provenance, no frame)."""

    tick: int
    mono_ns: int
    frame: int | None
    state: np.ndarray
    action: np.ndarray | None
    fallback: str | None
    engine_state: str
    queue_depth: int
    session_id: str | None = None
    seq_id: int | None = None
    episode_id: int | None = None
    chunk_row: int | None = None
    queue_wait_ms: float | None = None
    inference_ms: float | None = None
    rtt_ms: float | None = None
    obs_wait_ms: float | None = None


def _columns(rows: list[TickRow]) -> dict[str, list[Any]]:
    data: dict[str, list[Any]] = {name: [] for name, _ in COLUMNS}
    for row in rows:
        for name, _ in COLUMNS:
            value = getattr(row, name)
            if isinstance(value, np.ndarray):
                value = value.astype(np.float32, copy=False).tolist()
            data[name].append(value)
    return data


class TickParts:
    """Appends rows and writes them as numbered part files; `compact()` makes the one table."""

    def __init__(self, episode_dir: Path) -> None:
        self._dir = episode_dir
        self._parts = episode_dir / PARTS_DIR
        self._parts.mkdir(parents=True, exist_ok=True)
        self._pending: list[TickRow] = []
        self._written = 0
        self.rows = 0

    def append(self, row: TickRow) -> None:
        self._pending.append(row)
        self.rows += 1

    def flush(self) -> None:
        """Write the rows appended since the last flush as one complete part file."""
        if not self._pending:
            return
        pa, pq = require("pyarrow"), require("pyarrow.parquet")
        table = pa.Table.from_pydict(_columns(self._pending), schema=schema())
        path = self._parts / f"part-{self._written:06d}.parquet"
        scratch = path.with_suffix(".tmp")
        pq.write_table(table, scratch)
        os.replace(scratch, path)
        self._written += 1
        self._pending = []

    def compact(self) -> Path:
        """Flush, join every part into `ticks.parquet`, and remove the parts."""
        self.flush()
        pq = require("pyarrow.parquet")
        path = self._dir / TABLE_FILE
        scratch = path.with_suffix(".tmp")
        pq.write_table(read_parts(self._parts), scratch)
        os.replace(scratch, path)
        shutil.rmtree(self._parts)
        return path


def read_parts(parts: Path) -> pa.Table:
    """Every complete part in order (a part being written when a process died is skipped)."""
    pa, pq = require("pyarrow"), require("pyarrow.parquet")
    files = sorted(parts.glob("part-*.parquet"))
    if not files:
        return schema().empty_table()
    return pa.concat_tables([pq.read_table(f, schema=schema()) for f in files])


def read_table(episode_dir: Path) -> pa.Table:
    """The episode's table: the compacted one, or the parts of one that never finished."""
    path = episode_dir / TABLE_FILE
    if path.exists():
        return require("pyarrow.parquet").read_table(path, schema=schema())
    return read_parts(episode_dir / PARTS_DIR)
