"""OpenID Connect bearer tokens against a real server with a JWKS file."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from api_server import Server, start_server, stop
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://idp.example.test"
AUDIENCE = "govreg"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def oidc_server(sqlite_home: Any, signing_key: rsa.RSAPrivateKey) -> Iterator[Server]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
    jwks = sqlite_home.path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    server = start_server(
        sqlite_home,
        env={
            "GOVREG_OIDC_ISSUER": ISSUER,
            "GOVREG_OIDC_AUDIENCE": AUDIENCE,
            "GOVREG_OIDC_JWKS": str(jwks),
        },
    )
    yield server
    stop(server)


def _token(key: Any, algorithm: str = "RS256", **overrides: Any) -> str:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-123",
        "exp": int(time.time()) + 300,
        "govreg_role": "auditor",
        **overrides,
    }
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": "k1"})


def _get(server: Server, token: str) -> httpx.Response:
    with server.client(token=token) as client:
        return client.get("/v1/versions")


def test_valid_token_is_accepted_with_its_role(oidc_server: Server, signing_key: Any) -> None:
    response = _get(oidc_server, _token(signing_key))
    assert response.status_code == 200
    assert response.json() == []
    with oidc_server.client(token=_token(signing_key)) as client:
        refused = client.get("/v1/principals")
    assert refused.status_code == 403
    assert refused.json()["detail"] == "'oidc:user-123' (auditor) may not manage principals"


@pytest.mark.parametrize(
    ("overrides", "detail"),
    [
        ({"aud": "someone-else"}, "bearer token refused: Audience doesn't match"),
        ({"iss": "https://evil.test"}, "bearer token refused: Invalid issuer"),
        ({"exp": int(time.time()) - 60}, "bearer token refused: Signature has expired"),
        ({"exp": None}, 'bearer token refused: Token is missing the "exp" claim'),
        (
            {"govreg_role": "superuser"},
            "bearer token has no valid 'govreg_role' claim (got 'superuser')",
        ),
    ],
)
def test_bad_claims_are_refused(
    oidc_server: Server, signing_key: Any, overrides: dict[str, Any], detail: str
) -> None:
    response = _get(oidc_server, _token(signing_key, **overrides))
    assert response.status_code == 401
    assert response.json()["detail"] == detail


def test_claims_of_another_json_type_are_refused_by_name(
    oidc_server: Server, signing_key: Any
) -> None:
    """A role claim that is a list (it was a 500), an object, a number, missing or
    long: a 401 naming the claim, its value quoted short."""
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"govreg_role": ["admin", "auditor"]},
            "bearer token has no valid 'govreg_role' claim (got a JSON array)",
        ),
        (
            {"govreg_role": {"admin": True}},
            "bearer token has no valid 'govreg_role' claim (got a JSON object)",
        ),
        ({"govreg_role": 7}, "bearer token has no valid 'govreg_role' claim (got a JSON number)"),
        (
            {"govreg_role": None},
            "bearer token has no valid 'govreg_role' claim (got no such claim)",
        ),
        (
            {"govreg_role": "auditor\n" + "x" * 100},
            f"bearer token has no valid 'govreg_role' claim (got 'auditor\\n{'x' * 28}...')",
        ),
        ({"sub": ["user-123"]}, "bearer token refused: Subject must be a string"),
    ]
    for overrides, detail in cases:
        response = _get(oidc_server, _token(signing_key, **overrides))
        assert response.status_code == 401, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"] == detail


def test_alg_none_and_algorithm_confusion_are_refused(
    oidc_server: Server, signing_key: Any
) -> None:
    unsigned = jwt.encode(
        {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "x",
            "exp": int(time.time()) + 60,
            "govreg_role": "admin",
        },
        None,
        algorithm="none",
    )
    response = _get(oidc_server, unsigned)
    assert response.status_code == 401
    assert response.json()["detail"] == (
        "bearer token algorithm 'none' is not accepted (accepted: RS256, ES256, EdDSA)"
    )
    public_pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT","kid":"k1"}')
    body = jwt.utils.base64url_encode(
        json.dumps(
            {
                "iss": ISSUER,
                "aud": AUDIENCE,
                "sub": "x",
                "exp": int(time.time()) + 60,
                "govreg_role": "admin",
            }
        ).encode()
    )
    import hashlib
    import hmac

    signature = jwt.utils.base64url_encode(
        hmac.new(public_pem, header + b"." + body, hashlib.sha256).digest()
    )
    forged = (header + b"." + body + b"." + signature).decode()
    response = _get(oidc_server, forged)
    assert response.status_code == 401
    assert response.json()["detail"] == (
        "bearer token algorithm 'HS256' is not accepted (accepted: RS256, ES256, EdDSA)"
    )


def test_token_signed_by_another_key_is_refused(oidc_server: Server) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = _get(oidc_server, _token(other))
    assert response.status_code == 401
    assert response.json()["detail"] == "bearer token refused: Signature verification failed"
