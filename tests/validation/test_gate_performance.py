"""Performance gate: AUC, KS, Gini, Brier and calibration, cross-checked with sklearn and scipy."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from curve_oracle import assert_curves_match
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp
from sklearn.metrics import brier_score_loss, roc_auc_score, roc_curve

from core.canonical import canonical_bytes
from govreg.synthetic import train_lightgbm
from policies.schema import GateSpec
from validation.inputs import GateInputs
from validation.performance import ROC_POINTS, calibration_table, curves, discrimination
from validation.result import fmt
from validation.runner import run_gate

SPEC = GateSpec(id="performance", kind="performance", params={"min_auc": 0.80, "min_ks": 0.35})


def _outcomes_and_scores(valid_df: pd.DataFrame, model: str) -> tuple[Any, Any]:
    """The validation outcomes and the model's scores of them, by LightGBM itself."""
    booster = lgb.Booster(model_str=model)
    return valid_df["default"].to_numpy(), booster.predict(
        valid_df[booster.feature_name()].to_numpy(float)
    )


def test_values_equal_sklearn_and_scipy(
    make_inputs: Callable[..., GateInputs], valid_df: pd.DataFrame, good_model: str
) -> None:
    result = run_gate(SPEC, make_inputs())
    y, pred = _outcomes_and_scores(valid_df, good_model)
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


# -- curves recorded for the report ----------------------------------------------------
def test_recorded_curves_lie_on_sklearns_roc_curve_with_numpys_histograms(
    make_inputs: Callable[..., GateInputs], valid_df: pd.DataFrame, good_model: str
) -> None:
    result = run_gate(SPEC, make_inputs())
    y, pred = _outcomes_and_scores(valid_df, good_model)
    recorded = result.canonical()["details"]["curves"]
    assert_curves_match(recorded, y, pred)
    assert len(recorded["roc"]) == ROC_POINTS  # 10,000 distinct scores, thinned
    # the KS of the ROC curve is the gate's KS (for this model F1 lies below F0)
    assert recorded["ks"]["ks"] == result.values["ks"]
    assert sum(recorded["histogram"]["defaults"]) == result.details["defaults"]
    assert sum(recorded["histogram"]["repaid"]) == len(y) - result.details["defaults"]
    # What one evaluation records for them, as stored (canonical JSON).
    assert 6_000 < len(canonical_bytes(recorded)) < 8_000


def test_curves_of_tied_scores_keep_every_point() -> None:
    rng = np.random.default_rng(4)
    score = rng.integers(0, 5, 2_000).astype(np.float64) / 4
    y = (rng.random(2_000) < 0.2 + 0.1 * score).astype(np.int64)
    recorded = curves(y, score)
    assert_curves_match(recorded, y, score)
    fpr, tpr, _ = roc_curve(y, score, drop_intermediate=False)
    assert recorded["roc"] == [[fmt(a), fmt(b)] for a, b in zip(fpr, tpr, strict=True)]
    # hand-made: positives at 0.9, 0.5; negatives at 0.5, 0.1
    small = curves(np.array([1, 1, 0, 0]), np.array([0.9, 0.5, 0.5, 0.1]))
    assert small["roc"] == [["0", "0"], ["0", "0.5"], ["0.5", "1"], ["1", "1"]]
    assert small["ks"] == {"fpr": "0", "tpr": "0.5", "ks": "0.5", "score": "0.9"}
    assert small["histogram"]["defaults"] == [0] * 10 + [1] + [0] * 7 + [1, 0]
    assert small["histogram"]["repaid"] == [0, 0, 1] + [0] * 7 + [1] + [0] * 9


def test_a_ks_point_off_the_even_grid_is_kept_within_the_bound() -> None:
    # 1,000 distinct scores: 199 evenly spaced points, plus the KS point (off the grid)
    rng = np.random.default_rng(7)
    score = np.sort(rng.random(1_000))
    y = np.zeros(1_000, dtype=np.int64)
    y[-300:] = 1
    y[-301] = 0
    y[-420] = 1
    recorded = curves(y, score)
    assert_curves_match(recorded, y, score)
    assert len(recorded["roc"]) == ROC_POINTS


def test_a_useless_model_has_its_ks_point_at_the_origin() -> None:
    # every default scores below every repaid applicant: tpr - fpr is never above 0
    recorded = curves(np.array([1, 1, 0, 0]), np.array([0.1, 0.2, 0.8, 0.9]))
    assert recorded["ks"] == {"fpr": "0", "tpr": "0", "ks": "0", "score": "Infinity"}
    assert_curves_match(recorded, np.array([1, 1, 0, 0]), np.array([0.1, 0.2, 0.8, 0.9]))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 40)),
        min_size=2,
        max_size=600,
    ).filter(lambda rows: 0 < sum(d for d, _ in rows) < len(rows))
)
def test_curves_of_any_scores_match_the_oracle(rows: list[tuple[bool, int]]) -> None:
    y = np.array([int(d) for d, _ in rows], dtype=np.int64)
    score = np.array([s / 40 for _, s in rows], dtype=np.float64)
    assert_curves_match(curves(y, score), y, score)
