"""The buffer of future actions the control loop plays back while the network works.

Row i of a chunk is the action for control tick `index_at_send + i`, where `index_at_send` is
the consumption index snapshotted when its observation was sent. Everything the merge does
follows from that alignment: the rows for ticks that were already played while the request was
in flight are in the past and are dropped, and what remains continues exactly where the robot
is now. Two copies of every row are kept: model space (what an RTC policy is conditioned on
next time) and robot space (what the motors receive).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np


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


class ActionQueue:
    """Thread-safe: the control thread pops while a worker merges and snapshots.

    `replace=True` is RTC semantics: a new chunk replaces whatever was left, because it was
    generated to continue the left-over prefix it was sent. `replace=False` appends a chunk
    behind the unexecuted remainder (chunking policies without RTC). The consumption index
    never decreases, not even on `clear()`, so `index - index_at_send` is always the number of
    actions played while a request was in flight.
    """

    def __init__(self, replace: bool) -> None:
        self.replace = replace
        self._lock = threading.Lock()
        # Guarded by _lock: the rows still to play start at _head in the three aligned arrays;
        # _born holds each row's source-observation time (monotonic ns), non-decreasing.
        self._model = np.zeros((0, 0), dtype=np.float32)
        self._robot = np.zeros((0, 0), dtype=np.float32)
        self._born = np.zeros(0, dtype=np.int64)
        self._head = 0
        self._index = 0

    @property
    def index(self) -> int:
        """Actions consumed since creation: played plus expired."""
        with self._lock:
            return self._index

    def __len__(self) -> int:
        with self._lock:
            return len(self._born) - self._head

    def pop(self, now_ns: int, max_age_ns: int) -> tuple[np.ndarray | None, int]:
        """The next action younger than `max_age_ns`, and how many older ones were discarded.

        Expired rows count as consumed: their ticks are gone whether or not they were played.
        """
        with self._lock:
            head, born = self._head, self._born
            if head >= len(born):
                return None, 0
            expired = 0
            if now_ns - born[head] > max_age_ns:
                cutoff = now_ns - max_age_ns
                fresh = head + int(np.searchsorted(born[head:], cutoff, side="left"))
                expired = fresh - head
                head = fresh
                self._index += expired
            if head >= len(born):
                self._head = head
                return None, expired
            self._head = head + 1
            self._index += 1
            return self._robot[head].copy(), expired

    def has_fresh(self, now_ns: int, max_age_ns: int) -> bool:
        """Whether a pop now would return an action (the newest row is the youngest)."""
        with self._lock:
            return self._head < len(self._born) and now_ns - self._born[-1] <= max_age_ns

    def snapshot(self, horizon: int | None = None) -> QueueSnapshot:
        """The consumption index and (at most `horizon` rows of) the unexecuted left-over."""
        with self._lock:
            if self._head >= len(self._born):
                return QueueSnapshot(self._index, None, None)
            end = len(self._born) if horizon is None else min(len(self._born), self._head + horizon)
            return QueueSnapshot(
                self._index,
                self._model[self._head : end].copy(),
                self._robot[self._head : end].copy(),
            )

    def left_over(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the unexecuted rows, model space then robot space."""
        with self._lock:
            return self._model[self._head :].copy(), self._robot[self._head :].copy()

    def contents(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copies of the unexecuted rows and their source-observation times."""
        with self._lock:
            head = self._head
            return (
                self._model[head:].copy(),
                self._robot[head:].copy(),
                self._born[head:].copy(),
            )

    def merge(
        self,
        chunk_model: np.ndarray,
        chunk_robot: np.ndarray,
        delay: int,
        index_at_send: int,
        born_ns: int,
    ) -> MergeResult:
        """Merge a chunk answering the request sent when the index was `index_at_send`.

        `delay` is the number of stale steps the request announced to the server. In replace
        mode the rows actually in the past are dropped: that is the count consumed in flight,
        which equals `delay` when the latency estimate was right. Trimming by the real count
        keeps playback continuous either way, and the first chunk of an episode (nothing
        played while it was computed) is kept whole.
        """
        chunk_model = np.asarray(chunk_model, dtype=np.float32)
        chunk_robot = np.asarray(chunk_robot, dtype=np.float32)
        if chunk_model.ndim != 2 or chunk_robot.ndim != 2:
            raise ValueError(
                f"chunks must be [T, A]; got model {chunk_model.shape}, robot {chunk_robot.shape}"
            )
        if len(chunk_model) != len(chunk_robot):
            raise ValueError(
                f"model and robot chunks must have the same length; got {len(chunk_model)} "
                f"and {len(chunk_robot)}"
            )
        with self._lock:
            consumed = self._index - index_at_send
            if consumed < 0:
                raise ValueError(
                    f"index_at_send={index_at_send} is ahead of the queue's index {self._index}; "
                    "snapshot it from this queue when the request is sent"
                )
            born = np.full(len(chunk_robot), born_ns, dtype=np.int64)
            if self.replace:
                trimmed = min(consumed, len(chunk_robot))
                self._set(chunk_model[trimmed:], chunk_robot[trimmed:], born[trimmed:])
            else:
                trimmed = 0
                head = self._head
                if head < len(self._born):
                    self._check_width("model", self._model, chunk_model)
                    self._check_width("robot", self._robot, chunk_robot)
                    chunk_model = np.concatenate([self._model[head:], chunk_model])
                    chunk_robot = np.concatenate([self._robot[head:], chunk_robot])
                    born = np.concatenate([self._born[head:], born])
                self._set(chunk_model, chunk_robot, born)
            return MergeResult(consumed, trimmed, len(self._born), consumed - delay)

    def clear(self) -> None:
        """Drop every unexecuted row; the consumption index is kept."""
        with self._lock:
            self._head = len(self._born)

    def _set(self, model: np.ndarray, robot: np.ndarray, born: np.ndarray) -> None:
        # Fresh arrays, never views into the caller's chunk: a decoded chunk is read-only and
        # a caller may reuse its buffer.
        self._model = np.array(model, dtype=np.float32)
        self._robot = np.array(robot, dtype=np.float32)
        self._born = np.array(born, dtype=np.int64)
        self._head = 0

    @staticmethod
    def _check_width(space: str, queued: np.ndarray, chunk: np.ndarray) -> None:
        if queued.shape[1] != chunk.shape[1]:
            raise ValueError(
                f"{space}-space chunk has {chunk.shape[1]} columns but the queue holds "
                f"{queued.shape[1]}"
            )
