"""The token service over HTTP (FastAPI's TestClient), plus a bounded schemathesis fuzz run."""

import datetime as dt
import http.server
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import jwt
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from livekit import api
from livekit.api.access_token import Claims
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error

from catalog.characters import CharacterSet, parse_characters
from tests.samples import EN_VOICE, SECRET_PROMPT, sample_catalog_data
from tests.samples import TUTOR_FR_VOICE as FR_VOICE
from tokens.app import create_app
from tokens.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
LK_KEY = "APIintegration"
LK_SECRET = "integration-secret-0123456789abcdef-XYZ"
API_KEY = "backend-key-0123456789abcdef"
OTHER_API_KEY = "second-backend-key-0123456789"
ALLOWED_ORIGIN = "https://app.example"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "livekit_url": "wss://livekit.example",
        "livekit_api_key": LK_KEY,
        "livekit_api_secret": SecretStr(LK_SECRET),
        "token_api_keys": SecretStr(f"{API_KEY},{OTHER_API_KEY}"),
        "token_allowed_origins": [ALLOWED_ORIGIN],
        "token_ttl_s": 300,
        "token_rate_limit_per_min": 6,
        "token_rate_limit_burst": 2,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def catalog() -> CharacterSet:
    return parse_characters(sample_catalog_data())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(catalog: CharacterSet, clock: FakeClock) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(), catalog, clock=clock)) as c:
        yield c


@pytest.fixture
def demo_client(catalog: CharacterSet, clock: FakeClock) -> Iterator[TestClient]:
    app = create_app(make_settings(token_demo_mode=True), catalog, clock=clock)
    with TestClient(app) as c:
        yield c


def verify(token: str) -> Claims:
    return api.TokenVerifier(LK_KEY, LK_SECRET).verify(token)


def detail_text(response: httpx.Response) -> str:
    return json.dumps(response.json()["detail"])


# --- issuing -------------------------------------------------------------------------------------


