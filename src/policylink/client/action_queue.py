"""The buffer of future actions the control loop plays back while the network works.

Row i of a chunk is the action for control tick `index_at_send + i`, where `index_at_send` is
the consumption index snapshotted when its observation was sent. Everything the merge does
follows from that alignment: the rows for ticks that were already played while the request was
in flight are in the past and are dropped, and what remains continues exactly where the robot
is now. Two copies of every row are kept: model space (what an RTC policy is conditioned on
next time) and robot space (what the motors receive).

`pop` runs on the control thread every tick, so it takes no lock: a lock the worker holds
makes the control thread sleep, and on a busy machine a sleeping thread can wait a whole
scheduler tick (milliseconds) to run again. Instead the rows live in an immutable `_Rows`
keyed by absolute tick index, which writers replace with one attribute assignment (atomic
under the interpreter lock), and only the control thread advances the consumption index. A
pop that read the rows just before a merge replaced them plays the old row for its tick, and
the new rows for that tick are skipped by index: the same outcome as a pop just before the
merge.

Every row remembers where it came from (`ChunkOrigin`: the request's session and `seq_id`, the
server's timings, the round trip) and its row in that chunk, so the control thread can say
which request produced the action it just played (`last_provenance`) without a lock: the
origin travels inside the same immutable `_Rows` as the action.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ChunkOrigin:
    """The request a chunk answered: `(session_id, seq_id)` is the key of the server's audit
    line for it; the timings are the server's (`queue_wait_ms`, `inference_ms`) and the
    robot's: `obs_wait_ms` (observation offered to request sent) and `rtt_ms` (request sent
    to chunk received)."""

    session_id: str
    seq_id: int
    episode_id: int
    queue_wait_ms: float
    inference_ms: float
    rtt_ms: float
    obs_wait_ms: float = 0.0


@dataclass(frozen=True)
class ActionProvenance:
    """Where one played action came from: its chunk's request, and its row in that chunk."""

    origin: ChunkOrigin
    row: int


@dataclass(frozen=True)
class QueueSnapshot:
    """What a request carries from the queue: where playback was, and what was left to play."""

    index: int
    prefix_model: np.ndarray | None
    prefix_robot: np.ndarray | None


@dataclass(frozen=True)
class MergeResult:
    """How a chunk landed.

    `consumed_in_flight` is how many actions were played between the snapshot and the merge;
    `delay_error` is that count minus the delay the request announced (0 when the latency
    estimate was right; positive when the server was told too little).
    """

    consumed_in_flight: int
    trimmed: int
    queued: int
    delay_error: int


_NO_ROWS = np.zeros(0, dtype=np.int32)


@dataclass(frozen=True)
class _Rows:
    """Aligned rows for ticks `start, start + 1, ...`; never mutated once published.

    `born` holds each row's source-observation time (monotonic ns), non-decreasing; `origins`
    and `chunk_rows` the request each row answers (None for a chunk merged without one) and
    its row in that request's chunk.
    """

    start: int
    model: np.ndarray
    robot: np.ndarray
    born: np.ndarray
    origins: tuple[ChunkOrigin | None, ...]
    chunk_rows: np.ndarray

    @property
    def end(self) -> int:
        return self.start + len(self.born)

    def after(self, index: int) -> slice:
        return slice(max(0, index - self.start), len(self.born))


