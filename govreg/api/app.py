"""The FastAPI application factory; the lifespan owns the engine."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

if TYPE_CHECKING:
    from govreg.api.deps import Endpoints
    from govreg.settings import Settings


def routers() -> tuple[Endpoints, ...]:
    """The routers :func:`create_app` mounts, in order: governance, then serving."""
    from govreg.api import routes, serving_routes

    return (routes.api, serving_routes.api)


def mounted_routes() -> list[Any]:
    """Every route of :func:`routers`: what the gate admits and the table lists."""
    return [route for api in routers() for route in api.router.routes]


def create_app(settings: Settings | None = None) -> FastAPI:
    from govreg.api import gate, headers, problems
    from govreg.api.auth import OidcVerifier
    from govreg.context import build
    from govreg.settings import load_settings

    config = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from audits.signing import SIGNING_KEY_FILE, load_public_key
        from core.clock import utcnow
        from govreg.api.auth import PrincipalCache
        from govreg.api.denials import DenialFlusher
        from serving.decisions import ANCHOR_FOLDER, DecisionLog
        from serving.live import LiveModels
        from serving.loader import ServingConfig

        context = build(config)
        app.state.context = context
        app.state.oidc = OidcVerifier(config)
        live = LiveModels(
            context.registry,
            ServingConfig(
                public_key=load_public_key(config.serving_public_key_path),
                max_artifact_bytes=config.max_artifact_bytes,
                actor="govreg-serve",
            ),
            poll_interval=config.serving_poll_seconds,
        )
        app.state.live = live
        app.state.principals = PrincipalCache(lambda: live.head, utcnow)
        app.state.decisions = DecisionLog(
            context.engine,
            context.ledger.keyring,
            config.keys_path / SIGNING_KEY_FILE,
            anchor_dir=config.anchors_path / ANCHOR_FOLDER,
        )
        app.state.exports = threading.BoundedSemaphore(config.max_concurrent_exports)
        flusher = DenialFlusher(context.registry, config.denial_interval_seconds)
        live.start()
        flusher.start()
        try:
            yield
        finally:
            live.stop()
            flusher.stop()  # a clean shutdown leaves no counted refusal out of the ledger
            app.state.decisions.close()  # a clean shutdown loses no decision
            context.close()

    app = FastAPI(
        title="govreg",
        version="1",
        summary="Governance-first model registry: gates, sign-offs, tamper-evident audit.",
        lifespan=lifespan,
    )
    problems.install(app)
    headers.install(app)
    for api in routers():
        app.include_router(api.router)
    gate.install(app, config, mounted_routes())

    @app.get("/v1/health", tags=["health"])
    def health(request: Request) -> Any:
        """200 while the ledger is whole; 503 naming the problem when its signer
        refused or its events and latest checkpoint disagree."""
        context = request.app.state.context
        with context.registry.reading() as conn:
            problem = context.ledger.health(conn)
        if problem is None:
            return {"status": "ok"}
        return JSONResponse({"status": "unhealthy", "problem": problem}, status_code=503)

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


def authorization_markdown() -> str:
    """The authorisation matrix of the app's endpoints as a Markdown table (docs/api.md
    shows it)."""
    from govreg.api.deps import endpoints
    from registry.roles import PERMISSIONS, Role

    roles = [r.value for r in Role]
    lines = [
        "| endpoint | action | " + " | ".join(roles) + " |",
        "|---|---|" + "---|" * len(roles),
    ]
    for e in endpoints(mounted_routes()):
        cells = ["allow" if role in PERMISSIONS[e.action] else "deny" for role in roles]
        lines.append(f"| `{e.method} {e.path}` | {e.action.value} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
