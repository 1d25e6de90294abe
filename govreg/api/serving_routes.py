"""Serving endpoints: score with the approved model; fetch it with an approval proof;
record the decisions a remote scorer made with it.

Their own router, mounted beside the governance endpoints' (govreg.api.app), with
the action each needs (the service role's) in the same table.
"""

from __future__ import annotations

from base64 import b64encode
from typing import Annotated

from fastapi import Query, Request

from audits.events import EventType
from core.clock import utcnow
from core.errors import InputError, NotFoundError
from govreg.api import schemas
from govreg.api.deps import Caller, Ctx, Endpoints, Model
from registry.roles import Action
from registry.services import NAME_RE
from serving.deciding import Outcome, decide, recheck
from serving.decisions import Decision, DecisionLog
from serving.errors import DecisionLogError, LoadRefused
from serving.live import LiveModels
from serving.loader import approved_bytes, record_refusal, record_serving
from serving.proof import Standing
from serving.scoring import Refused

api = Endpoints()
endpoint = api
Alias = Annotated[str, Query(max_length=100, pattern=NAME_RE.pattern)]


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
    results = decide(scorer, body.applicants, sink=request.app.state.decisions)
    return schemas.ScoreOut(
        model=model,
        version=scorer.version,
        alias=alias,
        approval_seq=scorer.approval_seq,
        artifact_digest=scorer.artifact_digest,
        cutoff=scorer.approval.cutoff,
        results=[_result(r) for r in results],
    )


def _result(result: Outcome) -> schemas.ScoredOut | schemas.RefusedOut:
    if isinstance(result, Refused):
        return schemas.RefusedOut(error=result.error, fields=list(result.fields))
    if result.decision_id is None:  # decide() gives every decided applicant its id
        raise DecisionLogError("a decision was answered without its decision id")
    return schemas.ScoredOut(
        decision_id=result.decision_id,
        probability_of_default=result.probability_of_default,
        decision=result.decision,
        reasons=[
            schemas.ReasonOut(
                feature=r.feature, reason=r.reason, value=r.value, contribution=r.contribution
            )
            for r in result.reasons
        ],
        flags=result.flags,
    )


@endpoint(
    "POST",
    "/models/{model}/decisions",
    Action.SCORE,
    errors=(404, 409, 422, 503),
    body_limit="max_score_bytes",
)
def record_decisions(
    model: Model,
    *,
    body: schemas.DecisionsPost,
    request: Request,
    ctx: Ctx,
    caller: Caller,
    alias: Alias = "champion",
) -> schemas.DecisionsRecorded:
    """Record the decisions a remote scorer of ``model@alias`` made, all or none.

    Accepted only from the version and approval ``model@alias`` is served at
    now, and only when the server's own scorer decides every posted applicant
    exactly so (score, decision, reasons, their values, flags); else 409 (not
    the version served now) or 422 (naming the decision and the field that
    differs), recorded as a refusal, and nothing is written.
    """
    ctx.registry.authorize_model(caller, Action.SCORE, model)
    live: LiveModels = request.app.state.live
    try:
        scorer = live.get(model, alias)
        own = recheck(scorer, [_posted(model, body, d) for d in body.decisions])
    except (InputError, LoadRefused, NotFoundError) as exc:
        raise ctx.registry.refused(
            caller, exc, action=Action.SCORE.value, model=model, version=body.version
        ) from exc
    log: DecisionLog = request.app.state.decisions
    ids = log.record_many(own)  # all of this request's decisions, or none
    return schemas.DecisionsRecorded(
        model=model,
        version=scorer.version,
        alias=alias,
        approval_seq=scorer.approval_seq,
        recorded=len(own),
        decision_ids=ids,
    )


def _posted(model: str, body: schemas.DecisionsPost, d: schemas.PostedDecision) -> Decision:
    return Decision(
        model=model,
        version=body.version,
        approval_seq=body.approval_seq,
        inputs=d.inputs,
        score=d.score,
        decision=d.decision,
        reasons=d.reasons,
        retention_days=1,  # not posted: the server records its own decisions' retention
        flags=d.flags,
        reason_values=[{"feature": v.feature, "value": v.value} for v in d.reason_values],
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
