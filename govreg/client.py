"""The CLI against a running server: ``GOVREG_URL`` plus the API key.

:class:`RemoteRegistry` has the methods of :class:`registry.services.Registry`
that the CLI calls, implemented over the HTTP API, so the CLI gives the same
commands and output either way while every rule is enforced by the one
service layer behind the server. Problem documents come back as the same
:class:`core.errors.GovregError` subclasses the local path raises, told by
the problem's ``type`` (the status alone is ambiguous: 409 is a refused
transition or an integrity failure), so the CLI exits with the same code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import audits.merkle
import serving.errors
from audits.events import Event
from audits.verify import VerifyReport
from core.errors import (
    AuthError,
    ConfigError,
    DeadlineExceeded,
    GovregError,
    InputError,
    IntegrityError,
    error_for_problem,
    error_from_response,
    problem_types,
)
from policies.schema import PolicyError
from registry.interfaces import Download
from registry.lifecycle import Status
from registry.services import Principal

if TYPE_CHECKING:
    import httpx
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from audits.verify import Workers
    from policies.schema import Policy

# problem type -> the error the client raises for it: the class that declares
# the type, or its ancestor of the same exit code that takes a message
# (core.errors.error_for_problem; the modules imported above define every class
# declaring a type the server sends)
PROBLEMS: dict[str, type[GovregError]] = {
    slug: error_for_problem(slug, 0) for slug in problem_types()
}
_DECLARING = (audits.merkle, serving.errors, PolicyError)


class RemoteRegistry:
    def __init__(
        self, url: str, api_key: str | None, *, timeout: float = 120, wait_seconds: float = 3600
    ) -> None:
        import httpx

        if not api_key:
            raise AuthError("no API key: pass --api-key or set GOVREG_API_KEY")
        self.wait_seconds = wait_seconds
        self.client = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self.client.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        try:
            response = self.client.request(method, "/v1" + path, **kwargs)
        except httpx.HTTPError as exc:
            raise ConfigError(
                f"cannot reach the govreg server at {self.client.base_url}: {exc}"
            ) from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._call(method, path, **kwargs).json()

    # -- principals ---------------------------------------------------------------
    def create_person(self, actor: Principal, person_id: str, *, display: str) -> dict[str, Any]:
        made: dict[str, Any] = self._json(
            "POST", "/persons", json={"id": person_id, "display": display}
        )
        return made

    def list_persons(self, actor: Principal) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._json("GET", "/persons")
        return found

    def create_principal(
        self,
        actor: Principal,
        name: str,
        role: str,
        *,
        person: str | None = None,
        models: Sequence[str] | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[Principal, str]:
        body: dict[str, Any] = {"name": name, "role": role, "person": person or name}
        if models is not None:
            body["models"] = list(models)
        if expires_at is not None:
            body["expires_at"] = expires_at.isoformat()
        made = self._json("POST", "/principals", json=body)
        return _principal(made), made["api_key"]

    def list_principals(self, actor: Principal) -> list[Principal]:
        return [_principal(p) for p in self._json("GET", "/principals")]

    def revoke_principal(self, actor: Principal, name: str) -> None:
        self._call("DELETE", f"/principals/{name}")

    # -- versions ----------------------------------------------------------------
    def submit(
        self,
        actor: Principal,
        model: str,
        *,
        artifact: Path | str,
        train: Path,
        validation: Path,
        target: str,
        protected: list[str],
        policy_id: str | None = None,
        cutoff: str | None = None,
        reason_texts: dict[str, Any] | None = None,
        schema_suite: dict[str, Any] | None = None,
        lineage: dict[str, Any] | None = None,
    ) -> int:
        if schema_suite is not None:
            raise InputError("--expectations is not sent to a server yet; submit it locally")
        files = {}
        data: dict[str, str] = {"target": target, "protected": ",".join(protected)}
        uploads = [("train", train), ("validation", validation)]
        if isinstance(artifact, str) and artifact.startswith(("runs:/", "models:/")):
            data["artifact_uri"] = artifact  # the server reads it from its MLflow
        else:
            uploads.insert(0, ("artifact", Path(artifact)))
        for name, path in uploads:
            if not path.is_file():
                raise InputError(f"{name} file {path} does not exist; check the path")
            files[name] = (path.name, path.read_bytes())
        if policy_id:
            data["policy"] = policy_id
        if cutoff is not None:
            if not cutoff:  # a form drops an empty field; refuse it as the service does
                raise InputError("--cutoff '' is not a number")
            data["cutoff"] = cutoff  # the server refuses one other than the policy's
        if reason_texts:
            data["reasons"] = json.dumps(reason_texts)
        if lineage:
            data["lineage"] = json.dumps(lineage)
        return int(
            self._json("POST", f"/models/{model}/versions", files=files, data=data)["version"]
        )

    def evaluate(
        self,
        actor: Principal,
        model: str,
        version: int,
        *,
        policy_id: str | None = None,
        progress: Callable[[str], None] | None = None,
        poll_seconds: float = 0.5,
    ) -> Status:
        """Start the evaluation on the server and wait for it, at most
        ``wait_seconds`` (GOVREG_REMOTE_WAIT_SECONDS); past that, DeadlineExceeded
        (the evaluation goes on on the server)."""
        body = {"policy": policy_id} if policy_id else None
        started = self._json("POST", f"/models/{model}/versions/{version}/evaluations", json=body)
        number = started["evaluation"]
        if progress:
            progress(f"evaluation {number} running on the server")
        deadline = time.monotonic() + self.wait_seconds
        while True:
            state = self._json("GET", f"/models/{model}/versions/{version}/evaluations/{number}")
            if state["state"] == "completed":
                return Status(state["status"])
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeadlineExceeded(
                    f"evaluation {number} of {model} v{version} is still running on the "
                    f"server after {self.wait_seconds:g} s (GOVREG_REMOTE_WAIT_SECONDS); it "
                    f"goes on there: see `govreg versions show {model} {version}`"
                )
            time.sleep(min(poll_seconds, left))

    def signoff(
        self,
        actor: Principal,
        model: str,
        version: int,
        *,
        role: str,
        approve: bool,
        comment: str,
    ) -> Status:
        body = {"role": role, "decision": "approve" if approve else "reject", "comment": comment}
        done = self._json("POST", f"/models/{model}/versions/{version}/signoffs", json=body)
        return Status(done["status"])

    def list_versions(self, actor: Principal, model: str | None = None) -> list[dict[str, Any]]:
        path = f"/models/{model}/versions" if model else "/versions"
        rows: list[dict[str, Any]] = self._json("GET", path)
        return rows

    def show_version(self, actor: Principal, model: str, version: int) -> dict[str, Any]:
        shown: dict[str, Any] = self._json("GET", f"/models/{model}/versions/{version}")
        return shown

    def promote(self, actor: Principal, model: str, version: int, *, alias: str) -> None:
        self._call("POST", f"/models/{model}/versions/{version}/promote", json={"alias": alias})

    def _state(self, name: str, model: str, version: int, reason: str) -> None:
        self._call("POST", f"/models/{model}/versions/{version}/{name}", json={"reason": reason})

    def suspend(self, actor: Principal, model: str, version: int, *, reason: str) -> None:
        self._state("suspend", model, version, reason)

    def reinstate(self, actor: Principal, model: str, version: int, *, reason: str) -> None:
        self._state("reinstate", model, version, reason)

    def retire(self, actor: Principal, model: str, version: int, *, reason: str) -> None:
        self._state("retire", model, version, reason)

    # -- audit ---------------------------------------------------------------------
    def audit_log(self, actor: Principal, *, model: str | None = None) -> Iterator[Event]:
        after = 0
        while True:
            params: dict[str, Any] = {"after": after, "limit": 10000}
            if model:
                params["model"] = model
            page = self._json("GET", "/audit/events", params=params)
            for e in page:
                yield Event(
                    seq=e["seq"],
                    recorded_at=e["recorded_at"],
                    type=e["type"],
                    actor=e["actor"],
                    model=e["model"],
                    version=e["version"],
                    index=e["index"],
                    data=e["data"],
                    key_id=e["key_id"],
                    leaf_hash=bytes.fromhex(e["leaf_hash"]),
                    chain_hash=bytes.fromhex(e["chain_hash"]),
                )
            if len(page) < 10000:
                return
            after = page[-1]["seq"]

    def verify_remote(
        self, pinned: Ed25519PublicKey | None = None, *, anchors: Path | None = None
    ) -> VerifyReport:
        """The server's verification, with its configured key and anchors; with
        ``pinned``, IntegrityError unless the server verified with that key."""
        if anchors is not None:
            raise ConfigError(
                f"--anchors {anchors} names a folder on this machine; through GOVREG_URL "
                "the server verifies against its own anchor folder (leave --anchors out, "
                "or verify on the server's host)"
            )
        out = self._json("POST", "/audit/verify")
        report = VerifyReport(
            size=out["size"],
            root=bytes.fromhex(out["root"]),
            checkpoints=out["checkpoints"],
            anchors=out["anchors"],
            key_fingerprint=out["key_fingerprint"],
            warnings=out["warnings"],
        )
        if pinned is not None:
            from audits.signing import fingerprint

            expected = fingerprint(pinned)
            if report.key_fingerprint != expected:
                raise IntegrityError(
                    f"the server verified its ledger with key {report.key_fingerprint}, not "
                    f"with the pinned public key {expected}"
                )
        return report

    # -- policies --------------------------------------------------------------------
    def list_policies(self, actor: Principal) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._json("GET", "/policies")
        return rows

    def propose_policy(self, actor: Principal, policy: Policy) -> None:
        self._call("POST", "/policies", json={"policy": policy.canonical()})

    def approve_policy(self, actor: Principal, ref: str, *, comment: str) -> Policy:
        from policies.schema import Policy

        self._call("POST", f"/policies/{ref}/approve", json={"comment": comment})
        return Policy.model_validate(self._json("GET", f"/policies/{ref}")["policy"])

    def download(self, model: str, version: int, what: str) -> tuple[bytes, str]:
        response = self._call("GET", f"/models/{model}/versions/{version}/{what}")
        return response.content, response.headers.get("x-content-sha256", "")


@dataclass
class RemoteContext:
    """The CLI's context when GOVREG_URL names a server."""

    url: str
    registry: RemoteRegistry

    @property
    def remote(self) -> bool:
        return True

    def principal(self) -> Principal:
        # The server authenticates every call with the API key; this
        # placeholder is never trusted for anything.
        return Principal(name="(remote)", role="(remote)")

    def verify(
        self,
        public_key: Path | None = None,
        *,
        anchors: Path | None = None,
        workers: Workers | None = None,
    ) -> VerifyReport:
        """The server's verification, with its key and anchors and one process."""
        from audits.parallel import WorkersError
        from audits.signing import load_public_key

        if workers is not None:
            raise WorkersError(
                "--workers applies to a local home: through GOVREG_URL the server "
                "verifies its ledger itself, with one process"
            )
        # the server verifies with its key and anchors; a pinned key must be it
        pinned = load_public_key(public_key) if public_key else None
        return self.registry.verify_remote(pinned, anchors=anchors)

    def report(self, model: str, version: int) -> Download:
        return Download(*self.registry.download(model, version, "report"))

    def evidence(self, model: str, version: int) -> Download:
        return Download(*self.registry.download(model, version, "evidence"))

    def close(self) -> None:
        self.registry.close()


def _principal(shown: dict[str, Any]) -> Principal:
    models = shown.get("models")
    return Principal(
        shown["name"],
        shown["role"],
        shown.get("expires_at"),
        shown.get("revoked_at"),
        person=str(shown.get("person") or ""),
        models=tuple(models) if models is not None else None,
    )
