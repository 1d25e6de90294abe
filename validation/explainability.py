"""Explainability gate: global importance, declared monotone relations, reason texts.

1. Global importance is the mean absolute SHAP value per feature on a seeded
   sample of ``importance_rows`` validation rows, from LightGBM's own
   TreeSHAP (``Booster.predict(X, pred_contrib=True)``, raw-score units; it
   equals ``shap.TreeExplainer``).
2. Each declared monotone relation (``increasing``: predicted default must not
   fall when the feature rises; ``decreasing``: must not rise) is checked by
   sweeping the feature over a grid of its training quantiles (1 % to 99 %,
   ``grid_points`` values) for ``monotone_rows`` sampled validation rows. A
   row violates the relation when any step moves the prediction the wrong way
   by more than 1e-12; the share of violating rows must not exceed
   ``max_monotone_violation_rate``.
3. Every feature the model uses (at least one split) needs a reason text
   (adverse action notices state reasons the model actually scored), from the
   submission's ``reason_texts`` or the policy's.

For a categorical feature, the mean contribution of each category (over the
sampled rows holding it) is recorded too; monotone relations are declared on
numeric features only (one declared on a categorical feature fails). A
declared monotone feature the model does not use only warns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.errors import InputError
from validation import reasons
from validation.result import GateResult, Verdict, dec, fmt, worst
from validation.spec import ExplainabilityParamsLike, GateSpecLike, params_of
from validation.versions import library_versions

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from validation.contract import DataContract
    from validation.inputs import GateInputs

TOLERANCE = 1e-12


def sample_rows(n_rows: int, size: int, seed: int) -> npt.NDArray[np.int64]:
    """Sorted indices of a seeded sample without replacement (all rows if fewer)."""
    import numpy as np

    if size >= n_rows:
        return np.arange(n_rows, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_rows, size=size, replace=False)).astype(np.int64)


def contributions(
    booster: Any, x: npt.NDArray[np.float64], contract: DataContract
) -> tuple[npt.NDArray[np.float64], dict[str, list[dict[str, Any]]]]:
    """Mean |SHAP| per feature from LightGBM's TreeSHAP (bias column dropped), and for
    each categorical feature the mean contribution and row count of each category
    (missing values as ``<missing>``), in the model's category order."""
    import numpy as np

    contrib = np.asarray(booster.predict(x, pred_contrib=True), dtype=np.float64)[:, :-1]
    importance: npt.NDArray[np.float64] = np.abs(contrib).mean(axis=0)
    by_category: dict[str, list[dict[str, Any]]] = {}
    for j, feature in enumerate(contract.features):
        if not feature.categorical:
            continue
        codes = x[:, j]
        rows = []
        labels = [*feature.categories, "<missing>"]
        for code, label in enumerate(labels):
            held = np.isnan(codes) if label == "<missing>" else codes == code
            count = int(held.sum())
            if count:
                rows.append(
                    {
                        "category": str(label),
                        "rows": count,
                        "mean_contribution": fmt(float(contrib[held, j].mean())),
                    }
                )
        by_category[feature.name] = rows
    return importance, by_category


def monotone_violations(
    booster: Any,
    rows: npt.NDArray[np.float64],
    column: int,
    grid: npt.NDArray[np.float64],
    direction: str,
) -> tuple[int, float]:
    """(rows violating the relation, largest wrong-way step) for one feature."""
    import numpy as np

    n, k = rows.shape[0], grid.shape[0]
    swept = np.repeat(rows, k, axis=0)
    swept[:, column] = np.tile(grid, n)
    pred = np.asarray(booster.predict(swept), dtype=np.float64).reshape(n, k)
    steps = np.diff(pred, axis=1)
    wrong = -steps if direction == "increasing" else steps
    worst_step = float(max(0.0, float(wrong.max()))) if wrong.size else 0.0
    return int(np.count_nonzero((wrong > TOLERANCE).any(axis=1))), worst_step


