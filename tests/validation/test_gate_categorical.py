"""The gates on categorical data with missing values, against direct library calls on
LightGBM's own pandas-path predictions (``Booster.predict`` on a frame whose categorical
columns are pandas ``category`` dtype).

The data is :func:`govreg.synthetic.make_credit_data` with ``realistic=True``: three
categorical features and missing values in three numeric ones. The gates receive it as a
pandas frame with ``category`` columns and as a CSV reads it back (categories as text).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from curve_oracle import assert_curves_match

from govreg.synthetic import (
    CATEGORIES,
    MONOTONE,
    PROTECTED,
    make_credit_data,
    reason_texts,
    train_lightgbm,
)
from policies.loader import find_policy
from policies.schema import ExplainabilityParams, GateSpec
from validation.inputs import GateInputs
from validation.runner import run_gate

ROWS = 8_000
POLICY = find_policy("credit-risk")
SPECS = {g.kind: g for g in POLICY.gates}


def close(text: str, value: float, tolerance: str = "1e-12") -> bool:
    """A recorded decimal (12 significant digits) equals ``value`` within ``tolerance``."""
    return abs(Decimal(text) - Decimal(repr(float(value)))) <= Decimal(tolerance)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    train = make_credit_data(ROWS, seed=41, realistic=True)
    valid = make_credit_data(ROWS, seed=42, realistic=True)
    text = train_lightgbm(train, num_boost_round=40, monotone=MONOTONE)
    booster = lgb.Booster(model_str=text)
    features = booster.feature_name()
    root = tmp_path_factory.mktemp("categorical")
    train.to_csv(root / "train.csv", index=False)
    valid.to_csv(root / "valid.csv", index=False)
    return {
        "text": text,
        "booster": booster,
        "features": features,
        "train": train,
        "valid": valid,
        "train_csv": pd.read_csv(root / "train.csv"),
        "valid_csv": pd.read_csv(root / "valid.csv"),
        # LightGBM's pandas path, the reference for every gate below
        "pred_valid": booster.predict(valid[features]),
        "pred_train": booster.predict(train[features]),
    }


@pytest.fixture(scope="module")
def inputs_for(data: dict[str, Any]) -> Callable[..., GateInputs]:
    def build(csv: bool = False, **overrides: Any) -> GateInputs:
        fields: dict[str, Any] = {
            "model_text": data["text"],
            "train": data["train_csv"] if csv else data["train"],
            "validation": data["valid_csv"] if csv else data["valid"],
            "target": "default",
            "protected": list(PROTECTED),
            "cutoff": POLICY.decision_cutoff,
            "reason_texts": reason_texts(realistic=True),
        }
        fields.update(overrides)
        return GateInputs(**fields)

    return build


def test_the_data_has_categories_and_missing_values(data: dict[str, Any]) -> None:
    assert data["features"][-3:] == list(CATEGORIES)
    assert data["booster"].pandas_categorical == [list(c) for c in CATEGORIES.values()]
    assert data["valid_csv"]["housing"].dtype != data["valid"]["housing"].dtype  # text
    missing = data["valid"][data["features"]].isna().mean()
    assert sorted(missing[missing > 0].index) == [
        "employment_years",
        "income",
        "months_since_last_delinquency",
    ]


@pytest.mark.parametrize("csv", [False, True], ids=["category-dtype", "csv-text"])
def test_gate_predictions_are_lightgbms_pandas_path(
    data: dict[str, Any], inputs_for: Callable[..., GateInputs], csv: bool
) -> None:
    inputs = inputs_for(csv=csv)
    np.testing.assert_array_equal(inputs.pred_validation, data["pred_valid"])
    np.testing.assert_array_equal(inputs.pred_train, data["pred_train"])


@pytest.mark.parametrize("csv", [False, True], ids=["category-dtype", "csv-text"])
def test_performance_equals_sklearn_and_scipy(
    data: dict[str, Any], inputs_for: Callable[..., GateInputs], csv: bool
) -> None:
    from scipy.stats import ks_2samp
    from sklearn.metrics import roc_auc_score

    result = run_gate(SPECS["performance"], inputs_for(csv=csv))
    y = data["valid"]["default"].to_numpy()
    score = data["pred_valid"]
    assert result.verdict == "passed", result.message
    assert close(result.values["auc"], roc_auc_score(y, score))
    assert close(result.values["ks"], ks_2samp(score[y == 1], score[y == 0]).statistic)
    # the curves the report draws, recorded on the same scores
    assert_curves_match(result.canonical()["details"]["curves"], y, score)


def test_fairness_selection_rates_equal_fairlearn(
    data: dict[str, Any], inputs_for: Callable[..., GateInputs]
) -> None:
    from fairlearn.metrics import MetricFrame, selection_rate

    result = run_gate(SPECS["fairness"], inputs_for(csv=True))
    valid = data["valid"]
    approved = (data["pred_valid"] < float(POLICY.decision_cutoff)).astype(int)
    for attribute in PROTECTED:
        frame = MetricFrame(
            metrics=selection_rate,
            y_true=valid["default"],
            y_pred=approved,
            sensitive_features=valid[attribute],
        )
        groups = result.details["attributes"][attribute]["groups"]
        assert [g["group"] for g in groups] == sorted(frame.by_group.index)
        for group in groups:
            assert close(group["approval_rate"], frame.by_group[group["group"]]), group


def independent_psi(train: pd.Series[Any], valid: pd.Series[Any]) -> float:
    """PSI with one bin per category and one for missing values, shares floored at 1e-4."""
    labels = sorted(
        {str(v) for v in train.dropna()} | {str(v) for v in valid.dropna()} | {"<missing>"}
    )

    def shares(series: pd.Series[Any]) -> dict[str, float]:
        text = ["<missing>" if pd.isna(v) else str(v) for v in series.astype(object)]
        return {label: text.count(label) / len(text) for label in labels}

    e, a = shares(train), shares(valid)
    total = 0.0
    for label in labels:
        if e[label] == 0 and a[label] == 0:
            continue
        e_share, a_share = max(e[label], 1e-4), max(a[label], 1e-4)
        total += (a_share - e_share) * float(np.log(a_share / e_share))
    return total


def test_stability_psi_per_category_equals_an_independent_computation(
    data: dict[str, Any], inputs_for: Callable[..., GateInputs]
) -> None:
    valid = data["valid_csv"].copy()
    # a shift: a third of the car loans become business loans, 5 % of housing goes missing
    cars = valid.index[valid["loan_purpose"] == "car"]
    valid.loc[cars[: len(cars) // 3], "loan_purpose"] = "business"
    valid.loc[valid.index[: len(valid) // 20], "housing"] = np.nan
    result = run_gate(SPECS["stability"], inputs_for(csv=True, validation=valid))
    for name in CATEGORIES:
        expected = independent_psi(data["train"][name], valid[name])
        assert close(result.values[name], expected), name
    assert float(result.values["loan_purpose"]) > 0.01
    bins = {b["category"]: b for b in result.details["bins"]["housing"]}
    assert sorted(bins) == sorted([*CATEGORIES["housing"], "<missing>"])
    assert close(bins["<missing>"]["actual_share"], 0.05)
    assert close(bins["<missing>"]["expected_share"], 0.0)
    rent = float((data["train"]["housing"] == "rent").mean())
    assert close(bins["rent"]["expected_share"], rent)


@pytest.mark.parametrize("csv", [False, True], ids=["category-dtype", "csv-text"])
def test_stability_records_the_validation_datas_reference_for_monitoring(
    data: dict[str, Any], inputs_for: Callable[..., GateInputs], csv: bool
) -> None:
    from validation.monitoring import bins_from_data, psi

    inputs = inputs_for(csv=csv)
    result = run_gate(SPECS["stability"], inputs)
    reference = result.details["reference"]
    valid = data["valid"]
    assert reference["rows"] == ROWS
    assert list(reference["features"]) == data["features"]
    # a numeric feature with missing values: the deciles of its non-missing values
    income = valid["income"].dropna().to_numpy(dtype=float)
    edges = np.unique(np.quantile(income, np.linspace(0, 1, 11)[1:-1]))
    bins = bins_from_data(reference["features"]["income"])
    assert bins.edges == tuple(edges.tolist())
    counts = np.bincount(np.digitize(income, edges, right=True), minlength=edges.size + 1)
    assert bins.shares == tuple((counts / income.size).tolist())
    # a categorical feature with missing values: one bin per category text
    housing = bins_from_data(reference["features"]["housing"])
    texts = ["<missing>" if pd.isna(v) else str(v) for v in valid["housing"].astype(object)]
    assert housing.categories == tuple(sorted(set(texts)))
    assert housing.shares == tuple(texts.count(c) / ROWS for c in housing.categories)
    # the score: deciles of the validation predictions
    score = bins_from_data(reference["score"])
    assert score.edges == tuple(
        np.unique(np.quantile(inputs.pred_validation, np.linspace(0, 1, 11)[1:-1])).tolist()
    )
    # the validation data measured against its own reference does not drift
    assert psi(housing, valid["housing"].astype(object).tolist()) == 0.0
    assert psi(bins, valid["income"].to_numpy(dtype=float)) == 0.0


@pytest.mark.parametrize("csv", [False, True], ids=["category-dtype", "csv-text"])
def test_data_schema_passes_the_models_categories_and_fails_an_unseen_one_by_name(
    data: dict[str, Any], inputs_for: Callable[..., GateInputs], csv: bool
) -> None:
    spec = SPECS["data_schema"]
    passed = run_gate(spec, inputs_for(csv=csv))
    assert passed.verdict == "passed", passed.message
    suite = passed.details["suite"]["expectations"]
    value_sets = {
        e["kwargs"]["column"]: e["kwargs"]["value_set"]
        for e in suite
        if e["type"] == "expect_column_values_to_be_in_set"
    }
    for name, categories in CATEGORIES.items():
        assert value_sets[name] == list(categories)  # the model's order, not sorted

    valid = (data["valid_csv"] if csv else data["valid"]).copy()
    housing = valid["housing"].astype(object)
    housing.iloc[5:17] = "caravan"
    valid["housing"] = housing if csv else pd.Categorical(housing)
    failed = run_gate(spec, inputs_for(csv=csv, validation=valid))
    assert failed.verdict == "failed"
    total = passed.values["expectations"]
    assert failed.message == (
        f"1 of {total} expectations failed: expect_column_values_to_be_in_set(housing) "
        "unexpected ['caravan']"
    )
    line = next(r for r in failed.details["results"] if not r["success"])
    assert (line["column"], line["unexpected_count"]) == ("housing", 12)


def test_a_monotone_relation_declared_on_a_categorical_feature_fails(
    inputs_for: Callable[..., GateInputs],
) -> None:
    base = SPECS["explainability"]
    params = base.params.model_dump()
    params["monotone"] = {**params["monotone"], "housing": "increasing"}
    spec = GateSpec(id="explainability", kind="explainability", params=params)
    assert run_gate(base, inputs_for()).verdict == "passed"  # the same model, the policy's
    result = run_gate(spec, inputs_for())
    assert result.verdict == "failed"
    assert result.message == (
        "monotone feature 'housing' is categorical; a monotone relation needs a numeric "
        "feature (remove it from the policy's monotone list)"
    )
    assert "housing" not in result.details["monotone"]


@pytest.mark.parametrize("csv", [False, True], ids=["category-dtype", "csv-text"])
def test_contributions_per_category_equal_pred_contrib(
    data: dict[str, Any], inputs_for: Callable[..., GateInputs], csv: bool
) -> None:
    spec = SPECS["explainability"]
    assert isinstance(spec.params, ExplainabilityParams)
    size, seed = spec.params.importance_rows, spec.params.seed
    result = run_gate(spec, inputs_for(csv=csv))
    # The sample: seeded numpy, without replacement, in row order.
    rows = np.sort(np.random.default_rng(seed).choice(ROWS, size=size, replace=False))
    sample = data["valid"].iloc[rows][data["features"]]
    contrib = data["booster"].predict(sample, pred_contrib=True)
    details = result.details
    assert details["importance_rows"] == size
    by_category = details["contributions_by_category"]
    assert sorted(by_category) == sorted(CATEGORIES)
    for name, categories in CATEGORIES.items():
        j = data["features"].index(name)
        labels = sample[name].astype(object).to_numpy()
        expected = [
            (c, int((labels == c).sum()), float(contrib[labels == c, j].mean()))
            for c in categories
            if (labels == c).any()
        ]
        got = by_category[name]
        assert [(r["category"], r["rows"]) for r in got] == [(c, n) for c, n, _ in expected]
        for row, (_, _, mean) in zip(got, expected, strict=True):
            assert close(row["mean_contribution"], mean), (name, row)
    importance = {r["feature"]: r["mean_abs_shap"] for r in details["importance"]}
    mean_abs = np.abs(contrib[:, :-1]).mean(axis=0)
    for j, feature in enumerate(data["features"]):
        assert close(importance[feature], mean_abs[j]), feature


def test_missing_categories_are_their_own_contribution_row(
    data: dict[str, Any], inputs_for: Callable[..., GateInputs], tmp_path: Path
) -> None:
    valid = data["valid"].copy()
    valid.loc[valid.index[::10], "employment_type"] = np.nan  # every tenth row
    spec = GateSpec(
        id="explainability",
        kind="explainability",
        params={"importance_rows": ROWS, "monotone": dict(MONOTONE)},
    )
    result = run_gate(spec, inputs_for(validation=valid))
    features = data["features"]
    contrib = data["booster"].predict(valid[features], pred_contrib=True)
    j = features.index("employment_type")
    rows = {
        r["category"]: r for r in result.details["contributions_by_category"]["employment_type"]
    }
    missing = valid["employment_type"].isna().to_numpy()
    assert rows["<missing>"]["rows"] == ROWS // 10
    assert close(rows["<missing>"]["mean_contribution"], contrib[missing, j].mean())
