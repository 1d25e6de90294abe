"""The serving SDK for services in other processes.

``fetch_approved(url, api_key, "credit-pd", public_key=pinned)`` asks the
server for ``credit-pd@champion``, verifies the approval proof offline with
the pinned key (:func:`serving.proof.verify_proof`: signature, inclusion,
the digest of the very bytes received, standing, revalidation date, and the
signed standing statement: its expiry and the digest of the scoring
metadata), then parses those bytes (only a LightGBM native text model) into
a :class:`~serving.scoring.Scorer`. The scoring metadata (cutoff, reason
texts, the data contract and the policy's scoring rules) is what the
statement signs, so the scorer refuses, flags and explains exactly as the
server's does; the contract's features, kinds and categories must be the
verified model's own (:func:`serving.scoring.contract_of`).
"""

from __future__ import annotations

from base64 import b64decode
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from core.clock import utcnow
from core.errors import InputError, IntegrityError, TransitionError, error_from_response
from serving.approval import Approval
from serving.deciding import Decider
from serving.errors import Check, DecisionLogError, LoadRefused
from serving.loader import parse_model
from serving.proof import verify_proof
from serving.scoring import Scorer

if TYPE_CHECKING:
    from collections.abc import Sequence

    import httpx
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from serving.decisions import Decision

T = TypeVar("T")


def scorer_from_response(
    body: dict[str, Any],
    public_key: Ed25519PublicKey,
    *,
    model: str,
    version: int | None = None,
    now: datetime | None = None,
) -> Scorer:
    """Verify a fetch response offline and parse its bytes; raise LoadRefused if it fails.

    Everything the scorer acts on (cutoff, features, data contract, reason
    texts, scoring rules, retention, policy digest) must hash to the scoring
    digest the server's standing statement signs, and that statement must not
    have expired (:func:`serving.proof.verify_proof`). Any malformed field is
    a refusal, never another exception.
    """
    from pydantic import ValidationError

    from policies.schema import ScoringRules

    subject = model if version is None else f"{model} v{version}"
    try:
        if not isinstance(body, dict):
            raise TypeError("the response is not an object")
        artifact = b64decode(_field(body, "artifact_base64", str), validate=True)
        got = _field(body, "version", int)
        scoring = _field(body, "scoring", dict)
        proof = _field(body, "proof", dict)
    except (KeyError, TypeError, ValueError) as exc:
        raise LoadRefused(Check.PROOF, subject, f"malformed response ({exc})") from exc
    if version is not None and got != version:
        raise LoadRefused(Check.PROOF, subject, f"the server sent v{got}")
    facts = verify_proof(
        proof,
        public_key,
        model=model,
        version=got,
        artifact=artifact,
        scoring=scoring,
        now=now or utcnow(),
    )
    try:
        contract = scoring["contract"]
        if contract is not None and not isinstance(contract, dict):
            raise TypeError("the data contract is not an object")
        approval = Approval(
            model=model,
            version=got,
            alias=None,
            approval_seq=facts.approval_seq,
            artifact_digest=facts.artifact_digest,
            evidence_digest=facts.evidence_digest,
            revalidate_by=facts.revalidate_by,
            features=[_item(f, str) for f in _field(scoring, "features", list)],
            cutoff=_field(scoring, "cutoff", str),
            reason_texts=dict(_field(scoring, "reason_texts", dict)),
            schema_suite=scoring["schema_suite"],
            retention_days=_field(scoring, "retention_days", int),
            proof=proof,
            head=facts.checkpoint_size,
            contract=contract,
            scoring=ScoringRules.model_validate(_field(scoring, "rules", dict)),
            policy_digest=_field(scoring, "policy_digest", str),
        )
        return Scorer(approval, parse_model(artifact, subject=f"{model} v{got}"))
    except (KeyError, TypeError, ValueError, AttributeError, ValidationError) as exc:
        raise LoadRefused(Check.PROOF, f"{model} v{got}", f"malformed response ({exc})") from exc


