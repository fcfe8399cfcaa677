"""The HTTP service: FastAPI routes around the pure pieces (auth, rate limit, catalogue, grants).

Everything the app needs is passed to ``create_app``; nothing is global, so tests build as many
differently configured apps as they like. No ``from __future__ import annotations`` here: FastAPI
must evaluate the route annotations, which refer to dependencies local to ``create_app``.
"""

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from catalog.characters import CharacterSet, Language
from catalog.dispatch import SelectionError, SelectionRequest, resolve, strict
from tokens.auth import ApiKeys, origin_allowed, parse_bearer
from tokens.grants import NAME_PATTERN, mint_token, random_name
from tokens.line import waiting_rooms
from tokens.metrics import Metrics, Refusal
from tokens.ratelimit import RateLimiter, client_key
from tokens.settings import Settings

logger = logging.getLogger("tokens")

STATIC_DIR = Path(__file__).parent / "static"
TOKEN_PATH = "/v1/token"
# Free text shown to other participants: bounded, no control characters.
DISPLAY_NAME_PATTERN = r"^[^\x00-\x1f\x7f]{1,128}$"


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room: str | None = Field(
        default=None, pattern=NAME_PATTERN, description="Room to join; random when omitted."
    )
    identity: str | None = Field(
        default=None, pattern=NAME_PATTERN, description="Participant identity; random when omitted."
    )
    name: str | None = Field(
        default=None, pattern=DISPLAY_NAME_PATTERN, description="Display name shown in the room."
    )
    character: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="Character id; the catalogue's default if omitted.",
    )
    voice: str | None = Field(
        default=None, min_length=1, max_length=256, description="A voice from GET /v1/characters."
    )
    language: str | None = Field(default=None, pattern=r"^[a-z]{2}$", description="en or fr.")
    subject: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Tutoring subject (tutor characters).",
    )
    level: str | None = Field(
        default=None, min_length=1, max_length=64, description="Tutoring level (tutor characters)."
    )


class TokenResponse(BaseModel):
    server_url: str = Field(description="LiveKit URL to connect to with the token.")
    token: str = Field(description="Signed LiveKit access token (JWT).")
    room: str
    identity: str
    expires_at: dt.datetime = Field(description="When the token stops admitting a join (UTC).")


class Error(BaseModel):
    detail: str


class CharacterInfo(BaseModel):
    id: str
    name: str
    description: str
    language: Language
    languages: list[Language]
    voice: str
    takes_subject: bool
    subjects: list[str]
    levels: list[str]
    mode: Literal["cascade", "duplex"] = "cascade"
    """duplex: Moshi, which listens while it speaks (no turns)."""


class CharactersResponse(BaseModel):
    default: str
    characters: list[CharacterInfo]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class WidgetFiles(StaticFiles):
    """Static widget files that answer a clear 404 (never a 500) while nothing is built yet."""

    async def check_config(self) -> None:
        # A missing directory just means nothing is built: every path is then a plain 404.
        with contextlib.suppress(RuntimeError):
            await super().check_config()

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except StarletteHTTPException as exc:
            if exc.status_code != 404:
                raise
            hint = ""
            if path in ("widget.js", "demo.html"):
                hint = " The widget is not built yet: run `npm ci && npm run build` in web/."
            return PlainTextResponse(f"Not found: /widget/{path}.{hint}", status_code=404)


def _refuse(
    metrics: Metrics,
    reason: Refusal,
    status_code: int,
    detail: str,
    client: str,
    headers: dict[str, str] | None = None,
) -> HTTPException:
    metrics.refused.labels(reason=reason.value).inc()
    logger.info("token refused: reason=%s client=%s", reason.value, client)
    return HTTPException(status_code=status_code, detail=detail, headers=headers)


def _client_ip(request: Request) -> str:
    # uvicorn rewrites request.client from X-Forwarded-For for trusted proxies only.
    return request.client.host if request.client else "unknown"


