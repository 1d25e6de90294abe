"""Fairness gate: four-fifths rule on approval rates and equalized odds, per protected group.

Decisions at the policy's cutoff: approved means predicted default < cutoff.
The gate measures each protected attribute and, when ``intersections`` is on
and there are several, the intersection of all of them, with numpy counts
only. A missing value of a protected attribute is a group of its own,
``"<missing>"``, measured (or excluded and listed) like any other group:
applicants who gave no answer are never dropped from the comparison.

Group limits. Each group is counted (rows, defaults, non-defaults) and
excluded from the statistics its sizes cannot support:

- fewer than ``min_group_size`` rows: excluded from every statistic;
- fewer than ``min_group_defaults`` defaults: excluded from the true
  positive rates (a rate over 3 defaults moves by a third per applicant);
- fewer than ``min_group_non_defaults`` non-defaults: excluded from the false
  positive rates.

Every excluded group is listed in ``details.attributes.<attr>.excluded_groups``
with its rows, defaults, non-defaults, the limits it missed and the
statistics it left, and is named in the message.

Statistics, over the groups that remain:

- the approval rate of each group and its adverse impact ratio (AIR): the
  group's rate over the reference group's rate (the declared reference
  group, else the group with the highest rate); equals aif360's
  ``disparate_impact`` with the group as unprivileged, the reference as
  privileged and "approved" as the favourable label;
- the equalized odds difference (EOD) of the decline decision (predicted
  default = declined) against the observed default: the larger of the
  between-group ranges of the true positive rates and of the false positive
  rates; with no group excluded it equals
  ``fairlearn.metrics.equalized_odds_difference``;
- confidence intervals of each AIR and of the EOD, at ``confidence``, from
  one seeded bootstrap per attribute (``bootstrap_samples`` replicates,
  ``numpy.random.default_rng(seed)`` shared by the attributes in order).
  The scheme is stratified by group: each replicate resamples every group's
  rows with replacement, so group sizes stay fixed. Resampling a group's
  rows is a multinomial draw of its four cells (default or not, declined or
  not), drawn as three binomials, each a ``groups x samples`` numpy array:
  defaults ~ B(rows, default rate), then declined defaults ~ B(defaults,
  true positive rate) and declined non-defaults ~ B(non-defaults, false
  positive rate). Both intervals come from the same replicates (approvals
  = rows - declined). Intervals are percentiles of the replicates; a
  replicate in which a compared rate is undefined (a group resampled with no
  defaults, a reference group with no approvals) is left out. A range
  widens with sampling noise, so the EOD interval sits above its point
  estimate: its upper end errs towards a warning.

Verdict per attribute, the worst one wins:

- ``failed`` if an AIR is below ``min_adverse_impact_ratio`` or the EOD is
  above ``max_equalized_odds_difference`` (point estimates);
- ``insufficient_data`` if a group of a declared attribute is excluded
  (never a silent pass: the other groups are still measured and can fail
  the gate), or if the exclusions leave an attribute or intersection fewer
  than two groups to compare for a statistic (or a declared reference group
  too small); excluded intersection groups alone are listed, not judged;
- ``warned`` if the point estimates pass but an AIR interval reaches below
  its threshold or the EOD interval above its threshold;
- else ``passed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
MISSING = "<missing>"
# The statistics a group can be excluded from, and the limit that guards each.
AIR, TPR, FPR = "adverse_impact_ratio", "true_positive_rate", "false_positive_rate"


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
    def non_defaults(self) -> IntArray:
        count: IntArray = self.rows - self.defaults
        return count

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
            rate: FloatArray = self.declined_non_defaults / self.non_defaults
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


@dataclass(frozen=True)
class Limits:
    """The policy's minimum sizes of a group, by what they count."""

    rows: int
    defaults: int
    non_defaults: int

    @property
    def named(self) -> dict[str, int]:
        return {
            "min_group_size": self.rows,
            "min_group_defaults": self.defaults,
            "min_group_non_defaults": self.non_defaults,
        }


@dataclass(frozen=True)
class Eligible:
    """Which groups of an attribute each statistic compares, and the excluded ones listed."""

    air: BoolArray
    tpr: BoolArray
    fpr: BoolArray
    excluded: list[dict[str, Any]]


def encode(attribute: str, values: Any) -> tuple[IntArray, list[str]]:
    """Integer codes of ``values`` (labels as strings, sorted) and the labels.

    Missing values (NaN, None, NA) are the group :data:`MISSING`.
    """
    import numpy as np
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(values, copy=False)
    missing = series.isna().to_numpy()
    # Text labels in pandas' own string type (factorized without a Python object per row).
    text = series.astype(str)
    if missing.any():
        if bool((text[~missing] == MISSING).any()):
            raise InputError(
                f"the protected attribute '{attribute}' has missing values and a group "
                f"labelled '{MISSING}': rename that group"
            )
        text = text.mask(missing, MISSING)
    codes, uniques = pd.factorize(text, sort=True)
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
        codes, labels = encode(attribute, frame[attribute])
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


