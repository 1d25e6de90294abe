"""Score applicants with an approved model: probability, decision, principal reasons.

Input rows are checked against the version's recorded input schema before
anything is scored: every model feature present, no unknown field, a finite
number (``null`` only where the training data had nulls), and inside the
range the data-schema gate recorded (the model was validated there and
nowhere else). A batch with one bad row is refused whole, naming each bad
field.

Decisions follow the policy's cutoff as the gates did: approve when the
probability of default is below the cutoff, decline otherwise. A decline
carries up to four principal reasons: the features whose contributions
(``Booster.predict(..., pred_contrib=True)``, the model's own TreeSHAP
values) pushed the score furthest towards default, largest first, each with
the reason text of the submission.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.clock import parse
from core.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from serving.approval import Approval

MAX_REASONS = 4
MAX_PROBLEMS = 20


@dataclass(frozen=True)
class FieldSpec:
    name: str
    minimum: float | None
    maximum: float | None
    nullable: bool


def field_specs(features: Sequence[str], suite: Mapping[str, Any] | None) -> list[FieldSpec]:
    """One spec per model feature from a GX suite (JSON form); no suite, no ranges."""
    bounds: dict[str, tuple[float | None, float | None]] = {}
    nullable: set[str] = set()
    strict_nulls: set[str] = set()
    for expectation in (suite or {}).get("expectations", []):
        kind, kwargs = expectation.get("type"), expectation.get("kwargs", {})
        column = kwargs.get("column")
        if kind == "expect_column_values_to_be_between":
            lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
            bounds[column] = (
                None if lo is None else float(lo),
                None if hi is None else float(hi),
            )
        elif kind == "expect_column_values_to_not_be_null":
            if kwargs.get("mostly", 1) < 1:
                nullable.add(column)
            else:
                strict_nulls.add(column)
    specs = []
    for name in features:
        lo, hi = bounds.get(name, (None, None))
        specs.append(FieldSpec(name, lo, hi, name in nullable and name not in strict_nulls))
    return specs


@dataclass(frozen=True)
class Reason:
    feature: str
    text: str
    contribution: float


@dataclass(frozen=True)
class Scored:
    probability_of_default: float
    decision: str
    reasons: list[Reason]


class Scorer:
    """An approved model, parsed from the approved bytes, ready to score."""

    def __init__(self, approval: Approval, booster: Any) -> None:
        self.approval = approval
        self.booster = booster
        self.model = approval.model
        self.version = approval.version
        self.approval_seq = approval.approval_seq
        self.artifact_digest = approval.artifact_digest
        self.cutoff = float(approval.cutoff)
        self.revalidate_by: datetime = parse(approval.revalidate_by)
        self.features = list(approval.features)
        self.specs = field_specs(self.features, approval.schema_suite)
        self._known = frozenset(self.features)
        self._texts = {f: approval.reason_texts.get(f, f) for f in self.features}

    def matrix(self, rows: Sequence[Any], *, where: str = "applicants") -> npt.NDArray[np.float64]:
        """The rows as a float matrix in feature order; InputError naming every bad field."""
        import numpy as np

        x = np.empty((len(rows), len(self.specs)), dtype=np.float64)
        problems: list[str] = []
        for i, row in enumerate(rows):
            at = f"{where}[{i}]"
            if not isinstance(row, Mapping):
                problems.append(f"{at}: must be an object of feature values")
                continue
            for name in row:
                if name not in self._known:
                    problems.append(
                        f"{at}.{name}: unknown field; the model takes only its features"
                    )
            for j, spec in enumerate(self.specs):
                value = row.get(spec.name, _MISSING)
                if value is _MISSING:
                    problems.append(f"{at}.{spec.name}: missing")
                elif value is None:
                    if not spec.nullable:
                        problems.append(
                            f"{at}.{spec.name}: null, but the model was validated "
                            "without nulls here"
                        )
                    x[i, j] = math.nan
                elif isinstance(value, bool) or not isinstance(value, int | float):
                    problems.append(f"{at}.{spec.name}: must be a number, got {value!r}")
                elif not math.isfinite(value):
                    problems.append(f"{at}.{spec.name}: must be finite, got {value!r}")
                elif (spec.minimum is not None and value < spec.minimum) or (
                    spec.maximum is not None and value > spec.maximum
                ):
                    problems.append(
                        f"{at}.{spec.name}: {value!r} is outside the validated range "
                        f"{spec.minimum:g}..{spec.maximum:g}"
                    )
                else:
                    x[i, j] = value
            if len(problems) >= MAX_PROBLEMS:
                break
        if not rows:
            problems.append(f"{where}: give at least one applicant")
        if problems:
            shown = problems[:MAX_PROBLEMS]
            more = "" if len(problems) <= MAX_PROBLEMS else " (and more)"
            raise InputError("; ".join(shown) + more)
        return x

    def probabilities(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        import numpy as np

        return np.asarray(self.booster.predict(x), dtype=np.float64)

    def reasons(self, x: npt.NDArray[np.float64]) -> list[list[Reason]]:
        """The principal reasons of every row (largest contribution towards default first)."""
        import numpy as np

        contrib = np.asarray(self.booster.predict(x, pred_contrib=True), dtype=np.float64)
        out = []
        for row in contrib[:, : len(self.features)]:
            order = np.argsort(-row, kind="stable")
            out.append(
                [
                    Reason(self.features[j], self._texts[self.features[j]], float(row[j]))
                    for j in order[:MAX_REASONS]
                    if row[j] > 0
                ]
            )
        return out

    def score(self, rows: Sequence[Any]) -> list[Scored]:
        x = self.matrix(rows)
        p = self.probabilities(x)
        declined = [i for i in range(len(p)) if p[i] >= self.cutoff]
        reasons = dict(zip(declined, self.reasons(x[declined]), strict=True)) if declined else {}
        return [
            Scored(
                probability_of_default=float(p[i]),
                decision="decline" if i in reasons else "approve",
                reasons=reasons.get(i, []),
            )
            for i in range(len(p))
        ]


class _Missing:
    pass


_MISSING: Any = _Missing()