def evaluate(spec: GateSpecLike, inputs: GateInputs) -> GateResult:
    """Importance, monotone relations and reason texts of the candidate model."""
    import numpy as np

    params: ExplainabilityParamsLike = params_of(spec)
    booster = inputs.booster
    features = inputs.features
    x_valid = inputs.x_validation
    splits = np.asarray(booster.feature_importance(importance_type="split"), dtype=np.int64)
    used = [f for f, s in zip(features, splits.tolist(), strict=True) if s > 0]

    # 1. Global importance.
    sample = sample_rows(x_valid.shape[0], params.importance_rows, params.seed)
    importance, by_category = contributions(booster, x_valid[sample], inputs.contract)
    order = sorted(range(len(features)), key=lambda j: (-float(importance[j]), features[j]))
    ranking = [
        {
            "feature": features[j],
            "mean_abs_shap": fmt(float(importance[j])),
            "splits": int(splits[j]),
        }
        for j in order
    ]

    # 2. Monotone relations.
    verdicts: list[Verdict] = []
    problems: list[str] = []
    warnings: list[str] = []
    monotone_details: dict[str, Any] = {}
    rows = x_valid[sample_rows(x_valid.shape[0], params.monotone_rows, params.seed + 1)]
    x_train = inputs.x_train
    worst_rate = 0.0
    for feature, direction in sorted(params.monotone.items()):
        if feature not in features:
            verdicts.append("failed")
            problems.append(f"monotone feature '{feature}' is not a model feature")
            continue
        j = features.index(feature)
        if inputs.contract.features[j].categorical:
            verdicts.append("failed")
            problems.append(
                f"monotone feature '{feature}' is categorical; a monotone relation needs "
                "a numeric feature (remove it from the policy's monotone list)"
            )
            continue
        if splits[j] == 0:
            warnings.append(f"monotone feature '{feature}' is not used by the model")
            monotone_details[feature] = {"direction": direction, "used": False}
            continue
        column = x_train[:, j]
        column = column[~np.isnan(column)]
        if column.size == 0:
            raise InputError(f"the training data has no values of '{feature}'")
        grid = np.unique(np.quantile(column, np.linspace(0.01, 0.99, params.grid_points)))
        violating, largest = monotone_violations(booster, rows, j, grid, direction)
        rate = violating / rows.shape[0]
        worst_rate = max(worst_rate, rate)
        monotone_details[feature] = {
            "direction": direction,
            "used": True,
            "rows_checked": int(rows.shape[0]),
            "grid_points": int(grid.shape[0]),
            "violating_rows": violating,
            "violation_rate": fmt(rate),
            "largest_wrong_step": fmt(largest),
        }
        if dec(rate) > params.max_monotone_violation_rate:
            verdicts.append("failed")
            problems.append(
                f"'{feature}' must be {direction}: {violating} of {rows.shape[0]} rows violate it"
            )

    # 3. Reason texts.
    texts = {**params.reason_texts, **inputs.reason_texts}
    without = [f for f in used if not reasons.has_text(texts, f)]
    if without:
        verdicts.append("failed")
        problems.append(f"features without a reason text: {', '.join(without)}")
    if warnings:
        verdicts.append("warned")
    verdict = worst(verdicts)
    values = {
        "features_used": str(len(used)),
        "features_without_reason": str(len(without)),
        "max_monotone_violation_rate": fmt(worst_rate),
    }
    if order:
        values["top_feature"] = features[order[0]]
    thresholds = {"max_monotone_violation_rate": fmt(params.max_monotone_violation_rate)}
    if verdict == "failed":
        message = "; ".join(problems + warnings)
    elif verdict == "warned":
        message = "; ".join(warnings)
    else:
        message = (
            f"{len(used)} features used, all with reason texts; "
            f"{len(params.monotone)} monotone relations hold"
        )
    details = {
        "importance": ranking,
        "importance_rows": int(sample.shape[0]),
        "contributions_by_category": by_category,
        "monotone": monotone_details,
        "features_without_reason": without,
        "reason_texts": {f: texts[f] for f in used if f in texts},
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
