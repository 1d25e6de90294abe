"""Who may send a body, and how big: checked before a route reads one byte of it.

FastAPI parses a route's form or JSON body before its dependencies run, so
the credential and permission checks in the routes' dependencies came after
the work: a multipart upload without credentials was spooled to disk, and a
large JSON body parsed, before the 401. :class:`Gate` is a pure ASGI
middleware in front of the routes. For a request that names an endpoint
(method and path, matched by the router itself) it

1. authenticates the ``Authorization`` header (the same :func:`authenticate`
   with the worker's :class:`PrincipalCache`) and authorises the endpoint's
   action (``registry.authorize``, which counts a 403 once); a credential
   the server does not know is counted against the caller's address; a
   refusal is the same problem document the routes send (429 with
   ``Retry-After`` past the refusal limit, see :mod:`registry.denials`), and
   the body is never read;
2. refuses a ``Content-Length`` over the endpoint's limit at once (413);
3. counts the body as it arrives and stops at the limit (413): nothing past
   the limit reaches the route, so nothing past it is parsed or spooled.

The principal it admitted is left in ``scope["state"]``; the routes'
dependencies take it from there instead of authenticating again. Requests
that name no endpoint (health, the OpenAPI document, a 404 or a 405) read no
body; theirs is capped at the JSON limit all the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from starlette.exceptions import HTTPException

from core.errors import AuthError, GovregError

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.routing import BaseRoute
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from govreg.settings import Settings
    from registry.roles import Action
    from registry.services import Principal

# keys in scope["state"] (request.state) that the routes' dependencies read
PRINCIPAL = "govreg_principal"
SUBJECT = "govreg_subject"  # (model, version) the request's path names
ADMITTED = "govreg_admitted_action"
# the setting that limits a body where an endpoint names none
DEFAULT_LIMIT = "max_json_bytes"


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body passes its limit; a 413 problem document."""

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=413, detail=detail)


def limit_name(setting: str) -> str:
    """The environment variable an operator sets to change ``setting``."""
    return "GOVREG_" + setting.upper()


class Gate:
    """ASGI middleware; see the module's docstring. ``routes`` are the endpoints'
    routes (matched as the router matches them), ``actions`` maps each endpoint's
    (method, path) to its action, ``limits`` to the name of the :class:`Settings`
    field that caps its body (default: ``max_json_bytes``)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings,
        routes: Sequence[BaseRoute],
        actions: Mapping[tuple[str, str], Action],
        limits: Mapping[tuple[str, str], str],
    ) -> None:
        self.app = app
        self.settings = settings
        self.routes = list(routes)
        self.actions = dict(actions)
        self.limits = dict(limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = _endpoint(self.routes, scope)
        action = self.actions.get(endpoint) if endpoint else None
        if action is not None:
            refusal = await _admit(scope, action)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        setting = self.limits.get(endpoint, DEFAULT_LIMIT) if endpoint else DEFAULT_LIMIT
        limit: int = getattr(self.settings, setting)
        length = _content_length(scope)
        if length is not None and length > limit:
            await _too_large(
                f"request body of {length} bytes is over this endpoint's limit of {limit} "
                f"bytes ({limit_name(setting)})"
            )(scope, receive, send)
            return
        await _capped(self.app, limit, setting)(scope, receive, send)


def _endpoint(routes: Sequence[BaseRoute], scope: Scope) -> tuple[str, str] | None:
    """(method, path as the endpoint table writes it) of the endpoint the request
    names; its path parameters are left in ``scope["path_params"]``."""
    from starlette.routing import Match

    for route in routes:
        match, child = route.matches(scope)
        if match == Match.FULL:
            path_format: str | None = getattr(route, "path_format", None)
            if not path_format:
                return None
            scope.setdefault("state", {})[SUBJECT] = _subject(child.get("path_params", {}))
            return (scope["method"], path_format)
    return None


def _subject(params: Mapping[str, Any]) -> tuple[Any, Any]:
    """The model and version a request's path names (what a refusal is about; the
    registry records them only where they are a valid name and version)."""
    return params.get("model"), params.get("version")


async def _admit(scope: Scope, action: Action) -> Any:
    """None once the caller is authenticated and authorised (the principal is then
    in ``scope["state"]``); else the problem response to send."""
    from starlette.concurrency import run_in_threadpool
    from starlette.datastructures import Headers

    from govreg.api.problems import for_error

    state = scope["app"].state
    authorization = Headers(scope=scope).get("authorization")
    try:
        # the registry reads the database: off the event loop, as the routes' dependencies were
        subject = scope.get("state", {}).get(SUBJECT, (None, None))
        principal = await run_in_threadpool(
            _authorised, state, authorization, action, _address(scope), subject
        )
    except GovregError as exc:
        return for_error(exc)
    request_state = scope.setdefault("state", {})
    request_state[PRINCIPAL] = principal
    request_state[ADMITTED] = action
    return None


def _authorised(
    state: Any,
    authorization: str | None,
    action: Action,
    address: str,
    subject: tuple[Any, Any],
) -> Principal:
    from govreg.api.auth import authenticate

    registry = state.context.registry
    try:
        principal = authenticate(registry, state.oidc, authorization, state.principals)
    except AuthError as exc:
        # a revoked or expired key was counted as its principal's; any other
        # credential failure is counted against the caller's address
        raise registry.count_unauthenticated(address, exc) from None
    model, version = subject
    # a refusal is counted here, once, about the model and version the path names
    registry.authorize(principal, action, model=model, version=version)
    return principal


def _address(scope: Scope) -> str:
    """The caller's address as the server saw it (behind a proxy: the proxy's)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:  # the server refuses such a request before it gets here
                return None
    return None


def _too_large(detail: str) -> Any:
    from govreg.api.problems import problem

    return problem(413, "http-413", detail)


def _capped(app: ASGIApp, limit: int, setting: str) -> ASGIApp:
    """``app`` with a ``receive`` that stops at ``limit`` body bytes (413)."""

    async def run(scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        refused: BodyTooLarge | None = None
        started = False

        async def receive_capped() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = BodyTooLarge(
                        f"request body is over this endpoint's limit of {limit} bytes "
                        f"({limit_name(setting)})"
                    )
                    raise refused
            return message

        async def send_tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                if refused is not None and message["status"] != 413:
                    # whatever the route made of the cut-off body, the answer is the 413
                    raise refused
                started = True
            await send(message)

        try:
            await app(scope, receive_capped, send_tracked)
        except BodyTooLarge as exc:
            if started:
                raise
            await _too_large(str(exc.detail))(scope, receive, send)

    return run


def install(app: FastAPI, settings: Settings, routes: Sequence[BaseRoute]) -> None:
    """Put :class:`Gate` in front of ``routes``, the endpoints' routes (call it last),
    with the action and body limit each route was registered with."""
    from govreg.api.deps import endpoints

    table = list(endpoints(routes))
    app.add_middleware(
        Gate,
        settings=settings,
        routes=routes,
        actions={(e.method, e.path): e.action for e in table},
        limits={(e.method, e.path): e.body_limit for e in table if e.body_limit},
    )
