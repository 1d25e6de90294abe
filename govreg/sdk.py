"""The data scientist's Python client: submit, evaluate, status, wait.

    from govreg.sdk import Client

    with Client() as gr:                      # GOVREG_URL / GOVREG_API_KEY / GOVREG_HOME
        v = gr.submit("credit-pd", artifact="models:/credit-pd/3", train="train.csv",
                      validation="validation.csv", target="default",
                      protected=["sex", "age_band"])
        print(gr.evaluate("credit-pd", v.version).status)
        gr.wait("credit-pd", v.version, until="approved", timeout=3600)

It holds no rule of its own. Locally (a govreg home) it calls the one
service layer, :class:`registry.services.Registry`; with a URL it goes through
:class:`govreg.client.RemoteRegistry`, the same HTTP client the CLI uses, to
the server's service layer. Errors are the :class:`core.errors.GovregError`
subclasses the CLI prints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import DeadlineExceeded

if TYPE_CHECKING:
    from types import TracebackType

    from registry.interfaces import Session
    from registry.services import Principal

# Statuses after which waiting for another one is pointless.
FINAL = frozenset({"gates_failed", "rejected", "retired"})


class WaitTimeout(DeadlineExceeded):
    """:meth:`Client.wait` ran out of time; ``last`` is the status seen last."""

    def __init__(self, message: str, last: VersionStatus) -> None:
        super().__init__(message)
        self.last = last


@dataclass(frozen=True)
class Gate:
    gate_id: str
    kind: str
    verdict: str
    blocking: bool
    message: str


@dataclass(frozen=True)
class VersionStatus:
    """A version as govreg sees it now."""

    model: str
    version: int
    status: str
    aliases: tuple[str, ...]
    gates: tuple[Gate, ...]
    signoffs_missing: dict[str, int]
    artifact_digest: str
    evidence_digest: str | None
    approved_at: str | None

    @property
    def passed(self) -> bool:
        """Every blocking gate passed (or warned) in the current evaluation."""
        return bool(self.gates) and all(
            g.verdict in ("passed", "warned") for g in self.gates if g.blocking
        )

    @classmethod
    def from_shown(cls, shown: dict[str, Any]) -> VersionStatus:
        return cls(
            model=shown["model"],
            version=int(shown["version"]),
            status=shown["status"],
            aliases=tuple(shown.get("aliases", ())),
            gates=tuple(
                Gate(
                    gate_id=g["gate_id"],
                    kind=g.get("kind", ""),
                    verdict=g["verdict"],
                    blocking=bool(g.get("blocking", True)),
                    message=g.get("message", ""),
                )
                for g in shown.get("gates", ())
            ),
            signoffs_missing={m["role"]: int(m["missing"]) for m in shown["signoffs_missing"]},
            artifact_digest=shown["artifact_digest"],
            evidence_digest=shown.get("evidence_digest"),
            approved_at=shown.get("approved_at"),
        )


@dataclass(frozen=True)
class Submitted:
    model: str
    version: int
    status: str


class Client:
    """govreg for notebooks and scripts, locally (a home) or against a server.

    ``url`` (default ``GOVREG_URL``) selects a server; without one, ``home``
    (default ``GOVREG_HOME``) is used with the rest of the ``GOVREG_*``
    settings. ``api_key`` defaults to ``GOVREG_API_KEY``.
    """

    def __init__(
        self, url: str | None = None, api_key: str | None = None, home: str | Path | None = None
    ) -> None:
        from pydantic import SecretStr

        from govreg.context import open_session
        from govreg.settings import load_settings

        overrides: dict[str, Any] = {}
        if url:
            overrides["url"] = url
        if api_key:
            overrides["api_key"] = SecretStr(api_key)
        if home is not None:
            overrides["home"] = Path(home)
        self.ctx: Session = open_session(load_settings(**overrides))
        self._actor: Principal | None = None

    @property
    def remote(self) -> bool:
        return self.ctx.remote

    def _principal(self) -> Principal:
        if self._actor is None:
            self._actor = self.ctx.principal()
        return self._actor

    # -- the four calls ------------------------------------------------------------
    def submit(
        self,
        model: str,
        *,
        artifact: str | Path,
        train: str | Path,
        validation: str | Path,
        target: str,
        protected: list[str] | tuple[str, ...],
        policy: str | None = None,
        cutoff: str | None = None,
        reasons: dict[str, Any] | None = None,
    ) -> Submitted:
        """Submit a candidate: a LightGBM text model file or an MLflow
        ``runs:/<run_id>/<path>`` / ``models:/<name>/<version>`` URI, and the datasets.

        The version decides at its policy's ``decision_cutoff``; ``cutoff``, if
        given, must equal it (another cutoff raises ``InputError``: adopt a
        policy version with that cutoff and pass it as ``policy``)."""
        number = self.ctx.registry.submit(
            self._principal(),
            model,
            artifact=artifact,  # a runs:/ or models:/ URI, or a model file's path
            train=Path(train),
            validation=Path(validation),
            target=target,
            protected=list(protected),
            policy_id=policy,
            cutoff=cutoff,
            reason_texts=reasons,
        )
        return Submitted(model=model, version=int(number), status="submitted")

    def evaluate(self, model: str, version: int, *, policy: str | None = None) -> VersionStatus:
        """Run every gate of the version's policy (blocks until done); the outcome."""
        self.ctx.registry.evaluate(self._principal(), model, version, policy_id=policy)
        return self.status(model, version)

    def status(self, model: str, version: int) -> VersionStatus:
        """Status, gates, missing sign-offs and aliases of a version."""
        shown = self.ctx.registry.show_version(self._principal(), model, version)
        return VersionStatus.from_shown(shown)

    def wait(
        self,
        model: str,
        version: int,
        *,
        until: str | tuple[str, ...] = ("approved", "promoted"),
        timeout: float = 600,
        poll: float = 2.0,
    ) -> VersionStatus:
        """Poll until the version reaches a status in ``until`` or a final one
        (gates_failed, rejected, retired), then return it; raise
        :class:`WaitTimeout` after ``timeout`` seconds."""
        wanted = {until} if isinstance(until, str) else set(until)
        deadline = time.monotonic() + timeout
        while True:
            current = self.status(model, version)
            if current.status in wanted or current.status in FINAL:
                return current
            if time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"{model} v{version} is still {current.status} after {timeout:g} s "
                    f"(waiting for {', '.join(sorted(wanted))})",
                    current,
                )
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))

    # -- lifetime ------------------------------------------------------------------
    def close(self) -> None:
        self.ctx.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


__all__ = ["Client", "Gate", "Submitted", "VersionStatus", "WaitTimeout"]
