import pytest

from tokens.auth import ApiKeys, origin_allowed, parse_bearer


def test_api_keys_match_returns_the_index() -> None:
    keys = ApiKeys(["first-key-0123456789", "second-key-0123456789"])
    assert keys.match("first-key-0123456789") == 0
    assert keys.match("second-key-0123456789") == 1
    assert keys.match("second-key-012345678") is None
    assert keys.match("") is None
    assert bool(keys)
    assert not ApiKeys([])
    assert ApiKeys([]).match("anything") is None


def test_api_keys_are_not_kept_in_clear() -> None:
    keys = ApiKeys(["very-secret-key-0123456789"])
    assert "very-secret-key" not in repr(vars(keys))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("Bearer abc", "abc"),
        ("bearer   abc  ", "abc"),
        ("Basic abc", ""),
        ("Bearer", ""),
        ("Bearer   ", ""),
        ("", ""),
    ],
)
def test_parse_bearer(header: str | None, expected: str | None) -> None:
    assert parse_bearer(header) == expected


@pytest.mark.parametrize(
    ("origin", "allowed", "host", "ok"),
    [
        (None, [], None, True),  # backends and curl send no Origin
        ("https://app.example", ["https://app.example"], "tokens.example", True),
        ("https://app.example/", ["https://app.example"], None, True),
        ("https://evil.example", ["https://app.example"], "tokens.example", False),
        ("http://app.example", ["https://app.example"], None, False),  # scheme matters
        ("https://tokens.example", [], "tokens.example", True),  # the bundled demo page
        ("http://localhost:8080", [], "localhost:8080", True),
        ("http://localhost:9999", [], "localhost:8080", False),
        ("null", [], "tokens.example", False),
        ("https://anything.example", ["*"], None, True),
    ],
)
def test_origin_allowed(origin: str | None, allowed: list[str], host: str | None, ok: bool) -> None:
    assert origin_allowed(origin, allowed, host) is ok