def _item(value: Any, kind: type[T]) -> T:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{value!r:.40} is not a {kind.__name__}")
    return value


def _field(body: dict[str, Any], name: str, kind: type[T]) -> T:
    """``body[name]`` if it is a ``kind``; KeyError or TypeError naming the field."""
    value = body[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"field '{name}' is not a {kind.__name__}")
    return value


class ServerSink:
    """A remote scorer's decision sink: posts a request's decisions to the server
    (``POST /v1/models/{model}/decisions?alias=...``) and returns once it answered
    that it recorded them; any other answer is raised (nothing was recorded)."""

    def __init__(
        self, url: str, api_key: str, model: str, *, alias: str = "champion", timeout: float = 60.0
    ) -> None:
        self.url = f"{url.rstrip('/')}/v1/models/{model}/decisions"
        self.model = model
        self.alias = alias
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self.timeout = timeout

    def record_many(self, decisions: Sequence[Decision], /) -> list[str]:
        """Post ``decisions``; the ids the server's decision log gave them, in order."""
        import httpx

        if not decisions:
            return []
        if {d.model for d in decisions} != {self.model}:
            raise InputError(f"a request's decisions must all be of {self.model}")
        body = decisions_body(decisions)
        try:
            response = httpx.post(
                self.url,
                params={"alias": self.alias},
                json=body,
                headers=self._headers,
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise DecisionLogError(
                f"the server did not record the decisions ({type(exc).__name__}: {exc})"
            ) from exc
        if response.status_code != 200:
            _raise_problem(response, self.model)
        try:
            ids = response.json()["decision_ids"]
        except (ValueError, KeyError, TypeError):
            ids = None
        if not isinstance(ids, list):
            raise DecisionLogError(
                "the server answered 200 without the decisions' ids; it may have recorded "
                "them, but their ids are unknown"
            )
        return ids


def decisions_body(decisions: Sequence[Decision]) -> dict[str, Any]:
    """The body of ``POST /v1/models/{model}/decisions`` for one version's decisions."""
    made = {(d.version, d.approval_seq) for d in decisions}
    if len(made) != 1:
        raise InputError("a request's decisions must all be of one version and approval")
    ((version, approval_seq),) = made
    return {
        "version": version,
        "approval_seq": approval_seq,
        "decisions": [
            {
                "inputs": d.inputs,
                "score": d.score,
                "decision": d.decision,
                "reasons": list(d.reasons),
                "flags": {k: list(v) for k, v in d.flags.items()},
                "reason_values": [dict(v) for v in d.reason_values],
            }
            for d in decisions
        ],
    }


def _raise_problem(response: httpx.Response, model: str) -> NoReturn:
    """Raise the error a server's problem answer names."""
    error = error_from_response(response)
    # a refusal to serve (model-not-servable), an integrity failure or a
    # transition the lifecycle refuses: the model may not be served
    if isinstance(error, IntegrityError | TransitionError):
        raise LoadRefused(Check.STATUS, model, f"the server refused: {error}")
    raise error


def fetch_approved(
    url: str,
    api_key: str,
    model: str,
    *,
    public_key: Ed25519PublicKey,
    alias: str = "champion",
    version: int | None = None,
    timeout: float = 60.0,
) -> Decider:
    """Fetch ``model@alias`` (or ``version``) from a govreg server and verify it offline.

    The scorer comes bound to a :class:`ServerSink`: :meth:`Decider.decide`
    answers only after the server recorded the decisions (it re-scores them and
    accepts them only while ``model@alias`` is served at this version and
    approval).
    """
    import httpx

    params: dict[str, Any] = {"version": version} if version is not None else {"alias": alias}
    response = httpx.get(
        f"{url.rstrip('/')}/v1/models/{model}/approved",
        params=params,
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=timeout,
    )
    if response.status_code != 200:
        _raise_problem(response, model)
    scorer = scorer_from_response(response.json(), public_key, model=model, version=version)
    return Decider(scorer, ServerSink(url, api_key, model, alias=alias, timeout=timeout))
