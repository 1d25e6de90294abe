"""Who is calling: API keys and OpenID Connect bearer tokens.

``Authorization: Bearer grk_...`` is a govreg API key (checked by the
registry). Any other bearer token is a JWT, accepted only when an issuer is
configured: signature checked against the issuer's JWKS (file or URL) with
pinned algorithms (``none`` is never accepted), ``iss``, ``aud`` and ``exp``
required and checked, and the role taken from a configured claim.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.clock import parse
from core.errors import AuthError, ConfigError, quote
from registry.roles import Role
from registry.services import KEY_PREFIX, Principal

if TYPE_CHECKING:
    from govreg.settings import Settings
    from registry.services import Registry


class OidcVerifier:
    def __init__(self, settings: Settings) -> None:
        self.issuer = settings.oidc_issuer
        self.audience = settings.oidc_audience
        self.jwks_source = settings.oidc_jwks
        self.role_claim = settings.oidc_role_claim
        self.algorithms = [a.strip() for a in settings.oidc_algorithms.split(",") if a.strip()]
        if any(a.lower() == "none" for a in self.algorithms):
            raise ConfigError("GOVREG_OIDC_ALGORITHMS must not include 'none'")
        if self.issuer and not (self.audience and self.jwks_source):
            raise ConfigError("OIDC needs GOVREG_OIDC_AUDIENCE and GOVREG_OIDC_JWKS as well")

    @property
    def enabled(self) -> bool:
        return bool(self.issuer)

    @cached_property
    def _client(self) -> Any:
        import jwt

        assert self.jwks_source is not None
        if self.jwks_source.startswith("https://"):
            return jwt.PyJWKClient(self.jwks_source, cache_keys=True)
        data = json.loads(Path(self.jwks_source).read_text(encoding="utf-8"))
        return jwt.PyJWKSet.from_dict(data)

    def _key_for(self, token: str) -> Any:
        import jwt

        client = self._client
        if isinstance(client, jwt.PyJWKClient):
            return client.get_signing_key_from_jwt(token).key
        kid = jwt.get_unverified_header(token).get("kid")
        for key in client.keys:
            if kid is None or key.key_id == kid:
                return key.key
        raise AuthError("bearer token names a signing key the issuer does not publish")

    def principal(self, token: str) -> Principal:
        import jwt

        if not self.enabled:
            raise AuthError("bearer token is not a govreg API key and no OIDC issuer is set")
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in self.algorithms:
                raise AuthError(
                    f"bearer token algorithm {quote(header.get('alg'))} is not accepted "
                    f"(accepted: {', '.join(self.algorithms)})"
                )
            claims = jwt.decode(
                token,
                self._key_for(token),
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"bearer token refused: {exc}") from exc
        role = claims.get(self.role_claim)
        if not isinstance(role, str) or role not in set(Role):
            # one role name as a string; anything else (a list, say) is named, never crashes
            got = quote(role) if isinstance(role, str) else _json_kind(role)
            raise AuthError(f"bearer token has no valid '{self.role_claim}' claim (got {got})")
        person = f"oidc:{claims['sub']}"  # the identity provider vouches for the person
        return Principal(name=person, role=str(role), person=person)


class PrincipalCache:
    """API keys this worker has already authenticated, while the ledger head stands still.

    A principal's key can change only through a ledger event (creation,
    revocation), and every ledger event moves the head. The serving poller
    reads the head every ``GOVREG_SERVING_POLL_SECONDS``; the cache holds an
    entry only for the head it was made at, so a revocation is honoured by
    every worker within that interval. Expiry is checked on every request.
    Refusals are never cached (each is counted, see :mod:`registry.denials`).
    """

    def __init__(self, head: Callable[[], int], clock: Callable[[], datetime]) -> None:
        self._head = head
        self._clock = clock
        self._entries: dict[bytes, tuple[int, Principal]] = {}

    def head(self) -> int:
        return self._head()

    def get(self, credential: str) -> Principal | None:
        found = self._entries.get(_digest(credential))
        if found is None:
            return None
        head, principal = found
        if head != self._head():
            return None
        if principal.expires_at and parse(principal.expires_at) <= self._clock():
            return None  # authenticate again: the refusal is counted there
        return principal

    def put(self, credential: str, principal: Principal, head: int) -> None:
        if len(self._entries) >= 10_000:
            self._entries.clear()
        self._entries[_digest(credential)] = (head, principal)


def _json_kind(value: Any) -> str:
    if value is None:
        return "no such claim"
    kinds = {list: "array", dict: "object", bool: "boolean", int: "number", float: "number"}
    return "a JSON " + kinds.get(type(value), "value")


def _digest(credential: str) -> bytes:
    return hashlib.sha256(credential.encode()).digest()


def authenticate(
    registry: Registry,
    oidc: OidcVerifier,
    authorization: str | None,
    cache: PrincipalCache | None = None,
) -> Principal:
    if not authorization:
        raise AuthError("no credentials: send 'Authorization: Bearer <API key or token>'")
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise AuthError("use 'Authorization: Bearer <API key or token>'")
    credential = credential.strip()
    if credential.startswith(KEY_PREFIX + "_"):
        if cache is None:
            return registry.authenticate(credential)
        cached = cache.get(credential)
        if cached is not None:
            return cached
        head = cache.head()  # read before the lookup: a later revocation invalidates it
        principal = registry.authenticate(credential)
        cache.put(credential, principal, head)
        return principal
    return oidc.principal(credential)
