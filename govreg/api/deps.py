"""What every router of the API shares: the context and the caller as dependencies,
the path parameter types, and :class:`Endpoints`, which registers each route with
the action it needs (and the setting that caps its body, where that is not
``max_json_bytes``) on the route itself. The gate, the authorisation matrix in the
docs and the tests read that table from the routes the app mounts
(:func:`endpoints` over ``govreg.api.app.mounted_routes()``), so a route that is
not mounted is in no table and one that is mounted is in all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from govreg.api.auth import OidcVerifier, authenticate
from govreg.api.gate import ADMITTED, PRINCIPAL
from govreg.api.problems import responses
from govreg.context import Context
from registry.roles import Action
from registry.services import NAME_RE, Principal

F = TypeVar("F", bound=Callable[..., Any])
PREFIX = "/v1"
# keys of a route's openapi_extra: the action it needs, the setting capping its body
ACTION = "x-govreg-action"
BODY_LIMIT = "x-govreg-body-limit"
POLICY_ID = r"^[a-z][a-z0-9_\-]{0,99}"  # as policies.schema.Policy.id
AUTH = responses(401, 403)


def get_context(request: Request) -> Context:
    ctx: Context = request.app.state.context
    return ctx


Ctx = Annotated[Context, Depends(get_context)]


def current_principal(
    request: Request, ctx: Ctx, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    """The principal the gate admitted; authenticated here only where no gate ran."""
    admitted: Principal | None = getattr(request.state, PRINCIPAL, None)
    if admitted is not None:
        return admitted
    oidc: OidcVerifier = request.app.state.oidc
    return authenticate(ctx.registry, oidc, authorization, request.app.state.principals)


Caller = Annotated[Principal, Depends(current_principal)]
# Path parameters say in the document what the service accepts: names as the
# registry allows them, versions as positive 32-bit integers.
Model = Annotated[str, PathParam(pattern=NAME_RE.pattern, description="model name")]
VersionNo = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
PolicyRef = Annotated[
    str, PathParam(pattern=POLICY_ID + r"(@[1-9][0-9]{0,8})?$", description="id or id@version")
]
AdoptRef = Annotated[
    str, PathParam(pattern=POLICY_ID + r"@[1-9][0-9]{0,8}$", description="id@version")
]


def _permit(action: Action) -> Callable[..., None]:
    def permit(request: Request, ctx: Ctx, caller: Caller) -> None:
        if getattr(request.state, ADMITTED, None) is action:
            return  # the gate authorised it before the body was read (a 403 is recorded once)
        ctx.registry.authorize(caller, action)

    return permit


class Endpoints:
    """A router whose every route names the action it needs: ``@api(method, path,
    action)`` registers a handler."""

    def __init__(self) -> None:
        self.router = APIRouter(prefix=PREFIX)

    def __call__(
        self,
        method: str,
        path: str,
        action: Action,
        *,
        errors: tuple[int, ...] = (),
        status_code: int = 200,
        success: dict[int | str, dict[str, Any]] | None = None,
        body_limit: str | None = None,
    ) -> Callable[[F], F]:
        extra: dict[str, Any] = {ACTION: action.value}
        if body_limit is not None:
            extra[BODY_LIMIT] = body_limit

        def decorate(function: F) -> F:
            self.router.add_api_route(
                path,
                function,
                methods=[method],
                status_code=status_code,
                dependencies=[Depends(_permit(action))],
                responses={**(success or {}), **AUTH, **responses(*errors)},
                response_class=Response if success else JSONResponse,
                openapi_extra=extra,
            )
            return function

        return decorate


@dataclass(frozen=True)
class Endpoint:
    """One mounted route: its method, its path as the OpenAPI document writes it
    (no converters), the action it needs and the setting capping its body."""

    method: str
    path: str
    action: Action
    body_limit: str | None


def endpoints(routes: Iterable[Any]) -> Iterator[Endpoint]:
    """The endpoints among ``routes`` (a router's), in their order."""
    from fastapi.routing import APIRoute

    for route in routes:
        if isinstance(route, APIRoute) and route.openapi_extra and ACTION in route.openapi_extra:
            for method in sorted(route.methods or ()):
                yield Endpoint(
                    method,
                    route.path_format,
                    Action(route.openapi_extra[ACTION]),
                    route.openapi_extra.get(BODY_LIMIT),
                )
