"""The FastAPI application factory; the lifespan owns the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

if TYPE_CHECKING:
    from govreg.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    from govreg.api import problems
    from govreg.api.auth import OidcVerifier
    from govreg.api.routes import router
    from govreg.context import build
    from govreg.settings import Settings

    config = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.context = build(config)
        app.state.oidc = OidcVerifier(config)
        try:
            yield
        finally:
            app.state.context.close()

    app = FastAPI(
        title="govreg",
        version="1",
        summary="Governance-first model registry: gates, sign-offs, tamper-evident audit.",
        lifespan=lifespan,
    )
    problems.install(app)
    app.include_router(router)

    @app.get("/v1/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = problems.document(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (each worker builds its own)."""
    return create_app()
