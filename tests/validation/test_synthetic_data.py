"""The synthetic credit data generator and the LightGBM trainer used by demos and benchmarks."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score

from govreg.synthetic import (
    BASE_FEATURES,
    CATEGORICAL_FEATURES,
    CATEGORIES,
    CATEGORY_REASON_TEXTS,
    HOUSING,
    MONOTONE,
    UNFAIR,
    feature_names,
    make_credit_data,
    reason_texts,
    train_lightgbm,
    with_category_dtypes,
    write_candidate,
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


# -- realistic=True: categorical columns and missing values that mean something -----------
@pytest.fixture(scope="module")
def realistic() -> pd.DataFrame:
    return make_credit_data(200_000, seed=4, realistic=True)


def test_realistic_data_adds_categories_and_keeps_the_other_draws(realistic: pd.DataFrame) -> None:
    assert list(realistic.columns) == [
        *BASE_FEATURES,
        *CATEGORICAL_FEATURES,
        "sex",
        "age_band",
        "default",
    ]
    assert feature_names(realistic=True) == [*BASE_FEATURES, *CATEGORICAL_FEATURES]
    for name, categories in CATEGORIES.items():
        assert realistic[name].dtype == pd.CategoricalDtype(list(categories))
        assert realistic[name].notna().all()
    plain = make_credit_data(200_000, seed=4)
    # The draws of the plain data are unchanged: the new ones come from their own generator.
    for column in ("debt_to_income", "credit_utilisation", "delinquencies_2y", "age", "sex"):
        pd.testing.assert_series_equal(realistic[column], plain[column])
    for column in ("income", "months_since_last_delinquency", "employment_years"):
        shown = realistic[column].notna()
        np.testing.assert_array_equal(
            realistic.loc[shown, column].to_numpy(float), plain.loc[shown, column].to_numpy(float)
        )
    assert 0.15 <= realistic["default"].mean() <= 0.17
    assert not realistic["default"].equals(plain["default"])  # the categories move the label


def test_missing_values_mean_what_the_docstring_says(realistic: pd.DataFrame) -> None:
    months = realistic["months_since_last_delinquency"]
    delinquent = realistic["delinquencies_2y"] > 0
    # missing only for applicants without a recent delinquency: 70 % of them never had one
    assert months[delinquent].notna().all()
    assert (months[delinquent] < 24).all()
    assert (months[~delinquent].dropna() >= 24).all()
    assert abs(months[~delinquent].isna().mean() - 0.70) < 0.01
    # income unverified: 12 % of the self-employed, 2 % of the others
    self_employed = realistic["employment_type"] == "self_employed"
    assert abs(realistic.loc[self_employed, "income"].isna().mean() - 0.12) < 0.01
    assert abs(realistic.loc[~self_employed, "income"].isna().mean() - 0.02) < 0.005
    assert abs(realistic["employment_years"].isna().mean() - 0.03) < 0.005
    # never delinquent is the lowest-risk group; unverified income raises the risk
    default = realistic["default"]
    assert default[months.isna()].mean() < default[months.notna() & ~delinquent].mean()
    assert default[realistic["income"].isna()].mean() > default[realistic["income"].notna()].mean()


def test_categories_have_the_documented_shares_and_effects(realistic: pd.DataFrame) -> None:
    shares = realistic["housing"].value_counts(normalize=True)
    for category, share in zip(HOUSING, (0.25, 0.38, 0.30, 0.07), strict=True):
        assert abs(shares[category] - share) < 0.005
    rate = realistic.groupby("housing", observed=True)["default"].mean()
    assert rate["own"] < rate["mortgage"] < rate["other"] < rate["rent"]
    rate = realistic.groupby("loan_purpose", observed=True)["default"].mean()
    assert rate.idxmax() == "business"
    assert rate.idxmin() == "home_improvement"
    rate = realistic.groupby("employment_type", observed=True)["default"].mean()
    assert rate.idxmax() == "unemployed"
    # retired from 60 only, students under 30 only
    employment = realistic["employment_type"]
    assert (realistic.loc[employment == "retired", "age"] >= 60).all()
    assert (realistic.loc[employment == "student", "age"] < 30).all()


def test_categories_and_missing_values_carry_no_sign_of_sex() -> None:
    df = make_credit_data(200_000, seed=5, biased=True, realistic=True)
    female = df["sex"] == "female"
    for name in CATEGORICAL_FEATURES:
        by_sex = pd.crosstab(df[name], female, normalize="columns")
        assert (by_sex[True] - by_sex[False]).abs().max() < 0.01, name
    for name in ("income", "months_since_last_delinquency", "employment_years"):
        assert abs(df.loc[female, name].isna().mean() - df.loc[~female, name].isna().mean()) < 0.01
    assert ((df["postcode_risk"] >= 0.75) == female).all()  # the known bias is still there


def test_a_model_on_realistic_data_uses_the_categories_and_keeps_its_monotone_relations() -> None:
    from validation.contract import derive
    from validation.explainability import monotone_violations

    df = make_credit_data(6_000, seed=6, realistic=True)
    train, valid = df.iloc[:4_000], df.iloc[4_000:]
    text = train_lightgbm(train, num_boost_round=40, monotone=MONOTONE)
    booster = lgb.Booster(model_str=text)
    features = feature_names(realistic=True)
    assert booster.feature_name() == features
    assert booster.pandas_categorical == [list(c) for c in CATEGORIES.values()]
    assert "[categorical_feature: 11,12,13]" in text
    # LightGBM's "advanced" and "intermediate" methods break monotone constraints where
    # features have missing values; the model is trained with "basic"
    assert "[monotone_constraints_method: basic]" in text
    contract = derive(text, train, source="train")
    x_train, x_valid = contract.encode(train), contract.encode(valid)
    np.testing.assert_array_equal(booster.predict(x_valid), booster.predict(valid[features]))
    for feature, direction in MONOTONE.items():
        j = features.index(feature)
        column = x_train[:, j][~np.isnan(x_train[:, j])]
        grid = np.unique(np.quantile(column, np.linspace(0.01, 0.99, 21)))
        assert monotone_violations(booster, x_valid, j, grid, direction)[0] == 0, feature
    y = valid["default"].to_numpy()
    assert roc_auc_score(y, booster.predict(valid[features])) > 0.80


def test_category_dtypes_come_back_after_a_csv(tmp_path: Path) -> None:
    df = make_credit_data(500, seed=8, realistic=True)
    df.to_csv(tmp_path / "d.csv", index=False)
    back = pd.read_csv(tmp_path / "d.csv")
    assert not isinstance(back["housing"].dtype, pd.CategoricalDtype)
    restored = with_category_dtypes(back)
    for name in CATEGORICAL_FEATURES:
        pd.testing.assert_series_equal(restored[name], df[name])
    with pytest.raises(ValueError, match="at most 20 features"):
        make_credit_data(100, extra_features=7, realistic=True)
    assert len(feature_names(6, realistic=True)) == 20


def test_realistic_candidate_files_in_either_format(tmp_path: Path) -> None:
    import json

    files = write_candidate(
        tmp_path,
        rows=1_000,
        validation_rows=3_000,
        realistic=True,
        train_format="parquet",
        validation_format="csv",
    )
    train = pd.read_parquet(files["train"])
    validation = pd.read_csv(files["validation"])
    assert (len(train), len(validation)) == (1_000, 3_000)
    assert train["housing"].dtype == pd.CategoricalDtype(list(HOUSING))
    assert validation["months_since_last_delinquency"].isna().any()
    booster = lgb.Booster(model_str=files["artifact"].read_text())
    assert booster.feature_name() == [f for f in feature_names(realistic=True) if f not in UNFAIR]
    assert json.loads(files["reasons"].read_text()) == reason_texts(realistic=True)
    assert reason_texts(realistic=True)["housing"] == CATEGORY_REASON_TEXTS["housing"]
    with pytest.raises(ValueError, match="csv or parquet"):
        write_candidate(tmp_path / "x", rows=100, train_format="json")