def eligible_groups(counts: GroupCounts, limits: Limits) -> Eligible:
    """The groups each statistic may compare; every group that misses a limit, listed."""
    rows_ok = counts.rows >= limits.rows
    defaults_ok = counts.defaults >= limits.defaults
    non_defaults_ok = counts.non_defaults >= limits.non_defaults
    excluded: list[dict[str, Any]] = []
    for i, group in enumerate(counts.groups):
        missed = [
            name
            for name, ok in (
                ("min_group_size", rows_ok[i]),
                ("min_group_defaults", defaults_ok[i]),
                ("min_group_non_defaults", non_defaults_ok[i]),
            )
            if not ok
        ]
        if not missed:
            continue
        left = [AIR, TPR, FPR] if not rows_ok[i] else []
        if rows_ok[i] and not defaults_ok[i]:
            left.append(TPR)
        if rows_ok[i] and not non_defaults_ok[i]:
            left.append(FPR)
        excluded.append(
            {
                "group": group,
                "rows": int(counts.rows[i]),
                "defaults": int(counts.defaults[i]),
                "non_defaults": int(counts.non_defaults[i]),
                "missed": missed,
                "excluded_from": left,
            }
        )
    return Eligible(
        air=rows_ok,
        tpr=rows_ok & defaults_ok,
        fpr=rows_ok & non_defaults_ok,
        excluded=excluded,
    )


def describe_excluded(group: dict[str, Any], limits: Limits) -> str:
    """One excluded group as the message names it."""
    below = ", ".join(f"{name} {limits.named[name]}" for name in group["missed"])
    return (
        f"'{group['group']}' ({group['rows']} rows, {group['defaults']} defaults, "
        f"{group['non_defaults']} non-defaults; below {below})"
    )


def equalized_odds_difference(
    counts: GroupCounts, tpr_groups: BoolArray | None = None, fpr_groups: BoolArray | None = None
) -> tuple[float, float, float]:
    """(equalized odds difference, TPR range, FPR range) between the groups compared.

    ``tpr_groups`` / ``fpr_groups`` select the groups each range spans (default: all).
    """
    import numpy as np

    tpr = counts.tpr if tpr_groups is None else counts.tpr[tpr_groups]
    fpr = counts.fpr if fpr_groups is None else counts.fpr[fpr_groups]
    tpr_range = float(np.max(tpr) - np.min(tpr))
    fpr_range = float(np.max(fpr) - np.min(fpr))
    return max(tpr_range, fpr_range), tpr_range, fpr_range


@dataclass(frozen=True)
class Replicates:
    """Bootstrap replicate counts, one row per group, one column per replicate."""

    rows: IntArray  # (groups,)
    approved: IntArray  # (groups, samples), and likewise below
    defaults: IntArray
    declined_defaults: IntArray
    declined_non_defaults: IntArray


def bootstrap(counts: GroupCounts, *, samples: int, rng: Any) -> Replicates:
    """Replicates of a row resample within each group, drawn as binomial counts.

    The draws, in this order, each a ``(groups, samples)`` array:
    ``defaults = rng.binomial(rows, defaults / rows)``,
    ``declined_defaults = rng.binomial(defaults, tpr)``,
    ``declined_non_defaults = rng.binomial(rows - defaults, fpr)``
    (a rate with no rows under it is 0: nothing to draw).
    """
    import numpy as np

    rows = counts.rows
    k = rows.size
    tpr = np.nan_to_num(counts.tpr, nan=0.0)
    fpr = np.nan_to_num(counts.fpr, nan=0.0)
    defaults = rng.binomial(rows[:, None], (counts.defaults / rows)[:, None], size=(k, samples))
    declined_defaults = rng.binomial(defaults, tpr[:, None])
    declined_non_defaults = rng.binomial(rows[:, None] - defaults, fpr[:, None])
    approved = rows[:, None] - declined_defaults - declined_non_defaults
    return Replicates(
        rows=rows,
        approved=approved,
        defaults=defaults,
        declined_defaults=declined_defaults,
        declined_non_defaults=declined_non_defaults,
    )


def percentile_interval(replicates: FloatArray, confidence: float) -> tuple[FloatArray, FloatArray]:
    """Lower and upper percentiles of each row of ``replicates``, NaN replicates left out.

    A row with no finite replicate gets a NaN interval.
    """
    import numpy as np

    alpha = (1.0 - confidence) / 2.0
    low = np.full(replicates.shape[0], np.nan)
    high = np.full(replicates.shape[0], np.nan)
    some = ~np.isnan(replicates).all(axis=1)
    if some.any():
        low[some] = np.nanquantile(replicates[some], alpha, axis=1)
        high[some] = np.nanquantile(replicates[some], 1.0 - alpha, axis=1)
    return low, high


