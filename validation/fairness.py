"""Fairness gate: four-fifths rule on approval rates and equalized odds, per protected group.

Decisions at the policy's cutoff: approved means predicted default < cutoff.
For each protected attribute (and, when ``intersections`` is on, the
intersection of all of them, keeping only groups of at least
``min_group_size`` rows) the gate computes, with numpy counts only:

- the approval rate of each group and its adverse impact ratio (AIR): the
  group's rate over the reference group's rate (the declared reference
  group, else the group with the highest rate); equals aif360's
  ``disparate_impact`` with the group as unprivileged, the reference as
  privileged and "approved" as the favourable label;
- a confidence interval of each AIR from a seeded stratified bootstrap:
  rows are resampled within each group, which for a rate is exactly a
  binomial draw of the group's approvals, so the replicates are drawn as
  binomial counts (no row resampling);
- the equalized odds difference of the decline decision (predicted default =
  declined) against the observed default: the larger of the between-group
  ranges of the true positive and the false positive rates; equals
  ``fairlearn.metrics.equalized_odds_difference``.

Verdict: ``failed`` if any AIR is below ``min_adverse_impact_ratio`` or any
equalized odds difference above ``max_equalized_odds_difference``;
``insufficient_data`` if a group of a declared attribute is smaller than
``min_group_size`` or lacks defaults or non-defaults (never a silent pass;
the other groups are still measured and can fail the gate);
``warned`` if every AIR passes but a confidence interval reaches below the
threshold; else ``passed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import InputError
from validation.result import GateResult, Verdict, dec, fmt, worst
from validation.spec import FairnessParamsLike, GateSpecLike, params_of
from validation.versions import library_versions

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    from validation.inputs import GateInputs

    IntArray = npt.NDArray[np.int64]
    FloatArray = npt.NDArray[np.float64]
    BoolArray = npt.NDArray[np.bool_]

INTERSECTION_SEPARATOR = "|"


@dataclass(frozen=True)
class GroupCounts:
    """Counts per group of one attribute (groups sorted by label)."""

    attribute: str
    groups: list[str]
    rows: IntArray
    approved: IntArray
    defaults: IntArray
    declined_defaults: IntArray  # true positives of the decline decision
    declined_non_defaults: IntArray  # false positives of the decline decision

    @property
    def approval_rate(self) -> FloatArray:
        rate: FloatArray = self.approved / self.rows
        return rate

    @property
    def tpr(self) -> FloatArray:
        import numpy as np

        with np.errstate(divide="ignore", invalid="ignore"):
            rate: FloatArray = self.declined_defaults / self.defaults
        return rate

    @property
    def fpr(self) -> FloatArray:
        import numpy as np

        with np.errstate(divide="ignore", invalid="ignore"):
            rate: FloatArray = self.declined_non_defaults / (self.rows - self.defaults)
        return rate

    def select(self, keep: BoolArray) -> GroupCounts:
        return GroupCounts(
            attribute=self.attribute,
            groups=[g for g, k in zip(self.groups, keep.tolist(), strict=True) if k],
            rows=self.rows[keep],
            approved=self.approved[keep],
            defaults=self.defaults[keep],
            declined_defaults=self.declined_defaults[keep],
            declined_non_defaults=self.declined_non_defaults[keep],
        )


def encode(values: Any) -> tuple[IntArray, list[str]]:
    """Integer codes of ``values`` (labels as strings, sorted) and the labels."""
    import numpy as np
    import pandas as pd

    series = pd.Series(values, copy=False)
    if series.isna().any():
        raise InputError("a protected attribute has missing values; declare them as a group")
    codes, uniques = pd.factorize(series.astype(str), sort=True)
    return np.asarray(codes, dtype=np.int64), [str(u) for u in uniques]


def count_groups(
    attribute: str,
    codes: IntArray,
    labels: list[str],
    y: IntArray,
    approved: BoolArray,
) -> GroupCounts:
    """Per-group counts from integer codes (one ``bincount`` per quantity)."""
    import numpy as np

    k = len(labels)
    declined = ~approved
    ydef = y.astype(bool)
    return GroupCounts(
        attribute=attribute,
        groups=list(labels),
        rows=np.bincount(codes, minlength=k),
        approved=np.bincount(codes[approved], minlength=k),
        defaults=np.bincount(codes[ydef], minlength=k),
        declined_defaults=np.bincount(codes[declined & ydef], minlength=k),
        declined_non_defaults=np.bincount(codes[declined & ~ydef], minlength=k),
    )


def attribute_counts(
    frame: pd.DataFrame,
    attributes: list[str],
    y: IntArray,
    approved: BoolArray,
    *,
    intersections: bool = True,
) -> list[GroupCounts]:
    """Counts for each attribute and, if asked and there are several, their intersection."""
    import numpy as np

    encoded: list[tuple[IntArray, list[str]]] = []
    result: list[GroupCounts] = []
    for attribute in attributes:
        if attribute not in frame.columns:
            raise InputError(f"the validation data lacks the protected attribute '{attribute}'")
        codes, labels = encode(frame[attribute].to_numpy())
        encoded.append((codes, labels))
        result.append(count_groups(attribute, codes, labels, y, approved))
    if intersections and len(attributes) > 1:
        combined = np.zeros(y.shape[0], dtype=np.int64)
        for codes, labels in encoded:
            combined = combined * len(labels) + codes
        present, inverse = np.unique(combined, return_inverse=True)
        names: list[str] = []
        for code in present.tolist():
            parts: list[str] = []
            rest = code
            for _codes, labels in reversed(encoded):
                rest, index = divmod(rest, len(labels))
                parts.append(labels[index])
            names.append(INTERSECTION_SEPARATOR.join(reversed(parts)))
        name = INTERSECTION_SEPARATOR.join(attributes)
        result.append(count_groups(name, inverse.astype(np.int64), names, y, approved))
    return result


def equalized_odds_difference(counts: GroupCounts) -> tuple[float, float, float]:
    """(equalized odds difference, TPR range, FPR range) between the groups."""
    import numpy as np

    tpr = counts.tpr
    fpr = counts.fpr
    tpr_range = float(np.max(tpr) - np.min(tpr))
    fpr_range = float(np.max(fpr) - np.min(fpr))
    return max(tpr_range, fpr_range), tpr_range, fpr_range


def bootstrap_air(
    counts: GroupCounts, reference: int, *, samples: int, confidence: float, rng: Any
) -> tuple[FloatArray, FloatArray]:
    """Lower and upper bootstrap bounds of each group's AIR against group ``reference``."""
    import numpy as np

    rows = counts.rows
    rate = counts.approval_rate
    draws = rng.binomial(rows[:, None], rate[:, None], size=(rows.size, samples)) / rows[:, None]
    ref = draws[reference]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(ref > 0, draws / np.where(ref > 0, ref, 1.0), np.nan)
    alpha = (1.0 - confidence) / 2.0
    low = np.nanquantile(ratios, alpha, axis=1)
    high = np.nanquantile(ratios, 1.0 - alpha, axis=1)
    return low, high


