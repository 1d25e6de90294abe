"""Why serving refuses a model.

``LoadRefused`` names the check that failed, in the loader's order:

1. ``status``: not approved, or suspended, retired, rejected, past its
   revalidation date;
2. ``gates`` / ``signoffs``: a blocking gate did not pass under the recorded
   policy, or the required sign-offs on the approved evidence are incomplete;
3. ``checkpoint``: the approval (or a later change of the version) is not
   covered by a checkpoint signed by the pinned public key;
4. ``file`` / ``digest``: the artifact is missing, a symlink, not a regular
   file or too large, or its bytes differ from the approved digest;
5. ``format``: the bytes are not a LightGBM native text model (pickles and
   other code-carrying formats are never parsed);
6. ``contract``: the recorded data contract (or, for a version submitted
   before contracts were recorded, its schema suite) does not describe the
   model's features: other names, another kind, other categories, or a
   malformed record;

plus ``proof`` for an approval proof (from the fetch endpoint) that does not
verify offline.
"""

from __future__ import annotations

from enum import StrEnum

from core.errors import GovregError, IntegrityError


class Check(StrEnum):
    STATUS = "status"
    GATES = "gates"
    SIGNOFFS = "signoffs"
    CHECKPOINT = "checkpoint"
    FILE = "file"
    DIGEST = "digest"
    FORMAT = "format"
    PROOF = "proof"
    CONTRACT = "contract"


class LoadRefused(IntegrityError):
    """The model may not be served; ``check`` says which check failed."""

    problem_type = "model-not-servable"  # status and exit code: IntegrityError's

    def __init__(self, check: Check, subject: str, detail: str) -> None:
        super().__init__(f"refused to serve {subject}: {check} check failed: {detail}")
        self.check = check
        self.subject = subject
        self.detail = detail


class DecisionLogError(GovregError):
    """The decision log cannot take or make durable a decision (closed, full,
    the database unreachable for longer than the caller waits): nothing of the
    request was recorded; try again later. No exit code of its own (1): no
    command raises it, the inference API answers it with 503. Here, not in
    serving.decisions, so that a client that reads problem documents knows it
    without importing the decision log."""

    http_status = 503
    problem_type = "decision-log-unavailable"