def test_api_key_gets_a_token_with_exactly_the_intended_grants(client: TestClient) -> None:
    before = int(time.time())
    response = client.post(
        "/v1/token",
        headers=AUTH,
        json={
            "room": "lesson_42",
            "identity": "student-7",
            "name": "Ada Lovelace",
            "character": "tutor",
            "language": "fr",
            "subject": "maths",
            "level": "advanced",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"server_url", "token", "room", "identity", "expires_at"}
    assert body["server_url"] == "wss://livekit.example"
    assert (body["room"], body["identity"]) == ("lesson_42", "student-7")

    claims = verify(body["token"])
    assert claims.identity == "student-7"
    assert claims.name == "Ada Lovelace"
    assert claims.video == api.VideoGrants(
        room_join=True,
        room="lesson_42",
        can_publish=True,
        can_publish_sources=["microphone"],
        can_publish_data=True,
        can_subscribe=True,
    )
    assert claims.room_config is not None
    [dispatch] = claims.room_config.agents
    assert dispatch.agent_name == "kyutai-agent"
    assert json.loads(dispatch.metadata) == {
        "character": "tutor",
        "voice": FR_VOICE,
        "language": "fr",
        "subject": "maths",
        "level": "advanced",
    }

    raw = jwt.decode(body["token"], LK_SECRET, algorithms=["HS256"], issuer=LK_KEY)
    assert set(raw) == {"sub", "iss", "nbf", "exp", "name", "video", "roomConfig"}
    assert raw["exp"] - raw["nbf"] == 300
    assert before <= raw["nbf"] <= int(time.time())
    expires_at = dt.datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert int(expires_at.timestamp()) == raw["exp"]


def test_defaults_and_random_names(client: TestClient) -> None:
    first = client.post("/v1/token", headers=AUTH).json()
    second = client.post("/v1/token", headers=AUTH, json={}).json()
    assert first["room"] != second["room"] and first["identity"] != second["identity"]
    claims = verify(first["token"])
    assert claims.video is not None and claims.video.room == first["room"]
    assert claims.room_config is not None
    metadata = json.loads(claims.room_config.agents[0].metadata)
    assert metadata == {
        "character": "watercooler",
        "voice": EN_VOICE,
        "language": "en",
        "subject": None,
        "level": None,
    }


def test_second_api_key_works_and_agent_name_is_configurable(catalog: CharacterSet) -> None:
    app = create_app(make_settings(livekit_agent_name="other-agent", token_ttl_s=60), catalog)
    with TestClient(app) as c:
        response = c.post("/v1/token", headers={"Authorization": f"bearer {OTHER_API_KEY}"})
    assert response.status_code == 200
    raw = jwt.decode(response.json()["token"], LK_SECRET, algorithms=["HS256"])
    assert raw["roomConfig"]["agents"][0]["agentName"] == "other-agent"
    assert raw["exp"] - raw["nbf"] == 60


def test_demo_mode_issues_without_a_key(demo_client: TestClient) -> None:
    response = demo_client.post("/v1/token", json={"character": "tutor", "subject": "history"})
    assert response.status_code == 200, response.text
    assert response.json()["room"].startswith("room-")


# --- refusals ------------------------------------------------------------------------------------


def test_no_key_is_401(client: TestClient) -> None:
    response = client.post("/v1/token")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Missing API key" in response.json()["detail"]


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {API_KEY}x", "Bearer nope", f"Basic {API_KEY}", "Bearer", API_KEY],
)
def test_wrong_or_malformed_key_is_401(client: TestClient, authorization: str) -> None:
    response = client.post("/v1/token", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert "Invalid API key" in response.json()["detail"]


def test_wrong_key_is_401_even_in_demo_mode(demo_client: TestClient) -> None:
    response = demo_client.post("/v1/token", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401


def test_disallowed_origin_is_403(client: TestClient) -> None:
    response = client.post("/v1/token", headers={**AUTH, "Origin": "https://evil.example"})
    assert response.status_code == 403
    assert "TOKEN_ALLOWED_ORIGINS" in response.json()["detail"]
    assert "access-control-allow-origin" not in response.headers


def test_allowed_origin_gets_cors_headers(demo_client: TestClient) -> None:
    response = demo_client.post("/v1/token", headers={"Origin": ALLOWED_ORIGIN})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    preflight = demo_client.options(
        "/v1/token",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


def test_same_origin_demo_page_is_allowed(demo_client: TestClient) -> None:
    # TestClient's host is "testserver": the bundled demo page calls from that origin.
    response = demo_client.post("/v1/token", headers={"Origin": "http://testserver"})
    assert response.status_code == 200


def test_demo_callers_may_not_choose_the_room(demo_client: TestClient) -> None:
    response = demo_client.post("/v1/token", json={"room": "someone-elses-room"})
    assert response.status_code == 403
    assert "random room" in response.json()["detail"]


@pytest.mark.parametrize("field", ["room", "identity"])
@pytest.mark.parametrize(
    "value", ["", "x" * 65, "has space", "slash/", "dot.", "émilie", "new\nline", 42]
)
def test_bad_room_or_identity_is_422(client: TestClient, field: str, value: Any) -> None:
    response = client.post("/v1/token", headers=AUTH, json={field: value})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", field]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "bad\x00name"}, "name"),
        ({"name": "x" * 129}, "name"),
        ({"unexpected": 1}, "unexpected"),
        ({"language": "english"}, "language"),
    ],
)
def test_other_malformed_fields_are_422(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    response = client.post("/v1/token", headers=AUTH, json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == field


def test_malformed_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/v1/token", headers={**AUTH, "Content-Type": "application/json"}, content=b"{nope"
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"character": "nobody"}, "character", "unknown character 'nobody'"),
        ({"character": "watercooler", "language": "fr"}, "language", "does not speak 'fr'"),
        ({"voice": "vctk/p999.safetensors"}, "voice", "unknown voice"),
        ({"character": "tutor"}, "subject", "needs a subject"),
        ({"character": "tutor", "subject": "art"}, "subject", "unknown subject 'art'"),
        ({"character": "tutor", "subject": "maths", "level": "x"}, "level", "unknown level"),
        ({"subject": "maths"}, "subject", "takes no subject"),
    ],
)
def test_unknown_catalogue_choices_are_422_with_a_clear_message(
    client: TestClient, body: dict[str, Any], field: str, fragment: str
) -> None:
    response = client.post("/v1/token", headers=AUTH, json=body)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", field]
    assert fragment in error["msg"]


def test_demo_rate_limit_is_429_with_retry_after(demo_client: TestClient, clock: FakeClock) -> None:
    assert [demo_client.post("/v1/token").status_code for _ in range(2)] == [200, 200]
    refused = demo_client.post("/v1/token")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "10"  # 6/min: one token every 10 s
    assert "retry in 10 s" in refused.json()["detail"]
    clock.now += 10
    assert demo_client.post("/v1/token").status_code == 200


def test_rate_limit_is_per_client_ip(catalog: CharacterSet, clock: FakeClock) -> None:
    app = create_app(make_settings(token_demo_mode=True), catalog, clock=clock)
    with (
        TestClient(app, client=("203.0.113.1", 1000)) as first,
        TestClient(app, client=("203.0.113.2", 1000)) as second,
    ):
        assert [first.post("/v1/token").status_code for _ in range(3)] == [200, 200, 429]
        assert second.post("/v1/token").status_code == 200