def air_replicates(replicates: Replicates, reference: int) -> FloatArray:
    """Each group's AIR in each replicate (NaN where the reference has no approvals)."""
    import numpy as np

    draws = replicates.approved / replicates.rows[:, None]
    ref = draws[reference]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios: FloatArray = np.where(ref > 0, draws / np.where(ref > 0, ref, 1.0), np.nan)
    return ratios


def eod_replicates(
    replicates: Replicates, tpr_groups: BoolArray, fpr_groups: BoolArray
) -> FloatArray:
    """The equalized odds difference of each replicate (NaN where a compared rate is undefined)."""
    import numpy as np

    defaults = replicates.defaults
    non_defaults = replicates.rows[:, None] - defaults
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = replicates.declined_defaults[tpr_groups] / defaults[tpr_groups]
        fpr = replicates.declined_non_defaults[fpr_groups] / non_defaults[fpr_groups]
    # max and min propagate NaN, so a replicate with an undefined rate is NaN.
    eod: FloatArray = np.maximum(
        tpr.max(axis=0) - tpr.min(axis=0), fpr.max(axis=0) - fpr.min(axis=0)
    )
    return eod


@dataclass
class Tally:
    """What the attributes add up to: verdicts, problems, notes and values."""

    verdicts: list[Verdict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)
    airs: list[float] = field(default_factory=list)
    eods: list[float] = field(default_factory=list)

    def add(self, verdict: Verdict, problem: str | None = None) -> None:
        self.verdicts.append(verdict)
        if problem is not None:
            self.problems.append(problem)


def _nullable(value: float, present: bool) -> str | None:
    return fmt(value) if present else None


