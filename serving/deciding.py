"""From applicants to recorded decisions: the one step every scorer decides through.

:func:`decide` scores the applicants (:meth:`serving.scoring.Scorer.score`),
renders the probability and the contributions as decimal strings once
(:func:`decimal`), builds a :class:`~serving.decisions.Decision` per decided
applicant and hands them all to a :class:`DecisionSink` *before* it returns:
a caller sees a decision only once the sink took it, and when the sink
refuses (:class:`~serving.errors.DecisionLogError`, or the error a remote
sink was answered with) the caller gets that error and no result. Each
decided applicant's answer carries the decision id the log gave it. There is
no way to decide without a sink; ``Scorer.score`` stays the raw step
(benchmarks, the batch checks).

The sinks: the server's :class:`~serving.decisions.DecisionLog` (the score
route), and a remote scorer's :class:`serving.remote.ServerSink`, which posts
the decisions to the server that re-scores and records them
(:func:`recheck`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol

from core.errors import InputError
from serving.decisions import Decision, check_decision, is_decision_id
from serving.errors import Check, DecisionLogError, LoadRefused
from serving.scoring import ApplicantsRefused, Refused, Scored

if TYPE_CHECKING:
    from serving.scoring import Result, Scorer

PLACES = 6  # decimal places of a probability and a contribution
Scalar = str | int | float | bool | None


class DecisionSink(Protocol):
    """Where decisions go: ``record_many`` takes all of them or none and returns their
    decision ids in order (the decision log gives them), and raises
    (:class:`~serving.errors.DecisionLogError` when it cannot take them now)."""

    def record_many(self, decisions: Sequence[Decision], /) -> list[str]: ...


def decimal(value: float, places: int = PLACES) -> str:
    """``value`` as a decimal string of ``places`` places (half-even from its shortest repr)."""
    return str(Decimal(repr(value)).quantize(Decimal(1).scaleb(-places)))


@dataclass(frozen=True, slots=True)
class DecidedReason:
    """A principal reason as a decision states it: the contribution as a decimal."""

    feature: str
    reason: str
    value: Scalar
    contribution: str


@dataclass(frozen=True, slots=True)
class Decided:
    """A recorded decision about one applicant, its numbers as decimal strings."""

    probability_of_default: str
    decision: Literal["approve", "decline"]
    reasons: tuple[DecidedReason, ...]
    flags: dict[str, list[str]] = field(default_factory=dict)
    # the id the decision log gave it (None until it is recorded): outcomes and
    # overrides name the decision by it
    decision_id: str | None = None


Outcome = Decided | Refused


@dataclass(frozen=True, slots=True)
class Outcomes:
    """A request's answers (one per applicant, in order) and the decisions to record."""

    results: list[Outcome]
    decisions: list[Decision]


def _decided(scored: Scored) -> Decided:
    return Decided(
        probability_of_default=decimal(scored.probability_of_default),
        decision="decline" if scored.decision == "decline" else "approve",
        reasons=tuple(
            DecidedReason(r.feature, r.text, r.value, decimal(r.contribution))
            for r in scored.reasons
        ),
        flags=scored.flags,
    )


def _outcomes(scorer: Scorer, applicants: Sequence[Any]) -> Outcomes:
    """Score and render ``applicants``; nothing is recorded (that is :func:`decide`).
    Raises :class:`ApplicantsRefused` when no applicant could be decided."""
    scored = scorer.score(applicants)
    if not any(isinstance(s, Scored) for s in scored):
        raise ApplicantsRefused([s for s in scored if isinstance(s, Refused)])
    return _render(scorer, applicants, scored)


def _render(scorer: Scorer, applicants: Sequence[Any], scored: Sequence[Result]) -> Outcomes:
    results: list[Outcome] = []
    decisions = []
    for applicant, s in zip(applicants, scored, strict=True):
        if isinstance(s, Refused):
            results.append(s)
            continue
        decided = _decided(s)
        results.append(decided)
        decisions.append(
            Decision(
                model=scorer.model,
                version=scorer.version,
                approval_seq=scorer.approval_seq,
                inputs=applicant,
                score=decided.probability_of_default,
                decision=decided.decision,
                reasons=[r.reason for r in decided.reasons],
                retention_days=scorer.approval.retention_days,
                flags=decided.flags,
                reason_values=[{"feature": r.feature, "value": r.value} for r in decided.reasons],
            )
        )
    return Outcomes(results, decisions)


