"""Performance gate: discrimination (AUC, KS, Gini), Brier score, calibration by decile,
and the ROC curve with its KS point and the score histograms by outcome.

AUC and KS come from one sort of the scores: within each run of tied scores
the positives and negatives are counted, AUC is the Mann-Whitney probability
with ties counted one half (equals ``sklearn.metrics.roc_auc_score``), KS is
the largest distance between the two empirical distribution functions
(equals ``scipy.stats.ks_2samp(...).statistic``).

:func:`curves` records what the report draws, so the report never scores the
model again: at most :data:`ROC_POINTS` points of the ROC curve (one per
distinct score, thinned evenly, the KS point always kept), the KS point itself
(fpr, tpr, ks = max(tpr - fpr), the score threshold: scores >= it are declined)
and the counts of scores per :data:`HIST_BINS` equal bins of [0, 1] by outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from validation.result import GateResult, Verdict, dec, fmt
from validation.spec import GateSpecLike, PerformanceParamsLike, params_of
from validation.versions import library_versions

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from validation.inputs import GateInputs

ROC_POINTS = 200
HIST_BINS = 20


@dataclass(frozen=True)
class Discrimination:
    auc: float
    ks: float
    positives: int
    negatives: int


@dataclass(frozen=True)
class _Runs:
    """The scores sorted once: each distinct score, ascending, and how many defaults
    and non-defaults score at most it."""

    score: npt.NDArray[np.float64]
    cum_pos: npt.NDArray[np.float64]
    cum_neg: npt.NDArray[np.float64]
    positives: int
    negatives: int


def _runs(y: npt.NDArray[np.int64], score: npt.NDArray[np.float64]) -> _Runs:
    import numpy as np

    from core.errors import InputError

    n = int(y.shape[0])
    positives = int(y.sum())
    negatives = n - positives
    if positives == 0 or negatives == 0:
        raise InputError("AUC and KS need both defaults and non-defaults in the validation data")
    order = np.argsort(score, kind="stable")
    sorted_score = score[order]
    # Last index of each run of equal scores.
    ends = np.flatnonzero(np.r_[sorted_score[1:] != sorted_score[:-1], True])
    cum_pos = np.cumsum(y[order])[ends].astype(np.float64)
    cum_neg = (ends + 1).astype(np.float64) - cum_pos
    return _Runs(sorted_score[ends], cum_pos, cum_neg, positives, negatives)


def discrimination(y: npt.NDArray[np.int64], score: npt.NDArray[np.float64]) -> Discrimination:
    """AUC and KS of ``score`` for labels ``y`` (1 = default), from one sort."""
    return _discrimination(_runs(y, score))


def _discrimination(runs: _Runs) -> Discrimination:
    import numpy as np

    positives, negatives = runs.positives, runs.negatives
    pos_in_run = np.diff(np.r_[0.0, runs.cum_pos])
    neg_in_run = np.diff(np.r_[0.0, runs.cum_neg])
    neg_below = runs.cum_neg - neg_in_run
    auc = float(np.sum(pos_in_run * (neg_below + 0.5 * neg_in_run)) / (positives * negatives))
    ks = float(np.max(np.abs(runs.cum_pos / positives - runs.cum_neg / negatives)))
    return Discrimination(auc=auc, ks=ks, positives=positives, negatives=negatives)


def curves(y: npt.NDArray[np.int64], score: npt.NDArray[np.float64]) -> dict[str, Any]:
    """ROC points, KS point and score histograms by outcome, as decimal strings and counts.

    The ROC points are those of ``sklearn.metrics.roc_curve(y, score,
    drop_intermediate=False)``: (0, 0), then one per distinct score from the
    highest down; at most :data:`ROC_POINTS` of them are kept, evenly spaced
    by index, with the first, the last and the KS point among them.
    """
    return _curves(_runs(y, score))


def _curves(runs: _Runs) -> dict[str, Any]:
    import numpy as np

    # From the highest score down: the defaults and non-defaults scoring at least it.
    tp = runs.positives - np.r_[0.0, runs.cum_pos[:-1]][::-1]
    fp = runs.negatives - np.r_[0.0, runs.cum_neg[:-1]][::-1]
    tpr = np.r_[0.0, tp] / runs.positives
    fpr = np.r_[0.0, fp] / runs.negatives
    threshold = np.r_[np.inf, runs.score[::-1]]
    gap = tpr - fpr
    k = int(np.argmax(gap))
    even = np.linspace(0, tpr.shape[0] - 1, min(ROC_POINTS - 1, tpr.shape[0])).astype(np.int64)
    pick = np.unique(np.r_[even, k])
    edges = np.linspace(0.0, 1.0, HIST_BINS + 1)
    # numpy.histogram of the scores by outcome, counted per distinct score
    defaults, _ = np.histogram(runs.score, bins=edges, weights=np.diff(np.r_[0.0, runs.cum_pos]))
    repaid, _ = np.histogram(runs.score, bins=edges, weights=np.diff(np.r_[0.0, runs.cum_neg]))
    return {
        "roc": [[fmt(float(fpr[i])), fmt(float(tpr[i]))] for i in pick],
        "ks": {
            "fpr": fmt(float(fpr[k])),
            "tpr": fmt(float(tpr[k])),
            "ks": fmt(float(gap[k])),
            "score": fmt(float(threshold[k])),
        },
        "histogram": {
            "edges": [fmt(float(e)) for e in edges],
            "defaults": [round(float(c)) for c in defaults],
            "repaid": [round(float(c)) for c in repaid],
        },
    }


def calibration_table(
    y: npt.NDArray[np.int64], score: npt.NDArray[np.float64], bins: int
) -> list[dict[str, Any]]:
    """Per score quantile bin: rows, mean predicted default, observed default rate."""
    import numpy as np

    edges = np.unique(np.quantile(score, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    index = np.searchsorted(edges, score, side="right")
    count = np.bincount(index, minlength=edges.size + 1)
    pred_sum = np.bincount(index, weights=score, minlength=edges.size + 1)
    obs_sum = np.bincount(index, weights=y.astype(np.float64), minlength=edges.size + 1)
    lower = np.r_[-np.inf, edges]
    upper = np.r_[edges, np.inf]
    table: list[dict[str, Any]] = []
    for i in range(edges.size + 1):
        if count[i] == 0:
            continue
        table.append(
            {
                "bin": i + 1,
                "score_from": fmt(float(lower[i])),
                "score_to": fmt(float(upper[i])),
                "rows": int(count[i]),
                "mean_predicted": fmt(float(pred_sum[i] / count[i])),
                "observed_rate": fmt(float(obs_sum[i] / count[i])),
            }
        )
    return table


def evaluate(spec: GateSpecLike, inputs: GateInputs) -> GateResult:
    """AUC >= min_auc and KS >= min_ks on the validation set (thresholds from params)."""
    import numpy as np

    params: PerformanceParamsLike = params_of(spec)
    y = inputs.y_validation
    score = inputs.pred_validation
    runs = _runs(y, score)
    disc = _discrimination(runs)
    brier = float(np.mean((score - y) ** 2))
    values = {
        "auc": fmt(disc.auc),
        "ks": fmt(disc.ks),
        "gini": fmt(2.0 * disc.auc - 1.0),
        "brier": fmt(brier),
        "default_rate": fmt(disc.positives / (disc.positives + disc.negatives)),
        "mean_predicted": fmt(float(np.mean(score))),
    }
    thresholds = {"min_auc": fmt(params.min_auc), "min_ks": fmt(params.min_ks)}
    problems: list[str] = []
    if dec(disc.auc) < params.min_auc:
        problems.append(f"AUC {values['auc']} < {thresholds['min_auc']}")
    if dec(disc.ks) < params.min_ks:
        problems.append(f"KS {values['ks']} < {thresholds['min_ks']}")
    warnings: list[str] = []
    if params.warn_auc is not None:
        thresholds["warn_auc"] = fmt(params.warn_auc)
        if dec(disc.auc) < params.warn_auc:
            warnings.append(f"AUC {values['auc']} < warning level {thresholds['warn_auc']}")
    if params.warn_ks is not None:
        thresholds["warn_ks"] = fmt(params.warn_ks)
        if dec(disc.ks) < params.warn_ks:
            warnings.append(f"KS {values['ks']} < warning level {thresholds['warn_ks']}")
    verdict: Verdict
    if problems:
        verdict, message = "failed", "; ".join(problems)
    elif warnings:
        verdict, message = "warned", "; ".join(warnings)
    else:
        verdict = "passed"
        message = (
            f"AUC {values['auc']} >= {thresholds['min_auc']}, "
            f"KS {values['ks']} >= {thresholds['min_ks']}"
        )
    details = {
        "rows": disc.positives + disc.negatives,
        "defaults": disc.positives,
        "calibration": calibration_table(y, score, params.calibration_bins),
        "curves": _curves(runs),
    }
    return GateResult(
        gate_id=spec.id,
        kind=spec.kind,
        verdict=verdict,
        blocking=spec.blocking,
        values=values,
        thresholds=thresholds,
        details=details,
        library_versions=library_versions("lightgbm"),
        message=message,
    )