class ActionQueue:
    """The control thread pops; a worker merges, snapshots and clears.

    `pop` must only ever be called from one thread. `replace=True` is RTC semantics: a new
    chunk replaces whatever was left, because it was generated to continue the left-over
    prefix it was sent. `replace=False` appends a chunk behind the unexecuted remainder
    (chunking policies without RTC). The consumption index never decreases, not even on
    `clear()`, so `index - index_at_send` is always the number of actions played while a
    request was in flight.
    """

    def __init__(self, replace: bool) -> None:
        self.replace = replace
        empty = np.zeros((0, 0), dtype=np.float32)
        # Replaced whole by writers, read without a lock by everyone.
        self._rows = _Rows(0, empty, empty, np.zeros(0, dtype=np.int64), (), _NO_ROWS)
        # Written by the pop thread only: actions consumed (played or expired) since creation,
        # and the origin and chunk row of the action the last pop returned (None: it returned
        # none, or the row had no origin).
        self._index = 0
        self._last_origin: ChunkOrigin | None = None
        self._last_row = 0
        # Serialises writers (merge, clear) with each other; `pop` never takes it.
        self._write_lock = threading.Lock()

    @property
    def index(self) -> int:
        """Actions consumed since creation: played plus expired."""
        return self._index

    def __len__(self) -> int:
        return max(0, self._rows.end - self._index)

    def pop(self, now_ns: int, max_age_ns: int) -> tuple[np.ndarray | None, int]:
        """The next action younger than `max_age_ns`, and how many older ones were discarded.

        Expired rows count as consumed: their ticks are gone whether or not they were played.
        """
        rows, index = self._rows, self._index
        at = index - rows.start
        self._last_origin = None
        if at < 0 or at >= len(rows.born):
            return None, 0
        expired = 0
        born = rows.born
        if now_ns - born[at] > max_age_ns:
            fresh = at + int(np.searchsorted(born[at:], now_ns - max_age_ns, side="left"))
            expired = fresh - at
            at = fresh
        if at >= len(born):
            self._index = index + expired
            return None, expired
        self._index = index + expired + 1
        self._last_origin = rows.origins[at]
        self._last_row = int(rows.chunk_rows[at])
        return rows.robot[at].copy(), expired

    def last_provenance(self) -> ActionProvenance | None:
        """Where the action the last `pop` returned came from; None if it returned none.

        Pop thread only, like `pop`.
        """
        origin = self._last_origin
        return None if origin is None else ActionProvenance(origin, self._last_row)

    def has_fresh(self, now_ns: int, max_age_ns: int) -> bool:
        """Whether a pop now would return an action (the newest row is the youngest)."""
        rows = self._rows
        return self._index < rows.end and now_ns - rows.born[-1] <= max_age_ns

    def snapshot(self, horizon: int | None = None) -> QueueSnapshot:
        """The consumption index and (at most `horizon` rows of) the unexecuted left-over."""
        rows, index = self._rows, self._index
        if index >= rows.end:
            return QueueSnapshot(index, None, None)
        left = rows.after(index)
        end = left.stop if horizon is None else min(left.stop, left.start + horizon)
        return QueueSnapshot(
            index,
            rows.model[left.start : end].copy(),
            rows.robot[left.start : end].copy(),
        )

    def left_over(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the unexecuted rows, model space then robot space."""
        model, robot, _ = self.contents()
        return model, robot

    def contents(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copies of the unexecuted rows and their source-observation times."""
        rows = self._rows
        left = rows.after(self._index)
        return rows.model[left].copy(), rows.robot[left].copy(), rows.born[left].copy()

    def merge(
        self,
        chunk_model: np.ndarray,
        chunk_robot: np.ndarray,
        delay: int,
        index_at_send: int,
        born_ns: int,
        *,
        origin: ChunkOrigin | None = None,
    ) -> MergeResult:
        """Merge a chunk answering the request sent when the index was `index_at_send`.

        `delay` is the number of stale steps the request announced to the server. In replace
        mode the rows actually in the past are dropped: that is the count consumed in flight,
        which equals `delay` when the latency estimate was right. Trimming by the real count
        keeps playback continuous either way, and the first chunk of an episode (nothing
        played while it was computed) is kept whole.
        """
        # Fresh arrays, never views into the caller's chunk: a decoded chunk is read-only and
        # a caller may reuse its buffer.
        chunk_model = np.array(chunk_model, dtype=np.float32)
        chunk_robot = np.array(chunk_robot, dtype=np.float32)
        if chunk_model.ndim != 2 or chunk_robot.ndim != 2:
            raise ValueError(
                f"chunks must be [T, A]; got model {chunk_model.shape}, robot {chunk_robot.shape}"
            )
        if len(chunk_model) != len(chunk_robot):
            raise ValueError(
                f"model and robot chunks must have the same length; got {len(chunk_model)} "
                f"and {len(chunk_robot)}"
            )
        born = np.full(len(chunk_robot), born_ns, dtype=np.int64)
        origins: tuple[ChunkOrigin | None, ...] = (origin,) * len(chunk_robot)
        chunk_rows = np.arange(len(chunk_robot), dtype=np.int32)
        with self._write_lock:
            index = self._index
            consumed = index - index_at_send
            if consumed < 0:
                raise ValueError(
                    f"index_at_send={index_at_send} is ahead of the queue's index {index}; "
                    "snapshot it from this queue when the request is sent"
                )
            if self.replace:
                # Row i answers tick index_at_send + i: rows already in the past are never
                # reached by the index, which is what trims them.
                trimmed = min(consumed, len(chunk_robot))
                rows = _Rows(index_at_send, chunk_model, chunk_robot, born, origins, chunk_rows)
            else:
                trimmed = 0
                old = self._rows
                if index < old.end:
                    self._check_width("model", old.model, chunk_model)
                    self._check_width("robot", old.robot, chunk_robot)
                    left = old.after(index)
                    chunk_model = np.concatenate([old.model[left], chunk_model])
                    chunk_robot = np.concatenate([old.robot[left], chunk_robot])
                    born = np.concatenate([old.born[left], born])
                    origins = old.origins[left] + origins
                    chunk_rows = np.concatenate([old.chunk_rows[left], chunk_rows])
                rows = _Rows(index, chunk_model, chunk_robot, born, origins, chunk_rows)
            self._rows = rows
            return MergeResult(consumed, trimmed, max(0, rows.end - index), consumed - delay)

    def clear(self) -> None:
        """Drop every unexecuted row; the consumption index is kept."""
        with self._write_lock:
            rows = self._rows
            # Starting at the current index keeps the queue empty however far it advances.
            self._rows = _Rows(
                self._index, rows.model[:0], rows.robot[:0], rows.born[:0], (), _NO_ROWS
            )

    @staticmethod
    def _check_width(space: str, queued: np.ndarray, chunk: np.ndarray) -> None:
        if queued.shape[1] != chunk.shape[1]:
            raise ValueError(
                f"{space}-space chunk has {chunk.shape[1]} columns but the queue holds "
                f"{queued.shape[1]}"
            )
