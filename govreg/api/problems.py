"""Errors as RFC 9457 problem documents (``application/problem+json``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from core.errors import (
    AuthError,
    ConfigError,
    GovregError,
    InputError,
    IntegrityError,
    NotFoundError,
    PermissionDenied,
    TransitionError,
)
from serving.errors import LoadRefused as ModelNotServable

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

PROBLEM_TYPE = "https://govreg.dev/problems/"
STATUS: list[tuple[type[GovregError], int, str]] = [
    (AuthError, 401, "unauthenticated"),
    (PermissionDenied, 403, "forbidden"),
    (NotFoundError, 404, "not-found"),
    (TransitionError, 409, "transition-not-allowed"),
    (InputError, 422, "invalid-input"),
    (ModelNotServable, 409, "model-not-servable"),
    (IntegrityError, 409, "integrity-failure"),
    (ConfigError, 500, "server-configuration"),
]


class Problem(BaseModel):
    """RFC 9457 problem details; ``detail`` says what to fix."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


def status_of(exc: GovregError) -> tuple[int, str]:
    for cls, status, slug in STATUS:
        if isinstance(exc, cls):
            return status, slug
    if type(exc).__name__ == "PolicyError":
        return 422, "invalid-policy"
    return 400, "bad-request"


def problem(status: int, slug: str, detail: str, **extra: Any) -> JSONResponse:
    from fastapi.responses import JSONResponse

    body = Problem(
        type=PROBLEM_TYPE + slug,
        title=slug.replace("-", " "),
        status=status,
        detail=detail,
        **extra,
    ).model_dump(exclude_none=True)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


def install(app: FastAPI) -> None:
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    async def govreg_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GovregError)
        status, slug = status_of(exc)
        return problem(status, slug, exc.diagnostics())

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {
                "field": ".".join(str(p) for p in err["loc"][1:]) or str(err["loc"][0]),
                "message": err["msg"],
            }
            for err in exc.errors()
        ]
        first = errors[0] if errors else {"field": "?", "message": "invalid"}
        detail = f"{first['field']}: {first['message']}"
        return problem(422, "invalid-input", detail, errors=errors)

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return problem(exc.status_code, "http-" + str(exc.status_code), str(exc.detail))

    app.add_exception_handler(GovregError, govreg_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem documents an endpoint can return."""
    described = {
        401: "missing, unknown, revoked or expired credential",
        403: "the principal's role may not do this, or segregation of duties refuses it",
        404: "unknown model, version, principal or policy",
        409: "the lifecycle does not allow this transition now",
        413: "upload larger than the configured limit",
        422: "invalid input; `detail` names the field and what to fix",
    }
    return {
        code: {
            "model": Problem,
            "description": described[code],
            "content": {"application/problem+json": {}},
        }
        for code in codes
    }
