"""Input and output models of the HTTP API.

Input models forbid unknown fields, so a client can never set ``status``,
``approved_by`` or a digest (mass assignment).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from registry.roles import Role
from registry.services import NAME_RE


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


REASONS = "JSON object: feature -> reason text, or -> {default, categories: {category: text}}"


class ReasonsByCategory(_In):
    """A categorical feature's reason texts: a default and texts per category."""

    default: str
    categories: dict[str, str] = Field(default_factory=dict)


NAME = NAME_RE.pattern  # names as the registry accepts them
POLICY_REF = r"^[a-z][a-z0-9_\-]{0,99}(@[1-9][0-9]{0,8})?$"  # id or id@version
# at least one character that is not white space by any of the definitions in
# play: Python's str.strip (the service), Rust's regex (pydantic) and ECMA-262
# (the document's readers)
CUTOFF = (
    "optional, kept for scripts: must equal the policy's decision_cutoff (0.50 for 0.5); "
    "another cutoff is refused (422): it needs a policy version with that decision_cutoff"
)
TEXT = r"[^\s\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"


class PersonCreate(_In):
    id: str = Field(pattern=NAME, description="the person's id, e.g. an employee number")
    display: str = Field(min_length=1, max_length=200, description="how the person is shown")


class PersonOut(BaseModel):
    id: str
    display: str
    created_at: str
    created_by: str


class PrincipalCreate(_In):
    name: str = Field(pattern=NAME)
    role: Role
    person: str = Field(pattern=NAME, description="the person it belongs to (POST /v1/persons)")
    models: list[Annotated[str, Field(pattern=NAME)]] | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="the models a service principal may score and fetch; "
        "required for the service role, refused for the others",
    )
    expires_at: AwareDatetime | None = Field(
        default=None, description="with its time zone, e.g. 2030-01-31T00:00:00Z"
    )


class PrincipalPublic(BaseModel):
    name: str
    role: str
    person: str
    models: list[str] | None = None
    expires_at: str | None = None
    revoked_at: str | None = None


class PrincipalCreated(PrincipalPublic):
    api_key: str = Field(description="shown once; store it now")


class VersionByReference(_In):
    artifact: str = Field(
        description="path under the server's import folder, or an MLflow URI "
        "(runs:/<run_id>/<path> or models:/<name>/<version>) read from the server's "
        "tracking server"
    )
    train: str
    validation: str
    target: str
    protected: list[str] = Field(min_length=1)
    policy: str | None = Field(default=None, pattern=POLICY_REF)
    cutoff: str | None = Field(default=None, description=CUTOFF)
    reasons: dict[str, str | ReasonsByCategory] = Field(default_factory=dict)
    lineage: dict[str, Any] | None = Field(
        default=None, description="recorded as the version's lineage (no 'mlflow' key)"
    )


class VersionCreated(BaseModel):
    model: str
    version: int
    status: str


class EvaluationStart(_In):
    policy: str | None = Field(
        default=None, pattern=POLICY_REF, description="re-evaluate under id or id@version"
    )


class EvaluationStatus(BaseModel):
    model: str
    version: int
    evaluation: int
    state: Literal["running", "completed"]
    status: str


class SignoffCreate(_In):
    role: Literal["validator", "compliance_officer", "business_owner"]
    decision: Literal["approve", "reject"]
    comment: str = Field(min_length=1, max_length=4000, pattern=TEXT)


class AliasSet(_In):
    alias: str = Field(pattern=NAME)


class Reason(_In):
    reason: str = Field(min_length=1, max_length=4000, pattern=TEXT)


class StatusOut(BaseModel):
    model: str
    version: int
    status: str


class VerifyOut(BaseModel):
    ok: bool
    size: int
    root: str
    checkpoints: int
    anchors: int
    key_fingerprint: str
    warnings: list[str]


class EventOut(BaseModel):
    seq: int
    recorded_at: str
    type: str
    actor: str
    model: str | None
    version: int | None
    index: dict[str, Any]
    data: dict[str, Any]
    key_id: str
    leaf_hash: str
    chain_hash: str


class PolicyProposal(_In):
    policy: dict[str, Any] = Field(description="the policy in its YAML/JSON form")


class PolicyApproval(_In):
    comment: str = Field(min_length=1, max_length=4000, pattern=TEXT)


class ScoreRequest(_In):
    applicants: list[Any] = Field(
        min_length=1,
        max_length=10_000,
        description=(
            "one object per applicant: feature name -> a number, a category string, or "
            "null where the training data had missing values; each applicant is checked "
            "and answered on its own"
        ),
    )


class ReasonOut(BaseModel):
    feature: str
    reason: str
    value: str | int | float | bool | None = Field(
        description="the applicant's value that counted: the category, the number, "
        "or null for a missing value"
    )
    contribution: str


class ScoredOut(BaseModel):
    decision_id: str = Field(
        description="the decision log's id of this decision (32 hex digits), by which "
        "outcomes and overrides name it"
    )
    probability_of_default: str
    decision: Literal["approve", "decline"]
    reasons: list[ReasonOut]
    flags: dict[str, list[str]] = Field(
        description="features scored outside what the model was validated on: "
        "out_of_range (a number outside the training range), unseen_category "
        "(a category the model never saw, scored as missing)"
    )


class RefusedOut(BaseModel):
    error: str = Field(description="what to fix, naming each bad field")
    fields: list[str]


class ScoreOut(BaseModel):
    model: str
    version: int
    alias: str
    approval_seq: int
    artifact_digest: str
    cutoff: str
    results: list[ScoredOut | RefusedOut] = Field(
        description="one per applicant, in order: a decision, or the applicant's error"
    )


class ApprovedArtifact(BaseModel):
    model: str
    version: int
    artifact_digest: str
    artifact_base64: str
    proof: dict[str, Any]
    scoring: dict[str, Any]


class ReasonValue(_In):
    feature: str = Field(max_length=1000)
    value: str | int | float | bool | None


class PostedDecision(_In):
    """One decision a remote scorer made, as its sink posts it."""

    inputs: dict[str, Any] = Field(description="the applicant as scored")
    score: str = Field(max_length=40, description="probability of default, a decimal string")
    decision: Literal["approve", "decline"]
    reasons: list[Annotated[str, Field(max_length=4000)]] = Field(max_length=4)
    flags: dict[str, list[Annotated[str, Field(max_length=1000)]]] = Field(
        default_factory=dict, max_length=2
    )
    reason_values: list[ReasonValue] = Field(default_factory=list, max_length=4)


class DecisionsPost(_In):
    version: int = Field(ge=1, le=2**31 - 1, description="the version that decided")
    approval_seq: int = Field(ge=1, le=2**53 - 1, description="the approval it was served under")
    decisions: list[PostedDecision] = Field(
        min_length=1,
        max_length=10_000,
        description="one per decided applicant; all are recorded, or none",
    )


class DecisionsRecorded(BaseModel):
    model: str
    version: int
    alias: str
    approval_seq: int
    recorded: int
    decision_ids: list[str] = Field(description="the recorded decisions' ids, in order")
