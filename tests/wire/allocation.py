"""Measuring what a decoder allocates, so caps are checked as memory, not only as error types."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

from policylink import wire


def decode_measured(decode: Callable[[], object]) -> tuple[object, int]:
    """(decoded value or the `WireError` raised, peak bytes traced while decoding).

    numpy and msgpack register their buffers with tracemalloc, so the peak covers arrays and
    byte strings as well as Python objects. Any exception other than `WireError` propagates.
    """
    tracemalloc.start()
    try:
        try:
            outcome: object = decode()
        except wire.WireError as exc:
            outcome = exc
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
