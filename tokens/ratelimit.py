"""Per-client token bucket for demo mode: pure, with an injectable clock."""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


def client_key(host: str) -> str:
    """The rate-limited unit: one IPv4 address, or one IPv6 /64 (what a single host is usually
    given, so rotating addresses inside it does not reset the limit)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: int = 0


class RateLimiter:
    """``rate_per_min`` tokens per minute per key, at most ``burst`` at once.

    Remembers at most ``max_clients`` keys, forgetting the least recently seen first, so a flood
    of addresses cannot grow memory without bound (a forgotten client gets a full bucket back).
    """

    def __init__(
        self,
        *,
        rate_per_min: float,
        burst: int,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_min <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate_per_min > 0, burst >= 1 and max_clients >= 1 are required")
        self._rate_per_s = rate_per_min / 60.0
        self._burst = float(burst)
        self._max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def acquire(self, key: str) -> Decision:
        now = self._clock()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(tokens=self._burst, updated=now)
        else:
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate_per_s)
            bucket.updated = now
        self._buckets[key] = bucket  # most recently seen last
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)

        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return Decision(allowed=True)
        wait_s = (1.0 - bucket.tokens) / self._rate_per_s
        return Decision(allowed=False, retry_after_s=max(1, math.ceil(wait_s)))

    def __len__(self) -> int:
        return len(self._buckets)
