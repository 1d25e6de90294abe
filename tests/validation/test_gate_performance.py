"""Performance gate: AUC, KS, Gini, Brier and calibration, cross-checked with sklearn and scipy."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
from sklearn.metrics import brier_score_loss, roc_auc_score

from core.canonical import canonical_bytes
from govreg.synthetic import train_lightgbm
from policies.schema import GateSpec
from validation.inputs import GateInputs
from validation.performance import calibration_table, discrimination
from validation.result import fmt
from validation.runner import run_gate

SPEC = GateSpec(id="performance", kind="performance", params={"min_auc": 0.80, "min_ks": 0.35})


def test_values_equal_sklearn_and_scipy(
    make_inputs: Callable[..., GateInputs], valid_df: pd.DataFrame, good_model: str
) -> None:
    result = run_gate(SPEC, make_inputs())
    booster = lgb.Booster(model_str=good_model)
    pred = booster.predict(valid_df[booster.feature_name()].to_numpy(float))
    y = valid_df["default"].to_numpy()
    auc = roc_auc_score(y, pred)
    ks = ks_2samp(pred[y == 1], pred[y == 0]).statistic
    assert result.verdict == "passed"
    assert result.values["auc"] == fmt(auc)
    assert result.values["ks"] == fmt(ks)
    assert result.values["gini"] == fmt(2 * auc - 1)
    assert result.values["brier"] == fmt(brier_score_loss(y, pred))
    assert result.values["default_rate"] == fmt(y.mean())
    assert result.thresholds == {"min_auc": "0.8", "min_ks": "0.35"}
    assert result.message == (f"AUC {fmt(auc)} >= 0.8, KS {fmt(ks)} >= 0.35")
    table = result.details["calibration"]
    assert len(table) == 10
    assert sum(row["rows"] for row in table) == len(y)
    # the top decile holds the highest scores and its observed rate is the highest
    order = np.argsort(pred)
    top = order[-len(y) // 10 :]
    assert table[-1]["rows"] == len(top)
    assert table[-1]["observed_rate"] == fmt(y[top].mean())
    assert table[-1]["mean_predicted"] == fmt(pred[top].mean())


def test_ties_are_handled_like_sklearn() -> None:
    rng = np.random.default_rng(4)
    score = rng.integers(0, 5, 2_000).astype(np.float64) / 4
    y = (rng.random(2_000) < 0.2 + 0.1 * score).astype(np.int64)
    disc = discrimination(y, score)
    assert abs(disc.auc - roc_auc_score(y, score)) < 1e-12
    assert abs(disc.ks - ks_2samp(score[y == 1], score[y == 0]).statistic) < 1e-12
    # hand-made: positives at 0.9, 0.5; negatives at 0.5, 0.1 -> AUC (1 + 1 + 0.5 + 1) / 4
    small = discrimination(np.array([1, 1, 0, 0]), np.array([0.9, 0.5, 0.5, 0.1]))
    assert small.auc == 0.875
    assert small.ks == 0.5


def test_calibration_table_on_known_bins() -> None:
    score = np.array([0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.4, 0.4])
    y = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    table = calibration_table(y, score, 4)
    assert [row["rows"] for row in table] == [2, 2, 2, 2]
    assert [row["observed_rate"] for row in table] == ["0", "0.5", "0.5", "1"]
    assert [row["mean_predicted"] for row in table] == ["0.1", "0.2", "0.3", "0.4"]


def test_shuffled_labels_fail_auc_and_ks(
    make_inputs: Callable[..., GateInputs], train_df: pd.DataFrame
) -> None:
    shuffled = train_df.copy()
    shuffled["default"] = np.random.default_rng(0).permutation(shuffled["default"].to_numpy())
    model = train_lightgbm(shuffled, num_boost_round=30)
    result = run_gate(SPEC, make_inputs(model_text=model))
    assert result.verdict == "failed"
    assert Decimal(result.values["auc"]) < Decimal("0.6")
    assert Decimal(result.values["ks"]) < Decimal("0.2")
    assert result.message == (f"AUC {result.values['auc']} < 0.8; KS {result.values['ks']} < 0.35")


def test_warning_levels(make_inputs: Callable[..., GateInputs]) -> None:
    spec = GateSpec(
        id="performance",
        kind="performance",
        params={"min_auc": 0.80, "min_ks": 0.35, "warn_auc": 0.99},
    )
    result = run_gate(spec, make_inputs())
    assert result.verdict == "warned"
    assert result.message == f"AUC {result.values['auc']} < warning level 0.99"
    assert result.thresholds["warn_auc"] == "0.99"


def test_auc_needs_both_classes(
    make_inputs: Callable[..., GateInputs], valid_df: pd.DataFrame
) -> None:
    only_good = valid_df[valid_df["default"] == 0]
    result = run_gate(SPEC, make_inputs(validation=only_good))
    assert result.verdict == "error"
    assert "both defaults and non-defaults" in result.message


def test_deterministic_canonical_bytes(make_inputs: Callable[..., GateInputs]) -> None:
    first = run_gate(SPEC, make_inputs())
    second = run_gate(SPEC, make_inputs())
    assert canonical_bytes(first.canonical()) == canonical_bytes(second.canonical())


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.1, "0.1"), (1 / 3, "0.333333333333"), (1e-7, "0.0000001"), (2.0, "2"), (-0.0, "0")],
)
def test_fmt(value: float, text: str) -> None:
    assert fmt(value) == text
