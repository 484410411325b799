"""Per-robot rate limits: token buckets for requests, a lock-out for failed API keys.

`RateLimiter` keeps one token bucket per key (a robot's client id, a peer's address): it holds
up to `burst` tokens and refills at `rate_per_s`; each request takes one, and a request that
finds its bucket empty is refused. A robot's control loop asks for chunks at a few to a hundred
hertz, far under the defaults, so only a peer that floods is ever refused — at the door, before
its request costs a decode, a lock or an answer.

`FailureThrottle` counts failures per key (wrong API keys, per remote address): after
`max_failures` within `window_s` the key is locked out for `lockout_s`, during which it is
refused without its key even being compared.

Both tables are bounded whatever peers send: at most `max_keys` entries, the least recently
used one dropped to make room. A dropped bucket or record is the state of a peer that has been
quiet the longest, so forgetting it costs nothing worth keeping.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_MAX_KEYS = 4096
Clock = Callable[[], float]


@dataclass
class _Bucket:
    tokens: float
    updated_s: float


class RateLimiter:
    """`allow(key)` is True while `key` keeps under `rate_per_s` on average with bursts of up
    to `burst`; `rate_per_s <= 0` allows everything."""

    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Clock = time.monotonic,
    ) -> None:
        if burst < 1 and rate_per_s > 0:
            raise ValueError(f"a token bucket's burst must be at least 1, got {burst}")
        self.rate_per_s = rate_per_s
        self.burst = float(burst)
        self._max_keys = max_keys
        self._clock = clock
        # Guards `_buckets` (key → its bucket, least recently used first).
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def unlimited(self) -> bool:
        return self.rate_per_s <= 0

    def allow(self, key: str) -> bool:
        if self.unlimited:
            return True
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._max_keys:
                    self._buckets.popitem(last=False)
                bucket = self._buckets[key] = _Bucket(self.burst, now)
            else:
                self._buckets.move_to_end(key)
                elapsed = max(0.0, now - bucket.updated_s)
                bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate_per_s)
                bucket.updated_s = now
            if bucket.tokens < 1.0:
                return False
            bucket.tokens -= 1.0
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)


class FailureThrottle:
    """Locks a key out after `max_failures` failures within `window_s`, for `lockout_s`."""

    def __init__(
        self,
        max_failures: int,
        window_s: float,
        lockout_s: float,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Clock = time.monotonic,
    ) -> None:
        if max_failures < 1:
            raise ValueError(f"max_failures must be at least 1, got {max_failures}")
        self.max_failures = max_failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self._max_keys = max_keys
        self._clock = clock
        # Guards `_failures` (key → times of its recent failures, oldest first) and `_locked`
        # (key → when its lock-out ends).
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._locked: OrderedDict[str, float] = OrderedDict()

    def locked_for_s(self, key: str) -> float:
        """Seconds `key` stays locked out; 0 when it may try."""
        now = self._clock()
        with self._lock:
            until = self._locked.get(key)
            if until is None:
                return 0.0
            if until <= now:
                del self._locked[key]
                return 0.0
            return until - now

    def failed(self, key: str) -> bool:
        """Record a failure; True when it locks `key` out."""
        now = self._clock()
        with self._lock:
            times = self._failures.get(key)
            if times is None:
                if len(self._failures) >= self._max_keys:
                    self._failures.popitem(last=False)
                times = self._failures[key] = deque(maxlen=self.max_failures)
            else:
                self._failures.move_to_end(key)
            times.append(now)
            if len(times) < self.max_failures or now - times[0] > self.window_s:
                return False
            times.clear()
            if len(self._locked) >= self._max_keys:
                self._locked.popitem(last=False)
            self._locked[key] = now + self.lockout_s
            return True

    def succeeded(self, key: str) -> None:
        """A success forgets the key's failures."""
        with self._lock:
            self._failures.pop(key, None)
