"""The synthetic credit data generator and the LightGBM trainer used by demos and benchmarks."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score

from govreg.synthetic import (
    BASE_FEATURES,
    MONOTONE,
    feature_names,
    make_credit_data,
    train_lightgbm,
)


def test_columns_types_and_default_rate() -> None:
    df = make_credit_data(20_000, seed=3)
    assert list(df.columns) == [*BASE_FEATURES, "sex", "age_band", "default"]
    assert len(df) == 20_000
    assert set(df["sex"].unique()) == {"female", "male"}
    assert set(df["age_band"].unique()) == {"18-29", "30-44", "45-59", "60+"}
    assert set(df["default"].unique()) == {0, 1}
    assert 0.10 <= df["default"].mean() <= 0.20
    assert df[list(BASE_FEATURES)].notna().all().all()
    assert (df["income"] > 0).all()
    assert df["delinquencies_2y"].dtype == np.int64
    # months since the last delinquency is recent exactly when there was one
    recent = df["months_since_last_delinquency"] < 24
    assert (recent == (df["delinquencies_2y"] > 0)).all()
    bands = pd.cut(df["age"], [0, 29, 44, 59, 200], labels=["18-29", "30-44", "45-59", "60+"])
    assert (bands.astype(str) == df["age_band"]).all()


def test_same_seed_same_data_and_other_seed_other_data() -> None:
    a = make_credit_data(1_000, seed=5)
    b = make_credit_data(1_000, seed=5)
    c = make_credit_data(1_000, seed=6)
    pd.testing.assert_frame_equal(a, b)
    assert not a["income"].equals(c["income"])


def test_extra_features_up_to_twenty() -> None:
    df = make_credit_data(100, seed=0, extra_features=9)
    assert feature_names(9) == [*BASE_FEATURES, *(f"noise_{i}" for i in range(1, 10))]
    assert len(feature_names(9)) == 20
    assert list(df.columns[:20]) == feature_names(9)
    with pytest.raises(ValueError, match="at most 20 features"):
        make_credit_data(100, extra_features=10)
    with pytest.raises(ValueError, match="n_rows"):
        make_credit_data(0)


def test_biased_data_has_the_documented_bias() -> None:
    df = make_credit_data(50_000, seed=1, biased=True)
    female = df["sex"] == "female"
    # label: women default far more often; proxy: postcode_risk >= 0.75 exactly for women
    assert df.loc[female, "default"].mean() > 2 * df.loc[~female, "default"].mean()
    assert ((df["postcode_risk"] >= 0.75) == female).all()


def test_model_is_deterministic_and_discriminates(
    train_df: pd.DataFrame, valid_df: pd.DataFrame, good_model: str
) -> None:
    again = train_lightgbm(train_df, num_boost_round=60, monotone=MONOTONE)
    assert again == good_model
    booster = lgb.Booster(model_str=good_model)
    assert booster.feature_name() == list(BASE_FEATURES)
    pred = booster.predict(valid_df[list(BASE_FEATURES)].to_numpy(float))
    y = valid_df["default"].to_numpy()
    assert roc_auc_score(y, pred) > 0.80
    assert ks_2samp(pred[y == 1], pred[y == 0]).statistic > 0.35


def test_monotone_constraint_must_name_a_feature(train_df: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="salary"):
        train_lightgbm(train_df, num_boost_round=2, monotone={"salary": "decreasing"})


def test_a_million_rows_is_vectorised() -> None:
    import time

    start = time.perf_counter()
    df = make_credit_data(1_000_000, seed=2)
    elapsed = time.perf_counter() - start
    assert len(df) == 1_000_000
    assert elapsed < 10.0