def create_app(
    settings: Settings,
    catalog: CharacterSet,
    *,
    clock: Callable[[], float] = time.monotonic,
    static_dir: Path = STATIC_DIR,
) -> FastAPI:
    api_key, api_secret = settings.effective_livekit_credentials()
    api_keys = ApiKeys(settings.api_keys())
    limiter = RateLimiter(
        rate_per_min=settings.token_rate_limit_per_min,
        burst=settings.token_rate_limit_burst,
        max_clients=settings.token_rate_limit_max_clients,
        clock=clock,
    )
    metrics = Metrics()
    allowed_origins = list(settings.token_allowed_origins)
    bearer = HTTPBearer(
        auto_error=False,
        description="A server-to-server key from TOKEN_API_KEYS (optional in demo mode).",
    )

    app = FastAPI(
        title="Kyutai LiveKit token service",
        version="0.1.0",
        description=(
            "Mints short-lived LiveKit tokens that join one room and dispatch the "
            f"`{settings.livekit_agent_name}` agent with a character from the catalogue."
        ),
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=allowed_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["authorization", "content-type"],
        max_age=600,
    )

    @app.exception_handler(RequestValidationError)
    async def _on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if request.url.path == TOKEN_PATH:
            catalog_error = any(e.get("type") == "catalog" for e in exc.errors())
            reason = Refusal.UNKNOWN_SELECTION if catalog_error else Refusal.INVALID_REQUEST
            metrics.refused.labels(reason=reason.value).inc()
            logger.info("token refused: reason=%s client=%s", reason.value, _client_ip(request))
        return await request_validation_exception_handler(request, exc)

    async def authorize(
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> str:
        """How the caller may get a token: "api_key" or "demo"; raises the refusal otherwise.

        The declared HTTPBearer only documents the scheme; the raw header is parsed here so a
        malformed or wrong key is refused even in demo mode instead of passing as anonymous.
        """
        client = _client_ip(request)
        origin = request.headers.get("origin")
        if not origin_allowed(origin, allowed_origins, request.headers.get("host")):
            raise _refuse(
                metrics,
                Refusal.FORBIDDEN_ORIGIN,
                status.HTTP_403_FORBIDDEN,
                "This origin may not request tokens (it is not in TOKEN_ALLOWED_ORIGINS).",
                client,
            )
        presented = parse_bearer(request.headers.get("authorization"))
        challenge = {"WWW-Authenticate": "Bearer"}
        if presented is not None:
            index = api_keys.match(presented) if presented else None
            if index is None:
                raise _refuse(
                    metrics,
                    Refusal.INVALID_KEY,
                    status.HTTP_401_UNAUTHORIZED,
                    "Invalid API key: send `Authorization: Bearer <key>` with a key "
                    "from TOKEN_API_KEYS.",
                    client,
                    challenge,
                )
            return "api_key"
        if not settings.token_demo_mode:
            raise _refuse(
                metrics,
                Refusal.MISSING_KEY,
                status.HTTP_401_UNAUTHORIZED,
                "Missing API key: send `Authorization: Bearer <key>`.",
                client,
                challenge,
            )
        decision = limiter.acquire(client_key(client))
        if not decision.allowed:
            raise _refuse(
                metrics,
                Refusal.RATE_LIMITED,
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"Too many demo tokens from this address; retry in {decision.retry_after_s} s.",
                client,
                {"Retry-After": str(decision.retry_after_s)},
            )
        return "demo"

    refusals: dict[int | str, dict[str, Any]] = {
        401: {"model": Error, "description": "Missing or invalid API key."},
        403: {"model": Error, "description": "Origin not allowed, or a room chosen in demo mode."},
        429: {"model": Error, "description": "Demo rate limit exceeded; see Retry-After."},
        503: {"model": Error, "description": "Every agent is busy and the line is full."},
    }

    @app.post(TOKEN_PATH, response_model=TokenResponse, responses=refusals, tags=["tokens"])
    async def issue_token(
        request: Request,
        auth: Annotated[str, Depends(authorize)],
        body: TokenRequest | None = None,
    ) -> TokenResponse:
        """Mint a token for one room that also dispatches the agent."""
        body = body or TokenRequest()
        client = _client_ip(request)
        if auth == "demo" and body.room is not None:
            # Anonymous callers choosing room names could walk into each other's rooms.
            raise _refuse(
                metrics,
                Refusal.ROOM_NOT_ALLOWED,
                status.HTTP_403_FORBIDDEN,
                "Demo tokens always open a fresh random room; choosing `room` needs an API key.",
                client,
            )
        try:
            asked = SelectionRequest(
                character=body.character,
                voice=body.voice,
                language=body.language,
                subject=body.subject,
                level=body.level,
            )
            selection = resolve(catalog, asked, strict)
        except SelectionError as exc:
            raise RequestValidationError(
                [{"loc": ("body", exc.field), "msg": exc.message, "type": "catalog"}]
            ) from None

        if settings.token_dispatcher_url and settings.token_max_line is not None:
            waiting = await waiting_rooms(settings.token_dispatcher_url)
            if waiting is not None and waiting >= settings.token_max_line:
                raise _refuse(
                    metrics,
                    Refusal.LINE_FULL,
                    status.HTTP_503_SERVICE_UNAVAILABLE,
                    f"Every tutor is busy and {waiting} people are waiting; "
                    f"try again in {settings.token_line_retry_after_s} s.",
                    client,
                    {"Retry-After": str(settings.token_line_retry_after_s)},
                )

        issued = mint_token(
            api_key=api_key,
            api_secret=api_secret,
            room=body.room or random_name("room"),
            identity=body.identity or random_name("user"),
            name=body.name,
            ttl_s=settings.token_ttl_s,
            agent_name=settings.livekit_agent_name,
            selection=selection,
        )
        metrics.issued.labels(auth=auth, character=selection.character).inc()
        logger.info(
            "token issued: auth=%s client=%s room=%s identity=%s character=%s ttl=%ss",
            auth,
            client,
            issued.room,
            issued.identity,
            selection.character,
            settings.token_ttl_s,
        )
        return TokenResponse(
            server_url=settings.livekit_url,
            token=issued.token,
            room=issued.room,
            identity=issued.identity,
            expires_at=issued.expires_at,
        )

    characters = CharactersResponse(
        default=catalog.default,
        characters=[
            CharacterInfo(
                id=c.id,
                name=c.name,
                description=c.description,
                language=c.language,
                languages=list(c.languages),
                voice=c.voice,
                takes_subject=c.takes_subject,
                subjects=list(c.subjects),
                levels=list(c.levels),
                mode=c.mode,
            )
            for c in catalog.characters
        ],
    )

    @app.get("/v1/characters", response_model=CharactersResponse, tags=["tokens"])
    async def list_characters(response: Response) -> CharactersResponse:
        """The characters a page may offer (the agent's prompts are not exposed)."""
        response.headers["Cache-Control"] = "public, max-age=60"
        return characters

    @app.get("/healthz", response_model=Health, tags=["ops"])
    async def healthz() -> Health:
        return Health()

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        tags=["ops"],
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/widget/demo.html")

    app.mount("/widget", WidgetFiles(directory=static_dir, check_dir=False), name="widget")
    return app
