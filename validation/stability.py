"""Stability gate: population stability index (PSI), training vs validation.

For a numeric column the bins are the deciles of the training values
(``bins`` quantiles; repeated edges merged), the first and last bins open
ended, a value equal to an edge falls in the lower bin. For a non-numeric
column (a categorical feature of the data contract) each category is a bin,
missing values one more. With ``e`` the training share and ``a`` the
validation share of a bin (each floored at ``1e-4`` so an empty bin stays
finite), ``PSI = sum((a - e) * ln(a / e))``. It is computed for every model
feature and for the predicted score.

The gate also records the monitoring reference (:func:`reference`): the same kind
of bins frozen on the validation data, which production monitoring compares live
applicants and scores with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from validation.contract import category_key
from validation.result import GateResult, Verdict, dec, fmt
from validation.spec import GateSpecLike, StabilityParamsLike, params_of
from validation.versions import library_versions

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from validation.contract import Feature
    from validation.inputs import GateInputs

SHARE_FLOOR = 1e-4
SCORE = "__score__"


def psi_from_shares(expected: npt.NDArray[np.float64], actual: npt.NDArray[np.float64]) -> float:
    """PSI of two share vectors (floored at :data:`SHARE_FLOOR`)."""
    import numpy as np

    e = np.maximum(expected, SHARE_FLOOR)
    a = np.maximum(actual, SHARE_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def quantile_edges(values: npt.NDArray[np.float64], bins: int) -> npt.NDArray[np.float64]:
    """The interior bin edges of non-missing ``values``: its ``bins`` quantiles,
    repeated edges merged (the first and last bins are open ended)."""
    import numpy as np

    edges: npt.NDArray[np.float64] = np.unique(
        np.quantile(values, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    )
    return edges


def bin_shares(
    edges: npt.NDArray[np.float64], values: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """The share of non-missing ``values`` in each bin of ``edges`` (a value equal to
    an edge in the lower bin)."""
    import numpy as np

    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1)
    shares: npt.NDArray[np.float64] = counts / values.size
    return shares


def numeric_psi(
    train: npt.NDArray[np.float64], valid: npt.NDArray[np.float64], bins: int = 10
) -> tuple[float, list[dict[str, Any]]]:
    """PSI of a numeric column with quantile bins of ``train``; also the per-bin table."""
    import numpy as np

    train = train[~np.isnan(train)]
    valid = valid[~np.isnan(valid)]
    if train.size == 0 or valid.size == 0:
        from core.errors import InputError

        raise InputError("PSI needs non-missing values in both training and validation data")
    edges = quantile_edges(train, bins)
    e_share = bin_shares(edges, train)
    a_share = bin_shares(edges, valid)
    upper = [*(fmt(float(x)) for x in edges), "Infinity"]
    table = [
        {
            "upper": upper[i],
            "expected_share": fmt(float(e_share[i])),
            "actual_share": fmt(float(a_share[i])),
        }
        for i in range(edges.size + 1)
    ]
    return psi_from_shares(e_share, a_share), table


def categorical_psi(train: Any, valid: Any) -> tuple[float, list[dict[str, Any]]]:
    """PSI of a categorical column, one bin per category (missing is a category)."""
    import numpy as np
    import pandas as pd

    t = pd.Series(train).astype("string").fillna("<missing>")
    v = pd.Series(valid).astype("string").fillna("<missing>")
    categories = sorted(set(t.unique()) | set(v.unique()))
    e_share = t.value_counts(normalize=True).reindex(categories, fill_value=0.0).to_numpy(float)
    a_share = v.value_counts(normalize=True).reindex(categories, fill_value=0.0).to_numpy(float)
    table = [
        {
            "category": str(c),
            "expected_share": fmt(float(e_share[i])),
            "actual_share": fmt(float(a_share[i])),
        }
        for i, c in enumerate(categories)
    ]
    return psi_from_shares(np.asarray(e_share), np.asarray(a_share)), table


def _labels(feature: Feature, series: Any, codes: npt.NDArray[np.float64]) -> Any:
    """A categorical column as category texts from its model codes (``2``, ``2.0`` and
    ``"2"`` alike), nulls kept; a category the model never saw keeps its own text."""
    import numpy as np
    import pandas as pd

    names = np.array([category_key(c) for c in feature.categories] + [None], dtype=object)
    missing = np.isnan(codes)
    labels = names[np.where(missing, len(feature.categories), codes).astype(np.int64)]
    unseen = missing & series.notna().to_numpy()
    if unseen.any():  # few rows: their own texts, one by one
        labels[unseen] = [category_key(v) for v in series.to_numpy(dtype=object)[unseen]]
    return pd.Series(labels, dtype=object)


def reference(inputs: GateInputs, bins: int) -> dict[str, Any]:
    """The monitoring reference frozen at evaluation: the validation data's bins per
    model feature and for the predicted score (:mod:`validation.monitoring`)."""
    from validation.monitoring import freeze_categorical, freeze_numeric

    x_valid = inputs.x_validation
    features: dict[str, Any] = {}
    for j, feature in enumerate(inputs.contract.features):
        if feature.categorical:
            labels = _labels(feature, inputs.validation[feature.name], x_valid[:, j])
            features[feature.name] = freeze_categorical(labels.tolist()).data()
        else:
            features[feature.name] = freeze_numeric(x_valid[:, j], bins).data()
    return {
        "rows": len(inputs.validation),
        "features": features,
        "score": freeze_numeric(inputs.pred_validation, bins).data(),
    }


def evaluate(spec: GateSpecLike, inputs: GateInputs) -> GateResult:
    """PSI >= fail_psi fails, warn_psi <= PSI < fail_psi warns, per feature and on the score."""
    params: StabilityParamsLike = params_of(spec)
    psis: dict[str, float] = {}
    tables: dict[str, list[dict[str, Any]]] = {}
    x_train = inputs.x_train
    x_valid = inputs.x_validation
    for j, feature in enumerate(inputs.contract.features):
        name = feature.name
        if not feature.categorical:
            psis[name], tables[name] = numeric_psi(x_train[:, j], x_valid[:, j], params.bins)
        else:
            psis[name], tables[name] = categorical_psi(
                _labels(feature, inputs.train[name], x_train[:, j]),
                _labels(feature, inputs.validation[name], x_valid[:, j]),
            )
    psis[SCORE], tables[SCORE] = numeric_psi(inputs.pred_train, inputs.pred_validation, params.bins)
    # Model feature order, then the score.
    failing = [k for k, v in psis.items() if dec(v) >= params.fail_psi]
    warning = [k for k, v in psis.items() if params.warn_psi <= dec(v) < params.fail_psi]
    values = {("score" if k == SCORE else k): fmt(v) for k, v in psis.items()}
    values["max_psi"] = fmt(max(psis.values()))
    thresholds = {"warn_psi": fmt(params.warn_psi), "fail_psi": fmt(params.fail_psi)}

    def named(keys: list[str]) -> str:
        return ", ".join(f"{'score' if k == SCORE else k} {fmt(psis[k])}" for k in keys)

    verdict: Verdict
    if failing:
        verdict = "failed"
        message = f"PSI >= {thresholds['fail_psi']}: {named(failing)}"
    elif warning:
        verdict = "warned"
        message = f"PSI >= {thresholds['warn_psi']}: {named(warning)}"
    else:
        verdict = "passed"
        message = f"max PSI {values['max_psi']} < {thresholds['warn_psi']}"
    details = {
        "bins": {("score" if k == SCORE else k): t for k, t in tables.items()},
        "share_floor": fmt(SHARE_FLOOR),
        "reference": reference(inputs, params.bins),
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