def judge_attribute(
    counts: GroupCounts,
    *,
    declared: bool,
    params: FairnessParamsLike,
    limits: Limits,
    rng: Any,
    tally: Tally,
) -> dict[str, Any]:
    """Measure one attribute (or the intersection), add its verdicts; return its details."""
    import numpy as np

    name = counts.attribute
    min_air = params.min_adverse_impact_ratio
    max_eod = params.max_equalized_odds_difference
    eligible = eligible_groups(counts, limits)
    entry: dict[str, Any] = {"excluded_groups": eligible.excluded}
    if eligible.excluded:
        listed = ", ".join(describe_excluded(g, limits) for g in eligible.excluded)
        if declared:
            # The other groups are still measured: a failure among them fails.
            tally.add("insufficient_data", f"{name}: groups excluded (insufficient data): {listed}")
        else:
            tally.notes.append(f"{name}: groups excluded: {listed}")
    declared_ref = params.reference_groups.get(name)
    if declared_ref is not None and declared_ref not in counts.groups:
        raise InputError(f"reference group '{declared_ref}' of '{name}' is not in the data")
    kept = counts.select(eligible.air)
    tpr_in = eligible.tpr[eligible.air]
    fpr_in = eligible.fpr[eligible.air]
    if len(kept.groups) < 2:
        entry["note"] = "fewer than two groups to compare"
        tally.add(
            "insufficient_data",
            f"{name}: fewer than two groups of at least {limits.rows} rows to compare",
        )
        return entry
    samples = params.bootstrap_samples
    confidence = float(params.confidence)
    replicates = bootstrap(kept, samples=samples, rng=rng) if samples > 0 else None
    rates = kept.approval_rate

    # Adverse impact ratio against the reference group.
    reference: int | None = None
    if declared_ref is not None:
        if declared_ref in kept.groups:
            reference = kept.groups.index(declared_ref)
        else:
            tally.add(
                "insufficient_data",
                f"{name}: reference group '{declared_ref}' is too small to compare",
            )
    else:
        reference = int(np.argmax(rates))
    if reference is not None and rates[reference] == 0:
        tally.add("insufficient_data", f"{name}: the reference group has no approvals")
        reference = None
    k = len(kept.groups)
    air = np.full(k, np.nan)
    low = high = air
    if reference is not None:
        air = rates / rates[reference]
        if replicates is not None:
            low, high = percentile_interval(air_replicates(replicates, reference), confidence)
        else:
            low = high = air
        min_index = int(np.argmin(air))
        tally.airs.append(float(air[min_index]))
        tally.values[f"adverse_impact_ratio.{name}"] = fmt(float(air[min_index]))
        entry["reference_group"] = kept.groups[reference]
        entry["reference_declared"] = declared_ref is not None
        if dec(float(air[min_index])) < min_air:
            tally.add(
                "failed",
                f"{name}: adverse impact ratio {fmt(float(air[min_index]))} "
                f"('{kept.groups[min_index]}' vs '{kept.groups[reference]}') < {fmt(min_air)}",
            )
        else:
            low_ci = [
                g
                for i, g in enumerate(kept.groups)
                if i != reference and (np.isnan(low[i]) or dec(float(low[i])) < min_air)
            ]
            if low_ci:
                tally.add(
                    "warned",
                    f"{name}: AIR confidence interval reaches below {fmt(min_air)} "
                    f"for {', '.join(repr(g) for g in low_ci)}",
                )
            else:
                tally.add("passed")

    # Equalized odds difference over the groups each rate may compare.
    if int(tpr_in.sum()) < 2 or int(fpr_in.sum()) < 2:
        short = [
            f"{count} {limit}"
            for limit, count, enough in (
                ("defaults", limits.defaults, int(tpr_in.sum()) >= 2),
                ("non-defaults", limits.non_defaults, int(fpr_in.sum()) >= 2),
            )
            if not enough
        ]
        tally.add(
            "insufficient_data",
            f"{name}: fewer than two groups with at least {' and '.join(short)} "
            "to compare equalized odds",
        )
    else:
        eod, tpr_range, fpr_range = equalized_odds_difference(kept, tpr_in, fpr_in)
        if replicates is not None:
            eod_low, eod_high = percentile_interval(
                eod_replicates(replicates, tpr_in, fpr_in)[None, :], confidence
            )
            ci_low, ci_high = float(eod_low[0]), float(eod_high[0])
        else:
            ci_low = ci_high = eod
        tally.eods.append(eod)
        tally.values[f"equalized_odds_difference.{name}"] = fmt(eod)
        entry.update(
            {
                "equalized_odds_difference": fmt(eod),
                "eod_ci_low": fmt(ci_low),
                "eod_ci_high": fmt(ci_high),
                "tpr_difference": fmt(tpr_range),
                "fpr_difference": fmt(fpr_range),
            }
        )
        if dec(eod) > max_eod:
            tally.add(
                "failed",
                f"{name}: equalized odds difference {fmt(eod)} > {fmt(max_eod)}",
            )
        elif np.isnan(ci_high) or dec(ci_high) > max_eod:
            tally.add(
                "warned",
                f"{name}: equalized odds difference confidence interval "
                f"[{fmt(ci_low)}, {fmt(ci_high)}] reaches above {fmt(max_eod)}",
            )
        else:
            tally.add("passed")

    tpr, fpr = kept.tpr, kept.fpr
    entry["groups"] = [
        {
            "group": g,
            "rows": int(kept.rows[i]),
            "approved": int(kept.approved[i]),
            "defaults": int(kept.defaults[i]),
            "non_defaults": int(kept.non_defaults[i]),
            "approval_rate": fmt(float(rates[i])),
            "adverse_impact_ratio": _nullable(float(air[i]), reference is not None),
            "air_ci_low": _nullable(float(low[i]), reference is not None),
            "air_ci_high": _nullable(float(high[i]), reference is not None),
            "true_positive_rate": _nullable(float(tpr[i]), bool(tpr_in[i])),
            "false_positive_rate": _nullable(float(fpr[i]), bool(fpr_in[i])),
        }
        for i, g in enumerate(kept.groups)
    ]
    return entry


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
    limits = Limits(
        rows=params.min_group_size,
        defaults=params.min_group_defaults,
        non_defaults=params.min_group_non_defaults,
    )
    rng = np.random.default_rng(params.seed)
    tally = Tally()
    details: dict[str, Any] = {"cutoff": fmt(inputs.cutoff), "attributes": {}}
    for counts in all_counts:
        details["attributes"][counts.attribute] = judge_attribute(
            counts,
            declared=counts.attribute in attributes,
            params=params,
            limits=limits,
            rng=rng,
            tally=tally,
        )
    values = tally.values
    if tally.airs:
        values["min_adverse_impact_ratio"] = fmt(min(tally.airs))
    if tally.eods:
        values["max_equalized_odds_difference"] = fmt(max(tally.eods))
    verdict = worst(tally.verdicts)
    min_air = params.min_adverse_impact_ratio
    max_eod = params.max_equalized_odds_difference
    if verdict == "passed":
        summary = [
            f"adverse impact ratio {values['min_adverse_impact_ratio']} >= "
            f"{fmt(min_air)} and equalized odds difference "
            f"{values['max_equalized_odds_difference']} <= {fmt(max_eod)} "
            f"for {', '.join(c.attribute for c in all_counts)}"
        ]
        message = "; ".join(summary + tally.notes)
    else:
        message = "; ".join(tally.problems + tally.notes)
    thresholds = {
        "min_adverse_impact_ratio": fmt(min_air),
        "max_equalized_odds_difference": fmt(max_eod),
        **{name: str(limit) for name, limit in limits.named.items()},
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
