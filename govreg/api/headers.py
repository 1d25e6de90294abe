"""Security headers on every response, errors and the server's own 500s included.

The API answers JSON (and PDF or zip downloads) that no browser should run,
frame or cache: ``Content-Security-Policy: default-src 'none'; frame-ancestors
'none'``, ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
no-referrer``, and under ``/v1`` ``Cache-Control: no-store`` (a new API key,
decrypted audit events and reports must not stay in a browser's or proxy's
cache). Only the interactive documentation pages (``/docs``, ``/redoc``) get
a policy that lets them load Swagger UI or ReDoc from their CDN and run their
inline start-up script; they show the OpenAPI document and nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_POLICY = "default-src 'none'; frame-ancestors 'none'"
DOCS_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; img-src data: https://fastapi.tiangolo.com "
    "https://cdn.redoc.ly; connect-src 'self'; worker-src blob:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
_COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
_SET = frozenset({b"x-content-type-options", b"referrer-policy", b"content-security-policy"})


class SecurityHeaders:
    """ASGI middleware; wraps the whole stack (see :func:`install`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        policy = DOCS_POLICY if path in DOCS_PATHS else API_POLICY
        extra = [*_COMMON, (b"content-security-policy", policy.encode())]
        no_store = path.startswith("/v1/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _SET]
                headers += extra
                if no_store and not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app: FastAPI) -> None:
    """Put :class:`SecurityHeaders` outside Starlette's error middleware, so that
    an unhandled error's 500 carries the headers too."""
    build = app.build_middleware_stack

    def build_with_headers() -> ASGIApp:
        return SecurityHeaders(build())

    # Starlette builds its stack once, on the first request, through this method
    app.build_middleware_stack = build_with_headers  # type: ignore[method-assign]