def evaluate(spec: GateSpecLike, inputs: GateInputs) -> GateResult:
    """Adverse impact ratio and equalized odds for each protected attribute."""
    import numpy as np

    params: FairnessParamsLike = params_of(spec)
    attributes = list(params.protected) or list(inputs.protected)
    if not attributes:
        raise InputError("no protected attributes declared: the fairness gate cannot be skipped")
    cutoff = float(inputs.cutoff)
    y = inputs.y_validation
    approved = inputs.pred_validation < cutoff
    all_counts = attribute_counts(
        inputs.validation, attributes, y, approved, intersections=params.intersections
    )
    rng = np.random.default_rng(params.seed)
    min_air_threshold = params.min_adverse_impact_ratio
    max_eod_threshold = params.max_equalized_odds_difference
    verdicts: list[Verdict] = []
    problems: list[str] = []
    values: dict[str, str] = {}
    details: dict[str, Any] = {"cutoff": fmt(inputs.cutoff), "attributes": {}}
    airs: list[float] = []
    eods: list[float] = []
    for counts in all_counts:
        declared = counts.attribute in attributes
        enough = (
            (counts.rows >= params.min_group_size)
            & (counts.defaults > 0)
            & (counts.defaults < counts.rows)
        )
        small = [
            {"group": g, "rows": int(n), "defaults": int(d)}
            for g, n, d, ok in zip(
                counts.groups, counts.rows, counts.defaults, enough.tolist(), strict=True
            )
            if not ok
        ]
        entry: dict[str, Any] = {"excluded_groups": small}
        details["attributes"][counts.attribute] = entry
        if small and declared:
            verdicts.append("insufficient_data")
            names = ", ".join(f"'{s['group']}' ({s['rows']} rows)" for s in small)
            problems.append(
                f"{counts.attribute}: groups below {params.min_group_size} rows or without "
                f"both outcomes: {names}"
            )
            # The large enough groups are still measured: a failure among them fails.
        kept = counts.select(enough)
        if len(kept.groups) < 2:
            entry["note"] = "fewer than two groups large enough"
            if declared and not small:
                verdicts.append("insufficient_data")
                problems.append(f"{counts.attribute}: fewer than two groups to compare")
            continue
        rates = kept.approval_rate
        declared_ref = params.reference_groups.get(counts.attribute)
        if declared_ref is not None:
            if declared_ref not in counts.groups:
                raise InputError(
                    f"reference group '{declared_ref}' of '{counts.attribute}' is not in the data"
                )
            if declared_ref not in kept.groups:
                verdicts.append("insufficient_data")
                problems.append(
                    f"{counts.attribute}: reference group '{declared_ref}' is too small to compare"
                )
                continue
            reference = kept.groups.index(declared_ref)
        else:
            reference = int(np.argmax(rates))
        if rates[reference] == 0:
            verdicts.append("insufficient_data")
            problems.append(f"{counts.attribute}: the reference group has no approvals")
            continue
        air = rates / rates[reference]
        if params.bootstrap_samples > 0:
            low, high = bootstrap_air(
                kept,
                reference,
                samples=params.bootstrap_samples,
                confidence=float(params.confidence),
                rng=rng,
            )
        else:
            low = high = air
        eod, tpr_range, fpr_range = equalized_odds_difference(kept)
        min_index = int(np.argmin(air))
        min_air = float(air[min_index])
        airs.append(min_air)
        eods.append(eod)
        values[f"adverse_impact_ratio.{counts.attribute}"] = fmt(min_air)
        values[f"equalized_odds_difference.{counts.attribute}"] = fmt(eod)
        entry.update(
            {
                "reference_group": kept.groups[reference],
                "reference_declared": declared_ref is not None,
                "equalized_odds_difference": fmt(eod),
                "tpr_difference": fmt(tpr_range),
                "fpr_difference": fmt(fpr_range),
                "groups": [
                    {
                        "group": g,
                        "rows": int(kept.rows[i]),
                        "approved": int(kept.approved[i]),
                        "defaults": int(kept.defaults[i]),
                        "approval_rate": fmt(float(rates[i])),
                        "adverse_impact_ratio": fmt(float(air[i])),
                        "air_ci_low": fmt(float(low[i])),
                        "air_ci_high": fmt(float(high[i])),
                        "true_positive_rate": fmt(float(kept.tpr[i])),
                        "false_positive_rate": fmt(float(kept.fpr[i])),
                    }
                    for i, g in enumerate(kept.groups)
                ],
            }
        )
        failed = False
        if dec(min_air) < min_air_threshold:
            failed = True
            problems.append(
                f"{counts.attribute}: adverse impact ratio {fmt(min_air)} "
                f"('{kept.groups[min_index]}' vs '{kept.groups[reference]}') "
                f"< {fmt(min_air_threshold)}"
            )
        if dec(eod) > max_eod_threshold:
            failed = True
            problems.append(
                f"{counts.attribute}: equalized odds difference {fmt(eod)} "
                f"> {fmt(max_eod_threshold)}"
            )
        if failed:
            verdicts.append("failed")
            continue
        low_ci = [
            g
            for i, g in enumerate(kept.groups)
            if i != reference and dec(float(low[i])) < min_air_threshold
        ]
        if low_ci:
            verdicts.append("warned")
            problems.append(
                f"{counts.attribute}: AIR confidence interval reaches below "
                f"{fmt(min_air_threshold)} for {', '.join(repr(g) for g in low_ci)}"
            )
        else:
            verdicts.append("passed")
    if airs:
        values["min_adverse_impact_ratio"] = fmt(min(airs))
        values["max_equalized_odds_difference"] = fmt(max(eods))
    verdict = worst(verdicts)
    if verdict == "passed":
        message = (
            f"adverse impact ratio {values['min_adverse_impact_ratio']} >= "
            f"{fmt(min_air_threshold)} and equalized odds difference "
            f"{values['max_equalized_odds_difference']} <= {fmt(max_eod_threshold)} "
            f"for {', '.join(c.attribute for c in all_counts)}"
        )
    else:
        message = "; ".join(problems)
    thresholds = {
        "min_adverse_impact_ratio": fmt(min_air_threshold),
        "max_equalized_odds_difference": fmt(max_eod_threshold),
        "min_group_size": str(params.min_group_size),
        "confidence": fmt(params.confidence),
    }
    details["bootstrap_samples"] = params.bootstrap_samples
    details["seed"] = params.seed
    return GateResult(
        gate_id=spec.id,
        kind=spec.kind,
        verdict=verdict,
        blocking=spec.blocking,
        values=values,
        thresholds=thresholds,
        details=details,
        library_versions=library_versions("lightgbm", "pandas"),
        message=message,
    )
