"""Serving endpoints: score with the approved model; fetch it with an approval proof.

Their own router, mounted beside the governance endpoints' (govreg.api.app), with
the action each needs (the service role's) in the same table.
"""

from __future__ import annotations

from base64 import b64encode
from decimal import Decimal
from typing import Annotated

from fastapi import Query, Request

from audits.events import EventType
from core.clock import utcnow
from core.errors import NotFoundError
from govreg.api import schemas
from govreg.api.deps import Caller, Ctx, Endpoints, Model
from registry.roles import Action
from registry.services import NAME_RE
from serving.decisions import Decision, DecisionLog
from serving.errors import LoadRefused
from serving.live import LiveModels
from serving.loader import approved_bytes, record_refusal, record_serving
from serving.proof import Standing
from serving.scoring import ApplicantsRefused, Refused, Scored

api = Endpoints()
endpoint = api
Alias = Annotated[str, Query(max_length=100, pattern=NAME_RE.pattern)]


def _decimal(value: float, places: int = 6) -> str:
    return str(Decimal(repr(value)).quantize(Decimal(1).scaleb(-places)))


@endpoint(
    "POST",
    "/models/{model}/score",
    Action.SCORE,
    errors=(404, 409, 422, 503),
    body_limit="max_score_bytes",
)
def score(
    model: Model,
    *,
    body: schemas.ScoreRequest,
    request: Request,
    ctx: Ctx,
    caller: Caller,
    alias: Alias = "champion",
) -> schemas.ScoreOut:
    """Score applicants with ``model@alias``: probability of default, decision, reasons.

    Each applicant is answered on its own: a decision, or an ``error`` naming its
    bad fields. 200 when at least one applicant was decided (only those are
    logged, together); 422 when none was, with every applicant's errors.
    """
    ctx.registry.authorize_model(caller, Action.SCORE, model)
    live: LiveModels = request.app.state.live
    scorer = live.get(model, alias)  # held for the whole request, whatever changes meanwhile
    scored = scorer.score(body.applicants)
    if not any(isinstance(s, Scored) for s in scored):
        raise ApplicantsRefused([s for s in scored if isinstance(s, Refused)])
    results: list[schemas.ScoredOut | schemas.RefusedOut] = []
    decisions = []
    for applicant, s in zip(body.applicants, scored, strict=True):
        if isinstance(s, Refused):
            results.append(schemas.RefusedOut(error=s.error, fields=list(s.fields)))
            continue
        result = schemas.ScoredOut(
            probability_of_default=_decimal(s.probability_of_default),
            decision="decline" if s.decision == "decline" else "approve",
            reasons=[
                schemas.ReasonOut(
                    feature=r.feature,
                    reason=r.text,
                    value=r.value,
                    contribution=_decimal(r.contribution),
                )
                for r in s.reasons
            ],
            flags=s.flags,
        )
        results.append(result)
        decisions.append(
            Decision(
                model=model,
                version=scorer.version,
                approval_seq=scorer.approval_seq,
                inputs=applicant,
                score=result.probability_of_default,
                decision=result.decision,
                reasons=[r.reason for r in result.reasons],
                retention_days=scorer.approval.retention_days,
                flags=s.flags,
                reason_values=[{"feature": r.feature, "value": r.value} for r in s.reasons],
            )
        )
    log: DecisionLog = request.app.state.decisions
    log.record_many(decisions)  # all of this request's decisions, or none
    return schemas.ScoreOut(
        model=model,
        version=scorer.version,
        alias=alias,
        approval_seq=scorer.approval_seq,
        artifact_digest=scorer.artifact_digest,
        cutoff=scorer.approval.cutoff,
        results=results,
    )


@endpoint("GET", "/models/{model}/approved", Action.FETCH_MODEL, errors=(404, 409, 422))
def fetch_approved(
    model: Model,
    *,
    request: Request,
    ctx: Ctx,
    caller: Caller,
    alias: Alias = "champion",
    version: Annotated[int | None, Query(ge=1)] = None,
) -> schemas.ApprovedArtifact:
    """The approved artifact's bytes and an approval proof the client verifies offline."""
    ctx.registry.authorize_model(caller, Action.FETCH_MODEL, model)
    live: LiveModels = request.app.state.live
    shown_alias = None if version is not None else alias
    try:
        approval, data = approved_bytes(
            ctx.registry, model, alias=alias, version=version, config=live.config
        )
    except (LoadRefused, NotFoundError) as exc:
        record_refusal(
            ctx.registry, exc, actor=caller.name, model=model, version=version, alias=shown_alias
        )
        raise
    record_serving(
        ctx.registry,
        EventType.ARTIFACT_FETCHED,
        actor=caller.name,
        model=model,
        version=approval.version,
        data={"alias": shown_alias, "approval_seq": approval.approval_seq},
        index={"approval_seq": approval.approval_seq, "artifact_digest": approval.artifact_digest},
    )
    scoring = approval.scoring_metadata()
    standing = Standing.issue(
        ctx.registry.ledger.sign,
        live.config.public_key,
        model=model,
        version=approval.version,
        approval_seq=approval.approval_seq,
        artifact_digest=approval.artifact_digest,
        scoring=scoring,
        checkpoint_size=approval.head,
        now=utcnow(),
        max_age_seconds=approval.max_proof_age_seconds,
    )
    return schemas.ApprovedArtifact(
        model=model,
        version=approval.version,
        artifact_digest=approval.artifact_digest,
        artifact_base64=b64encode(data).decode(),
        proof={**approval.proof, "standing": standing},
        scoring=scoring,
    )