def test_api_keys_are_not_rate_limited(catalog: CharacterSet, clock: FakeClock) -> None:
    app = create_app(make_settings(token_demo_mode=True), catalog, clock=clock)
    with TestClient(app) as c:
        assert all(c.post("/v1/token", headers=AUTH).status_code == 200 for _ in range(10))


# --- the other endpoints -------------------------------------------------------------------------


def test_characters_lists_what_a_page_may_offer(client: TestClient) -> None:
    response = client.get("/v1/characters")
    assert response.status_code == 200
    body = response.json()
    assert body["default"] == "watercooler"
    tutor = next(c for c in body["characters"] if c["id"] == "tutor")
    assert tutor == {
        "id": "tutor",
        "name": "Tutor",
        "description": "A tutor.",
        "language": "en",
        "languages": ["en", "fr"],
        "voice": "vctk/p226_023.wav.1e68beda@240.safetensors",
        "takes_subject": True,
        "subjects": ["maths", "history"],
        "levels": ["beginner", "advanced"],
        "mode": "cascade",
    }
    assert SECRET_PROMPT not in response.text  # prompts stay with the agent


def test_healthz_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/token", "/v1/characters", "/healthz", "/metrics"} <= set(paths)


def test_metrics_count_issued_tokens_and_refusals_by_reason(
    client: TestClient,
) -> None:
    client.post("/v1/token", headers=AUTH)
    client.post("/v1/token", headers=AUTH, json={"character": "tutor", "subject": "maths"})
    client.post("/v1/token")
    client.post("/v1/token", headers={"Authorization": "Bearer wrong"})
    client.post("/v1/token", headers={**AUTH, "Origin": "https://evil.example"})
    client.post("/v1/token", headers=AUTH, json={"room": "bad room"})
    client.post("/v1/token", headers=AUTH, json={"character": "nobody"})
    text = client.get("/metrics").text
    for line in [
        'kyutai_tokens_issued_total{auth="api_key",character="watercooler"} 1.0',
        'kyutai_tokens_issued_total{auth="api_key",character="tutor"} 1.0',
        'kyutai_tokens_refused_total{reason="missing_key"} 1.0',
        'kyutai_tokens_refused_total{reason="invalid_key"} 1.0',
        'kyutai_tokens_refused_total{reason="forbidden_origin"} 1.0',
        'kyutai_tokens_refused_total{reason="invalid_request"} 1.0',
        'kyutai_tokens_refused_total{reason="unknown_selection"} 1.0',
        'kyutai_tokens_refused_total{reason="rate_limited"} 0.0',
    ]:
        assert line in text, line


# --- the widget ----------------------------------------------------------------------------------