def decide(scorer: Scorer, applicants: Sequence[Any], *, sink: DecisionSink) -> list[Outcome]:
    """Decide each applicant on its own and record the decisions before answering.

    One :class:`Decided` or :class:`~serving.scoring.Refused` per applicant, in
    order; the decided ones go to ``sink`` together (all or none). Raises
    :class:`ApplicantsRefused` (nothing recorded) when none could be decided,
    and whatever the sink raises (then nothing is answered).
    """
    done = _outcomes(scorer, applicants)
    ids = iter(_ids(sink.record_many(done.decisions), len(done.decisions)))
    return [
        replace(r, decision_id=next(ids)) if isinstance(r, Decided) else r for r in done.results
    ]


def _ids(ids: Any, count: int) -> list[str]:
    """The sink's decision ids, checked: one per decision, each 32 lowercase hex digits."""
    if not (isinstance(ids, list) and len(ids) == count and all(is_decision_id(i) for i in ids)):
        raise DecisionLogError(
            f"the decision sink answered without {count} decision ids; the decisions' "
            "ids are unknown"
        )
    return ids


class Decider:
    """A scorer bound to the sink its decisions go to (what the serving SDK hands out)."""

    def __init__(self, scorer: Scorer, sink: DecisionSink) -> None:
        self.scorer = scorer
        self.sink = sink
        self.model = scorer.model
        self.version = scorer.version
        self.approval_seq = scorer.approval_seq

    def decide(self, applicants: Sequence[Any]) -> list[Outcome]:
        """:func:`decide` with this scorer and sink."""
        return decide(self.scorer, applicants, sink=self.sink)


# -- the server's side of a remote scorer's decisions -------------------------------------------
def recheck(scorer: Scorer, posted: Sequence[Decision]) -> list[Decision]:
    """The server's own decisions for a remote scorer's ``posted`` ones; raise if any differs.

    1. Every posted decision passes the decision log's checks
       (:func:`~serving.decisions.check_decision`), else InputError.
    2. It was made by ``scorer``'s model and version under its approval (the
       one served now), else :class:`~serving.errors.LoadRefused`.
    3. ``scorer`` decides its inputs, and exactly so: the score, the decision,
       the reasons, the values that counted and the flags; else InputError
       naming the first that differs, by index and field.
    """
    for i, decision in enumerate(posted):
        try:
            check_decision(decision)
        except InputError as exc:
            raise InputError(f"decisions[{i}]: {exc}") from exc
    for i, decision in enumerate(posted):
        made = (decision.model, decision.version, decision.approval_seq)
        if made != (scorer.model, scorer.version, scorer.approval_seq):
            raise LoadRefused(
                Check.STATUS,
                f"{decision.model} v{decision.version}",
                f"decisions[{i}] was made under approval seq {decision.approval_seq}; "
                f"{scorer.model} is served now at v{scorer.version} (approval seq "
                f"{scorer.approval_seq})",
            )
    scored = scorer.score([d.inputs for d in posted], where="inputs")
    for i, s in enumerate(scored):
        if isinstance(s, Refused):
            raise InputError(f"decisions[{i}]: the server refuses its inputs: {s.error}")
    done = _render(scorer, [d.inputs for d in posted], scored)
    for i, (theirs, own) in enumerate(zip(posted, done.decisions, strict=True)):
        for name, got, expected in _fields(theirs, own):
            if got != expected:
                raise InputError(
                    f"decisions[{i}]: {name} {_show(got)} differs from the server's "
                    f"{_show(expected)}"
                )
    return done.decisions


def _fields(theirs: Decision, own: Decision) -> list[tuple[str, Any, Any]]:
    return [
        ("score", theirs.score, own.score),
        ("decision", theirs.decision, own.decision),
        ("reasons", list(theirs.reasons), list(own.reasons)),
        ("reason_values", [dict(v) for v in theirs.reason_values], list(own.reason_values)),
        ("flags", _flags(theirs.flags), _flags(own.flags)),
    ]


def _flags(flags: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    return {kind: list(names) for kind, names in flags.items() if names}


def _show(value: Any) -> str:
    import json

    text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= 200 else text[:200] + "..."
