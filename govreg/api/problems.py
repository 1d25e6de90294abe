"""Errors as RFC 9457 problem documents (``application/problem+json``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

import audits.merkle
import policies.schema
import serving.errors
from core.errors import (
    PROBLEM_BASE,
    ConfigError,
    GovregError,
    TooManyRequests,
    error_classes,
    problem_types,
)
from registry.mlflow_source import redact

# the modules above define every error class that declares a problem type the
# server sends (tests/core/test_error_tree.py holds them to the whole tree)
_DECLARING = (audits.merkle, policies.schema, serving.errors)

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)

# what a caller reads of a ConfigError: its text is for the operator (it can name
# server paths, settings and the hosts of services the server uses), so it goes
# to the server's log, with any user:password@ of a URL removed
SERVER_CONFIGURATION_DETAIL = (
    "the server cannot do this because of its configuration or a service it uses "
    "(such as its MLflow tracking server); the server's log names the cause"
)
# (class, status, problem type) of every class that declares a problem type: a
# view of the classes' own ``http_status`` and ``problem_type``, for the docs' tests
STATUS: list[tuple[type[GovregError], int, str]] = [
    (cls, cls.http_status, cls.problem_type)
    for cls in error_classes()
    if "problem_type" in vars(cls) and problem_types()[cls.problem_type] is cls
]


class Problem(BaseModel):
    """RFC 9457 problem details; ``detail`` says what to fix."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


def status_of(exc: GovregError) -> tuple[int, str]:
    """The status and problem type the error's class declares."""
    return exc.http_status, exc.problem_type


def problem(
    status: int,
    slug: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    from fastapi.responses import JSONResponse

    body = Problem(
        type=PROBLEM_BASE + slug,
        title=slug.replace("-", " "),
        status=status,
        detail=detail,
        **extra,
    ).model_dump(exclude_none=True)
    headers = dict(headers or {})
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers or None
    )


def for_error(exc: GovregError) -> JSONResponse:
    """The problem document of a govreg error (the routes' handler and the gate send it).

    A :class:`ConfigError` is logged (logger ``govreg.api.problems``, level ERROR) and
    answered with :data:`SERVER_CONFIGURATION_DETAIL` only."""
    status, slug = status_of(exc)
    if isinstance(exc, ConfigError):
        log.error("server configuration: %s", redact(exc.diagnostics()))
        return problem(status, slug, SERVER_CONFIGURATION_DETAIL)
    # an error that names several fields lists them (serving's ApplicantsRefused)
    errors = getattr(exc, "errors", None)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
    return problem(
        status,
        slug,
        exc.diagnostics(),
        headers=headers,
        errors=errors if isinstance(errors, list) else None,
    )


def install(app: FastAPI) -> None:
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    async def govreg_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GovregError)
        return for_error(exc)

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

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # RFC 9110: a 405 lists every method the path allows, across all
            # the routes that share it (Starlette names only the first route's)
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return problem(
            exc.status_code, "http-" + str(exc.status_code), str(exc.detail), headers=headers
        )

    app.add_exception_handler(GovregError, govreg_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)


def _allowed_methods(request: Request) -> list[str]:
    from starlette.routing import Match, Route

    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match != Match.NONE:
                methods |= route.methods
    return sorted(methods)


def document(openapi: dict[str, Any]) -> dict[str, Any]:
    """Make the generated OpenAPI document say what the server sends on errors.

    FastAPI files every error model under ``application/json`` and adds its
    own 422 (``HTTPValidationError``); the server answers every error with a
    :class:`Problem` as ``application/problem+json``. Every operation with
    parameters or a body can answer 422, and one with a body 400 (a body that
    cannot be parsed) and 413 (a body over the endpoint's limit). Every operation
    can answer 429 with ``Retry-After`` (too many refused requests; the report and
    evidence downloads also when the worker is rendering its limit of them).
    """
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for path, operations in openapi.get("paths", {}).items():
        for operation in operations.values():
            answers = operation.setdefault("responses", {})
            if operation.get("requestBody"):
                for code in (400, 413):
                    answers.setdefault(str(code), {"description": _DESCRIBED[code]})
            if (operation.get("parameters") or operation.get("requestBody")) or "422" in answers:
                answers["422"] = {"description": _DESCRIBED[422]}
            if path != "/v1/health":  # the only operation that refuses nobody
                answers.setdefault("429", {"description": _DESCRIBED[429]})
                answers["429"]["headers"] = {"Retry-After": RETRY_AFTER}
            for code, answer in answers.items():
                if code.startswith(("4", "5")):
                    answer["content"] = {"application/problem+json": {"schema": problem_ref}}
    schemas = openapi.get("components", {}).get("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    return openapi


_DESCRIBED = {
    400: "the body could not be parsed (not JSON, or not multipart form data)",
    401: "missing, unknown, revoked or expired credential",
    403: "the principal's role may not do this, or segregation of duties refuses it",
    404: "unknown model, version, principal or policy",
    409: "the lifecycle does not allow this transition now",
    413: "body larger than the endpoint's limit (uploads: GOVREG_MAX_UPLOAD_BYTES; "
    "scoring: GOVREG_MAX_SCORE_BYTES; other JSON: GOVREG_MAX_JSON_BYTES)",
    422: "invalid input; `detail` names the field and what to fix",
    429: "too many refused requests from this principal or address (GOVREG_DENIAL_LIMIT "
    "per GOVREG_DENIAL_INTERVAL_SECONDS), or, for reports and evidence bundles, this "
    "worker is rendering GOVREG_MAX_CONCURRENT_EXPORTS already; nothing was done",
    503: "the decision log cannot take the decisions now (closed, too many waiting, its "
    "writer stopped); nothing was recorded",
}
RETRY_AFTER: dict[str, Any] = {
    "description": "seconds to wait before trying again",
    "schema": {"type": "integer", "minimum": 1},
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem documents an endpoint can return."""
    return {
        code: {
            "model": Problem,
            "description": _DESCRIBED[code],
            "content": {"application/problem+json": {}},
        }
        for code in codes
    }