def test_root_redirects_to_the_demo_page(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code in (302, 307)
    assert response.headers["location"] == "/widget/demo.html"


def test_missing_bundle_is_a_clear_404(catalog: CharacterSet, tmp_path: Path) -> None:
    for static_dir in (tmp_path, tmp_path / "does-not-exist"):
        app = create_app(make_settings(), catalog, static_dir=static_dir)
        with TestClient(app) as c:
            response = c.get("/widget/widget.js")
            assert response.status_code == 404
            assert "not built yet" in response.text
            assert c.get("/widget/other.css").status_code == 404


def test_built_files_are_served(catalog: CharacterSet, tmp_path: Path) -> None:
    (tmp_path / "widget.js").write_text("console.log('widget');")
    (tmp_path / "demo.html").write_text("<!doctype html><title>demo</title>")
    app = create_app(make_settings(), catalog, static_dir=tmp_path)
    with TestClient(app) as c:
        js = c.get("/widget/widget.js")
        assert js.status_code == 200 and "widget" in js.text
        assert "javascript" in js.headers["content-type"]
        assert c.get("/", follow_redirects=True).text.startswith("<!doctype html>")
        assert c.get("/widget/../characters.yaml").status_code == 404


# --- secrets -------------------------------------------------------------------------------------


def test_secrets_never_appear_in_responses_or_logs(
    catalog: CharacterSet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = create_app(make_settings(token_demo_mode=True), catalog)
    responses: list[httpx.Response] = []
    issued: list[str] = []
    with TestClient(app) as c:
        for kwargs in [
            {"headers": AUTH},
            {"headers": AUTH, "json": {"character": "tutor", "subject": "maths"}},
            {},
            {"headers": {"Authorization": f"Bearer {API_KEY}-nearly"}},
            {"headers": {**AUTH, "Origin": "https://evil.example"}},
            {"headers": AUTH, "json": {"room": "bad room"}},
            {"headers": AUTH, "json": {"character": "nobody"}},
        ]:
            response = c.post("/v1/token", **kwargs)  # type: ignore[arg-type]
            responses.append(response)
            if response.status_code == 200:
                issued.append(response.json()["token"])
        for path in ["/v1/characters", "/healthz", "/metrics", "/openapi.json", "/docs"]:
            responses.append(c.get(path))
    assert len(issued) == 3
    for response in responses:
        exposed = response.text + json.dumps(dict(response.headers))
        assert LK_SECRET not in exposed
        assert API_KEY not in exposed and OTHER_API_KEY not in exposed
    logs = caplog.text
    assert "token issued" in logs and "token refused" in logs
    for secret in [LK_SECRET, API_KEY, OTHER_API_KEY, *issued]:
        assert secret not in logs


# --- fuzzing -------------------------------------------------------------------------------------


def _fuzz_app(**overrides: Any) -> FastAPI:
    # A generous rate limit so the fuzzer reaches the handlers (429 is not a failure anyway).
    settings_ = make_settings(
        token_rate_limit_per_min=1e6, token_rate_limit_burst=10**6, **overrides
    )
    return create_app(settings_, parse_characters(sample_catalog_data()))


api_key_schema = schemathesis.openapi.from_asgi("/openapi.json", _fuzz_app())
demo_schema = schemathesis.openapi.from_asgi("/openapi.json", _fuzz_app(token_demo_mode=True))
FUZZ_SETTINGS = settings(
    max_examples=50,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@api_key_schema.parametrize()
@FUZZ_SETTINGS
def test_fuzz_with_an_api_key_finds_no_server_error(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=AUTH, checks=[not_a_server_error])


@demo_schema.parametrize()
@FUZZ_SETTINGS
def test_fuzz_in_demo_mode_finds_no_server_error(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=[not_a_server_error])


# --- the real process ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "TOKEN_"))}
    env.update(values)
    env["KYUTAI_CHARACTERS_FILE"] = str(REPO_ROOT / "characters.yaml")
    return env


def test_serve_runs_the_service(tmp_path: Path) -> None:
    port = _free_port()
    env = _env(LIVEKIT_API_KEY=LK_KEY, LIVEKIT_API_SECRET=LK_SECRET, TOKEN_API_KEYS=API_KEY)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokens", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.post(f"http://127.0.0.1:{port}/v1/token", headers=AUTH)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert response.status_code == 200
        assert verify(response.json()["token"]).video is not None
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=10)
    text = output.decode()
    assert "token issued" in text
    assert LK_SECRET not in text and API_KEY not in text


def test_serve_refuses_missing_configuration_with_exit_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tokens", "serve", "--port", "1"],
        cwd=tmp_path,
        env={**_env(), "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "configuration error" in result.stderr
    assert "Traceback" not in result.stderr


# --- the line of rooms waiting for an agent -------------------------------------------


class _Line(http.server.BaseHTTPRequestHandler):
    waiting: Any = 0

    def do_GET(self) -> None:
        body = json.dumps({"waiting": type(self).waiting}).encode()
        self.send_response(200 if self.path == "/line" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def dispatcher_url() -> Iterator[str]:
    """A stand-in for the dispatcher's `GET /line` on a free loopback port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Line)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_full_line_is_503_with_retry_after(catalog: CharacterSet, dispatcher_url: str) -> None:
    settings = make_settings(token_dispatcher_url=dispatcher_url, token_max_line=2)
    with TestClient(create_app(settings, catalog)) as c:
        _Line.waiting = 1
        assert c.post("/v1/token", headers=AUTH, json={}).status_code == 200
        _Line.waiting = 2
        refused = c.post("/v1/token", headers=AUTH, json={})
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "30"
        assert "2 people are waiting" in detail_text(refused)
        assert 'reason="line_full"' in c.get("/metrics").text
        # Nonsense from the dispatcher never blocks tokens.
        _Line.waiting = "many"
        assert c.post("/v1/token", headers=AUTH, json={}).status_code == 200


def test_an_unreachable_dispatcher_does_not_block_tokens(catalog: CharacterSet) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = make_settings(token_dispatcher_url=f"http://127.0.0.1:{port}", token_max_line=0)
    with TestClient(create_app(settings, catalog)) as c:
        assert c.post("/v1/token", headers=AUTH, json={}).status_code == 200
