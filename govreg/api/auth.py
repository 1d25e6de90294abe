"""Who is calling: API keys and OpenID Connect bearer tokens.

``Authorization: Bearer grk_...`` is a govreg API key (checked by the
registry). Any other bearer token is a JWT, accepted only when an issuer is
configured: signature checked against the issuer's JWKS (file or URL) with
pinned algorithms (``none`` is never accepted), ``iss``, ``aud`` and ``exp``
required and checked, and the role taken from a configured claim.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import AuthError, ConfigError
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
                    f"bearer token algorithm {header.get('alg')!r} is not accepted "
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
        if role not in set(Role):
            raise AuthError(f"bearer token has no valid '{self.role_claim}' claim (got {role!r})")
        return Principal(name=f"oidc:{claims['sub']}", role=str(role))


def authenticate(registry: Registry, oidc: OidcVerifier, authorization: str | None) -> Principal:
    if not authorization:
        raise AuthError("no credentials: send 'Authorization: Bearer <API key or token>'")
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise AuthError("use 'Authorization: Bearer <API key or token>'")
    credential = credential.strip()
    if credential.startswith(KEY_PREFIX + "_"):
        return registry.authenticate(credential)
    return oidc.principal(credential)
