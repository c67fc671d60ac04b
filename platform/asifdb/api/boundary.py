"""The API's front door, before any route runs: the key is checked from the header, rate limits
are applied, and the body is held to its route's byte limit while it streams.

A request without a valid key is answered from its request line and headers alone: no byte of
its body is parsed (uvicorn buffers at most 64 KiB of it before it stops reading the socket).
Counters live in `API_RATE_LIMIT_STORAGE`: memory (one process) or Redis (several).
"""

import math
import time
from dataclasses import dataclass

import anyio
from limits import RateLimitItem, parse, storage, strategies
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asifdb.context import Platform
from asifdb.errors import AsifdbError
from asifdb.limits import RequestLimits
from asifdb.services import keys
from asifdb.services.keys import Principal
from asifdb.settings import Settings

# Open without a key (each answers only what is public). Everything else needs one.
PUBLIC_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


class BodyTooLarge(HTTPException):
    """Raised from `receive` past the route's limit; Starlette's type, so FastAPI's body parsing
    lets it through to the 413 handler instead of calling it a malformed body."""

    def __init__(self, limit: int, setting: str) -> None:
        super().__init__(
            status_code=413,
            detail=f"the request body is over {limit} bytes, this route's limit ({setting})",
            headers={"Connection": "close"},
        )


@dataclass(frozen=True)
class _Rule:
    item: RateLimitItem
    setting: str


class RateLimits:
    """Moving-window limits per key, per address for failed keys and for keyless requests."""

    def __init__(self, settings: Settings) -> None:
        self._window = strategies.MovingWindowRateLimiter(
            storage.storage_from_string(settings.api_rate_limit_storage)
        )
        self.per_key = _Rule(parse(settings.api_rate_limit), "API_RATE_LIMIT")
        self.auth_failures = _Rule(parse(settings.api_auth_failure_limit), "API_AUTH_FAILURE_LIMIT")
        self.anonymous = _Rule(parse(settings.api_anonymous_rate_limit), "API_ANONYMOUS_RATE_LIMIT")

    def hit(self, rule: _Rule, *who: str) -> JSONResponse | None:
        """Count one request; a 429 with Retry-After if it is over the limit."""
        if self._window.hit(rule.item, rule.setting, *who):
            return None
        return self.refusal(rule, *who)

    def exhausted(self, rule: _Rule, *who: str) -> JSONResponse | None:
        """A 429 if `who` has no request left under `rule` (counting nothing)."""
        if self._window.test(rule.item, rule.setting, *who):
            return None
        return self.refusal(rule, *who)

    def refusal(self, rule: _Rule, *who: str) -> JSONResponse:
        reset = self._window.get_window_stats(rule.item, rule.setting, *who).reset_time
        wait = max(1, math.ceil(reset - time.time()))
        detail = f"too many requests: at most {rule.item} ({rule.setting}), retry in {wait} s"
        return JSONResponse(
            {"detail": detail},
            status_code=429,
            headers={"Retry-After": str(wait)},
        )


class Boundary:
    """ASGI middleware: authenticate, rate-limit and cap the body, in that order."""

    def __init__(self, app: ASGIApp, *, platform: Platform, limits: RequestLimits) -> None:
        self.app = app
        self.platform = platform
        self.limits = limits
        self.rates = RateLimits(platform.settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = headers.get("x-api-key")
        address = scope["client"][0] if scope.get("client") else "unknown"
        principal: Principal | None = None
        if key or scope["path"] not in PUBLIC_PATHS:
            refusal, principal = await self._authenticate(key, address)
            if principal is not None:
                scope.setdefault("state", {})["principal"] = principal
                refusal = self.rates.hit(self.rates.per_key, "key", str(principal.key_id))
        else:
            refusal = self.rates.hit(self.rates.anonymous, address)
        if principal is None:
            limit, setting = 0, "a valid X-API-Key"
        else:
            limit, setting = self.limits.body_bytes(scope["method"], scope["path"])
        declared = _content_length(headers)
        if refusal is None and declared is not None and declared > limit:
            refusal = _too_large(BodyTooLarge(limit, setting))
        if refusal is not None:
            if declared or "transfer-encoding" in headers:  # a body we will not read
                refusal.headers["Connection"] = "close"
            await refusal(scope, receive, send)
            return
        await self._pass(scope, receive, send, limit, setting)

    async def _authenticate(
        self, key: str | None, address: str
    ) -> tuple[JSONResponse | None, Principal | None]:
        # Checked before the key is looked up: past the limit, a right key is refused too,
        # so guessing keys teaches nothing.
        refusal = self.rates.exhausted(self.rates.auth_failures, address)
        if refusal is not None:
            return refusal, None
        try:
            return None, await anyio.to_thread.run_sync(self._lookup, key)
        except AsifdbError as exc:
            if exc.http_status == 401:
                self.rates.hit(self.rates.auth_failures, address)
            return JSONResponse({"detail": str(exc)}, status_code=exc.http_status), None

    def _lookup(self, key: str | None) -> Principal:
        with self.platform.sessions() as session:
            return keys.authenticate(session, key=key)

    async def _pass(
        self, scope: Scope, receive: Receive, send: Send, limit: int, setting: str
    ) -> None:
        read = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:
                    raise BodyTooLarge(limit, setting)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge as exc:  # read outside FastAPI's body parsing
            if started:
                raise
            await _too_large(exc)(scope, receive, send)


def _too_large(exc: BodyTooLarge) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=413, headers=exc.headers)


def _content_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None
