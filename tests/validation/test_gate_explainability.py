"""Explainability gate: importance (= SHAP), monotone relations, reason texts."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from core.canonical import canonical_bytes
from govreg.synthetic import BASE_FEATURES, MONOTONE, train_lightgbm
from policies.schema import GateSpec
from validation.explainability import sample_rows
from validation.inputs import GateInputs
from validation.result import fmt
from validation.runner import run_gate

pytestmark = [
    # shap's plotting colours call matplotlib functions that announce their deprecation.
    pytest.mark.filterwarnings(
        "ignore:The set_(bad|over|under) function will be deprecated:PendingDeprecationWarning"
    ),
    # shap notes that it returns one array (log-odds) for LightGBM binary models.
    pytest.mark.filterwarnings(
        "ignore:LightGBM binary classifier with TreeExplainer shap values output:UserWarning"
    ),
]


@pytest.fixture(scope="module")
def income_violating_model(train_df: pd.DataFrame) -> str:
    """Trained on labels where the richest tenth always defaults: default rises with income."""
    train = train_df.copy()
    train.loc[train["income"] > train["income"].quantile(0.9), "default"] = 1
    others = {k: v for k, v in MONOTONE.items() if k != "income"}
    return train_lightgbm(train, num_boost_round=30, monotone=others)


def spec(**params: object) -> GateSpec:
    base: dict[str, object] = {
        "monotone": dict(MONOTONE),
        "monotone_rows": 100,
        "importance_rows": 1000,
    }
    base.update(params)
    return GateSpec(id="explainability", kind="explainability", params=base)


def test_lightgbm_contributions_equal_shap(good_model: str, valid_df: pd.DataFrame) -> None:
    import shap

    booster = lgb.Booster(model_str=good_model)
    x = valid_df[list(BASE_FEATURES)].to_numpy(float)[:200]
    ours = np.asarray(booster.predict(x, pred_contrib=True))
    explainer = shap.TreeExplainer(booster)
    theirs = np.asarray(explainer.shap_values(x))
    np.testing.assert_allclose(ours[:, :-1], theirs, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours[:, -1], explainer.expected_value, rtol=0, atol=1e-9)


def test_good_model_passes_with_exact_importance(
    make_inputs: Callable[..., GateInputs], good_model: str, valid_df: pd.DataFrame
) -> None:
    result = run_gate(spec(importance_rows=len(valid_df)), make_inputs())
    assert result.verdict == "passed", result.message
    booster = lgb.Booster(model_str=good_model)
    contrib = np.asarray(
        booster.predict(valid_df[list(BASE_FEATURES)].to_numpy(float), pred_contrib=True)
    )
    mean_abs = np.abs(contrib[:, :-1]).mean(axis=0)
    expected = sorted(
        zip(BASE_FEATURES, mean_abs, strict=True), key=lambda item: (-item[1], item[0])
    )
    assert [(r["feature"], r["mean_abs_shap"]) for r in result.details["importance"]] == [
        (name, fmt(value)) for name, value in expected
    ]
    assert result.values["top_feature"] == expected[0][0]
    assert result.values["max_monotone_violation_rate"] == "0"
    assert result.details["monotone"]["income"]["violating_rows"] == 0
    assert result.message == "11 features used, all with reason texts; 4 monotone relations hold"


def test_violated_monotone_relation_fails(
    make_inputs: Callable[..., GateInputs],
    train_df: pd.DataFrame,
    valid_df: pd.DataFrame,
    income_violating_model: str,
) -> None:
    # Predicted default rises at high incomes: the policy says it must fall.
    reversed_model = income_violating_model
    inputs = make_inputs(model_text=reversed_model)
    result = run_gate(spec(), inputs)
    assert result.verdict == "failed"
    income = result.details["monotone"]["income"]
    # independent count: sweep income over the same grid, row by row
    booster = lgb.Booster(model_str=reversed_model)
    rows = inputs.x_validation[sample_rows(len(valid_df), 100, 1)]
    column = list(BASE_FEATURES).index("income")
    grid = np.unique(np.quantile(train_df["income"], np.linspace(0.01, 0.99, 21)))
    violating = 0
    for row in rows:
        swept = np.tile(row, (grid.size, 1))
        swept[:, column] = grid
        if (np.diff(booster.predict(swept)) > 1e-12).any():
            violating += 1
    assert violating > 50
    assert income["violating_rows"] == violating
    assert income["violation_rate"] == fmt(violating / 100)
    assert result.message == (f"'income' must be decreasing: {violating} of 100 rows violate it")
    assert result.details["monotone"]["debt_to_income"]["violating_rows"] == 0


def test_tolerated_violation_rate(
    make_inputs: Callable[..., GateInputs], income_violating_model: str
) -> None:
    result = run_gate(
        spec(max_monotone_violation_rate=1), make_inputs(model_text=income_violating_model)
    )
    assert result.verdict == "passed"
    assert Decimal(result.values["max_monotone_violation_rate"]) > Decimal("0.5")


def test_features_without_reason_texts_fail_by_name(
    make_inputs: Callable[..., GateInputs],
) -> None:
    texts = {name: "a reason" for name in BASE_FEATURES if name not in ("age", "loan_amount")}
    result = run_gate(spec(), make_inputs(reason_texts=texts))
    assert result.verdict == "failed"
    assert result.message == "features without a reason text: age, loan_amount"
    assert result.details["features_without_reason"] == ["age", "loan_amount"]
    # the policy may supply them
    policy_texts = spec(reason_texts={"age": "age of applicant", "loan_amount": "loan size"})
    assert run_gate(policy_texts, make_inputs(reason_texts=texts)).verdict == "passed"


def test_unused_monotone_feature_warns_and_unknown_fails(
    make_inputs: Callable[..., GateInputs], train_df: pd.DataFrame, valid_df: pd.DataFrame
) -> None:
    train = train_df.assign(flat=0.0)
    model = train_lightgbm(train, num_boost_round=30, monotone=MONOTONE)
    inputs = make_inputs(model_text=model, train=train, validation=valid_df.assign(flat=0.0))
    result = run_gate(spec(monotone={**MONOTONE, "flat": "increasing"}), inputs)
    assert result.verdict == "warned"
    assert result.message == "monotone feature 'flat' is not used by the model"
    unknown = run_gate(spec(monotone={"salary": "decreasing"}), make_inputs())
    assert unknown.verdict == "failed"
    assert unknown.message == "monotone feature 'salary' is not a model feature"


def test_deterministic(make_inputs: Callable[..., GateInputs]) -> None:
    a = run_gate(spec(), make_inputs())
    b = run_gate(spec(), make_inputs())
    assert canonical_bytes(a.canonical()) == canonical_bytes(b.canonical())
