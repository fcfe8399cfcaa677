import pytest

from tokens.ratelimit import Decision, RateLimiter, client_key


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refused_with_retry_after() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_min=6, burst=3, clock=clock)  # one token per 10 s
    assert [limiter.acquire("a").allowed for _ in range(3)] == [True, True, True]
    assert limiter.acquire("a") == Decision(allowed=False, retry_after_s=10)
    clock.now += 4
    assert limiter.acquire("a") == Decision(allowed=False, retry_after_s=6)


def test_refills_at_the_configured_rate_up_to_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_min=60, burst=2, clock=clock)
    limiter.acquire("a")
    limiter.acquire("a")
    assert not limiter.acquire("a").allowed
    clock.now += 1.0
    assert limiter.acquire("a").allowed
    clock.now += 3600  # a long pause refills to the burst, not beyond
    assert [limiter.acquire("a").allowed for _ in range(3)] == [True, True, False]


def test_clients_are_independent() -> None:
    limiter = RateLimiter(rate_per_min=1, burst=1, clock=FakeClock())
    assert limiter.acquire("a").allowed
    assert not limiter.acquire("a").allowed
    assert limiter.acquire("b").allowed


def test_retry_after_is_at_least_one_second() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_min=600, burst=1, clock=clock)
    limiter.acquire("a")
    assert limiter.acquire("a") == Decision(allowed=False, retry_after_s=1)


def test_a_clock_going_backwards_does_not_mint_tokens() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_min=1, burst=1, clock=clock)
    limiter.acquire("a")
    clock.now -= 500
    assert not limiter.acquire("a").allowed


def test_memory_is_bounded_forgetting_the_least_recent_client() -> None:
    limiter = RateLimiter(rate_per_min=1, burst=1, max_clients=2, clock=FakeClock())
    limiter.acquire("a")
    limiter.acquire("b")
    limiter.acquire("a")  # a is now the most recent
    limiter.acquire("c")  # evicts b
    assert len(limiter) == 2
    assert limiter.acquire("b").allowed  # forgotten: a fresh bucket
    assert not limiter.acquire("c").allowed


@pytest.mark.parametrize(
    "kwargs", [{"rate_per_min": 0, "burst": 1}, {"rate_per_min": 1, "burst": 0}]
)
def test_invalid_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RateLimiter(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("testclient", "testclient"),
    ],
)
def test_client_key_groups_an_ipv6_host_by_its_64(host: str, key: str) -> None:
    assert client_key(host) == key
