"""The policy schema: what a model version must prove before it is approved.

A policy file is YAML. Unknown keys and wrong types are refused with a message
naming the file and the key (see :func:`policies.loader.load_policy`).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.errors import GovregError

GateKind = Literal[
    "performance", "fairness", "data_schema", "explainability", "stability", "latency"
]
Role = Literal["validator", "compliance_officer", "business_owner"]

SIGNING_ROLES: tuple[str, ...] = ("validator", "compliance_officer", "business_owner")


class PolicyError(GovregError):
    """A policy file is missing, unreadable or does not match the schema."""

    exit_code = 2
    http_status = 422
    problem_type = "invalid-policy"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


Fraction = Annotated[Decimal, Field(ge=0, le=1)]
Direction = Literal["increasing", "decreasing"]


class GateParams(_Strict):
    """Base of the per-kind gate parameters; thresholds are decimals, never floats.

    ``kind`` is filled in from the gate (a policy file does not write it) and
    is left out of the canonical form.
    """

    def get(self, key: str, default: Any = None) -> Any:
        """Dict-style read, for callers that treated ``params`` as a mapping."""
        return getattr(self, key, default) if key in type(self).model_fields else default

    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields or key == "kind":
            raise KeyError(key)
        return getattr(self, key)


class PerformanceParams(GateParams):
    """Discrimination on the validation set: AUC and KS minimums (optional warning levels)."""

    kind: Literal["performance"] = Field(default="performance", exclude=True)
    min_auc: Fraction = Decimal("0.80")
    min_ks: Fraction = Decimal("0.35")
    warn_auc: Fraction | None = None
    warn_ks: Fraction | None = None
    calibration_bins: int = Field(default=10, ge=2, le=100)


class FairnessParams(GateParams):
    """Four-fifths rule on approval rates and equalized odds, per protected attribute.

    ``protected`` overrides the attributes declared by the submission (empty:
    take the submission's); ``reference_groups`` names the reference group of
    an attribute (default: the group with the highest approval rate).
    A group is compared only on what its sizes support: fewer than
    ``min_group_size`` rows leaves it out of every statistic, fewer than
    ``min_group_defaults`` defaults out of the true positive rates, fewer than
    ``min_group_non_defaults`` non-defaults out of the false positive rates
    (see ``validation.fairness``).
    """

    kind: Literal["fairness"] = Field(default="fairness", exclude=True)
    min_adverse_impact_ratio: Fraction = Decimal("0.80")
    max_equalized_odds_difference: Fraction = Decimal("0.10")
    min_group_size: int = Field(default=30, ge=1)
    min_group_defaults: int = Field(default=30, ge=1)
    min_group_non_defaults: int = Field(default=30, ge=1)
    reference_groups: dict[str, str] = Field(default_factory=dict)
    protected: list[str] = Field(default_factory=list)
    intersections: bool = True
    bootstrap_samples: int = Field(default=500, ge=0, le=100_000)
    confidence: Annotated[Decimal, Field(gt=0, lt=1)] = Decimal("0.95")
    seed: int = Field(default=0, ge=0)


class DataSchemaParams(GateParams):
    """The validation data must match the training data's schema (or a supplied suite).

    ``range_mostly`` is the share of values that must lie within the training
    range (a fresh sample exceeds the extremes of the old one now and then);
    categories, columns and types are checked strictly.
    """

    kind: Literal["data_schema"] = Field(default="data_schema", exclude=True)
    range_mostly: Fraction = Decimal("0.995")
    null_rate_tolerance: Fraction = Decimal("0.01")
    columns: list[str] = Field(default_factory=list)
    max_categories: int = Field(default=100, ge=1)


class ExplainabilityParams(GateParams):
    """Global importance, declared monotone relations and reason texts."""

    kind: Literal["explainability"] = Field(default="explainability", exclude=True)
    monotone: dict[str, Direction] = Field(default_factory=dict)
    max_monotone_violation_rate: Fraction = Decimal("0")
    monotone_rows: int = Field(default=200, ge=1)
    grid_points: int = Field(default=21, ge=2, le=1000)
    importance_rows: int = Field(default=5000, ge=1)
    reason_texts: dict[str, str] = Field(default_factory=dict)
    seed: int = Field(default=0, ge=0)


class StabilityParams(GateParams):
    """Population stability index per feature and on the score."""

    kind: Literal["stability"] = Field(default="stability", exclude=True)
    warn_psi: Annotated[Decimal, Field(ge=0)] = Decimal("0.10")
    fail_psi: Annotated[Decimal, Field(ge=0)] = Decimal("0.25")
    bins: int = Field(default=10, ge=2, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> StabilityParams:
        if self.warn_psi > self.fail_psi:
            raise ValueError("warn_psi must not exceed fail_psi")
        return self


class LatencyParams(GateParams):
    """p99 single-row scoring time (one thread by default, as a serving worker scores)."""

    kind: Literal["latency"] = Field(default="latency", exclude=True)
    max_p99_ms: Annotated[Decimal, Field(gt=0)] = Decimal("100")
    warn_p99_ms: Annotated[Decimal, Field(gt=0)] | None = None
    runs: int = Field(default=1000, ge=10, le=1_000_000)
    warmup: int = Field(default=50, ge=0)
    num_threads: int = Field(default=1, ge=1, le=256)


AnyGateParams = Annotated[
    PerformanceParams
    | FairnessParams
    | DataSchemaParams
    | ExplainabilityParams
    | StabilityParams
    | LatencyParams,
    Field(discriminator="kind"),
]


class GateSpec(_Strict):
    """One gate: a measurement with thresholds; blocking gates must pass.

    ``params`` is validated by the model of the gate's kind: an unknown key or
    a wrong type is refused, and the error names the key.
    """

    id: str = Field(min_length=1, pattern=r"^[a-z][a-z0-9_\-]*$")
    kind: GateKind
    blocking: bool = True
    params: AnyGateParams

    if TYPE_CHECKING:
        # What callers may pass: a mapping is validated into the kind's model.
        def __init__(
            self,
            *,
            id: str,
            kind: GateKind,
            blocking: bool = True,
            params: Mapping[str, Any] | GateParams | None = None,
        ) -> None: ...

    @model_validator(mode="before")
    @classmethod
    def _params_of_kind(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        params = data.get("params")
        if params is None:
            params = {}
        if isinstance(params, GateParams):
            params = params.model_dump()
        if not isinstance(params, dict):
            return data
        if "kind" in params:
            raise ValueError("params: 'kind' is not a parameter; the gate's kind applies")
        return {**data, "params": {**params, "kind": data.get("kind")}}


class SignoffRequirement(_Strict):
    role: Role
    count: int = Field(default=1, ge=1, le=10)


class SignoffRules(_Strict):
    required: list[SignoffRequirement] = Field(min_length=1)
    distinct_people: Literal[True] = True
    submitter_excluded: Literal[True] = True

    @field_validator("required")
    @classmethod
    def _unique_roles(cls, value: list[SignoffRequirement]) -> list[SignoffRequirement]:
        roles = [req.role for req in value]
        if len(set(roles)) != len(roles):
            raise ValueError("each role may appear once; raise its count instead")
        return value


class ScoringRules(_Strict):
    """How serving treats applicants the validation data did not cover.

    ``unseen_category``: a category the model never saw is refused (422
    naming the field and the value) or scored as missing, as LightGBM itself
    treats it. ``out_of_range``: a number outside the training range is
    scored (and flagged in its decision record) or refused.
    """

    unseen_category: Literal["refuse", "missing"] = "refuse"
    out_of_range: Literal["score", "refuse"] = "score"


class ServingRules(_Strict):
    """How long a fetched approval proof stays valid offline.

    ``max_proof_age_seconds`` bounds the window in which a response captured
    before a suspension (or retirement) is still accepted by the SDK: the
    server signs each response's standing with this expiry. One hour by
    default: a service fetches when it starts (the server must be reachable
    then anyway), so a short window costs nothing, and a suspended model
    stops loading anywhere within the hour.
    """

    max_proof_age_seconds: int = Field(default=3600, ge=60, le=7 * 86400)


class Policy(_Strict):
    """A versioned policy. ``digest`` is SHA-256 of its canonical form."""

    id: str = Field(min_length=1, pattern=r"^[a-z][a-z0-9_\-]*$")
    version: int = Field(ge=1)
    description: str = Field(min_length=1)
    decision_cutoff: Decimal = Field(gt=0, lt=1)
    revalidation_days: int = Field(ge=1, le=3660)
    decision_retention_days: int = Field(default=762, ge=1)
    scoring: ScoringRules = Field(default_factory=ScoringRules)
    serving: ServingRules | None = None
    gates: list[GateSpec] = Field(min_length=1)
    signoffs: SignoffRules

    @model_validator(mode="after")
    def _unique_gate_ids(self) -> Policy:
        ids = [gate.id for gate in self.gates]
        if len(set(ids)) != len(ids):
            raise ValueError(f"gate ids must be unique, got {ids}")
        return self

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    def canonical(self) -> dict[str, Any]:
        """JSON data with decimals as strings and no floats (hashable)."""
        data: dict[str, Any] = _no_floats(self.model_dump(mode="json"))
        if data.get("serving") is None:  # policies written before it keep their digest
            data.pop("serving", None)
        return data

    def canonical_bytes(self) -> bytes:
        from core.canonical import canonical_bytes

        return canonical_bytes(self.canonical())

    @property
    def digest(self) -> str:
        import hashlib

        return hashlib.sha256(self.canonical_bytes()).hexdigest()


def _no_floats(value: Any) -> Any:
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    if isinstance(value, dict):
        return {key: _no_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_no_floats(item) for item in value]
    return value
