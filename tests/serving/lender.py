"""A lender's candidate for the serving tests (importable as ``lender``): real data shapes.

The synthetic applicants of :func:`govreg.synthetic.make_credit_data` plus two
categorical columns, ``housing`` (``own``, ``mortgage``, ``rent``, ``free``;
renting raises the default rate) and ``purpose`` (five purposes, 5 % missing),
and 8 % of ``employment_years`` missing. The model is trained with LightGBM on
a pandas DataFrame whose category columns have dtype ``category``, as a lender
trains one; its files pass every gate of ``credit-risk@1``. The training and
validation data are written as CSV (categories as text, missing cells empty)
and the validation data also as Parquet (dtype ``category`` kept).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

HOUSING = ("own", "mortgage", "rent", "free")
PURPOSES = ("car", "debt_consolidation", "education", "home_improvement", "other")
NULL_SHARE = 0.08  # of employment_years
FEATURES = (
    "income",
    "debt_to_income",
    "credit_utilisation",
    "delinquencies_2y",
    "months_since_last_delinquency",
    "employment_years",
    "open_accounts",
    "inquiries_6m",
    "loan_amount",
    "housing",
    "purpose",
)
CATEGORICAL = ("housing", "purpose")
REASONS: dict[str, Any] = {
    "income": "Income insufficient for the amount of credit requested",
    "debt_to_income": "Debt obligations too high relative to income",
    "credit_utilisation": "Proportion of revolving balances to credit limits is too high",
    "delinquencies_2y": "Delinquent past or present credit obligations",
    "months_since_last_delinquency": "Time since last delinquency is too short",
    "employment_years": "Length of employment",
    "open_accounts": "Number of established credit accounts",
    "inquiries_6m": "Number of recent credit inquiries",
    "loan_amount": "Amount of credit requested relative to income",
    "housing": {
        "default": "Housing status",
        "categories": {
            "rent": "Renting rather than owning a home",
            "free": "No housing costs on record",
        },
    },
    "purpose": {
        "default": "Purpose of the loan",
        "categories": {"debt_consolidation": "Loan taken to consolidate existing debt"},
    },
}


def lender_frame(rows: int, *, seed: int) -> pd.DataFrame:
    """Applicants with category columns (dtype ``category``) and missing values."""
    import numpy as np
    import pandas as pd

    from govreg.synthetic import make_credit_data

    frame = make_credit_data(rows, seed=seed)
    rng = np.random.default_rng(seed + 1000)
    housing = rng.choice(HOUSING, size=rows, p=[0.3, 0.35, 0.3, 0.05])
    purpose = rng.choice(PURPOSES, size=rows, p=[0.25, 0.3, 0.1, 0.2, 0.15]).astype(object)
    purpose[rng.random(rows) < 0.05] = None
    # The label of make_credit_data's process, plus renting and consolidating debt.
    logit = (
        -2.75
        - 1.1 * (np.log(frame["income"]) - 10.75) / 0.46
        + 1.32 * (frame["debt_to_income"] - 0.34) / 0.19
        + 1.4 * (frame["credit_utilisation"] - 0.38)
        + 0.55 * frame["delinquencies_2y"]
        - 0.02 * (frame["employment_years"] - 7.0)
        + 0.18 * (frame["inquiries_6m"] - 0.8)
        + 0.35 * (frame["loan_amount"] / frame["income"] - 0.3) / 0.18
        + 0.9 * (housing == "rent")
        + 0.6 * (housing == "free")
        + 0.5 * (purpose == "debt_consolidation")
    )
    frame["default"] = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    frame["housing"] = pd.Categorical(housing, categories=sorted(HOUSING))
    frame["purpose"] = pd.Categorical(purpose, categories=sorted(PURPOSES))
    employment = frame["employment_years"].astype(np.float64)
    employment[rng.random(rows) < NULL_SHARE] = np.nan
    frame["employment_years"] = employment
    return frame


def train(frame: pd.DataFrame, *, seed: int = 7, rounds: int = 60) -> str:
    """A LightGBM text model trained on the DataFrame itself (categories from its dtypes)."""
    import lightgbm as lgb

    from govreg.synthetic import MONOTONE

    features = list(FEATURES)
    signs = {"increasing": 1, "decreasing": -1}
    params = {
        "objective": "binary",
        "learning_rate": 0.1,
        "num_leaves": 15,
        "min_data_in_leaf": 40,
        "lambda_l2": 1.0,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbose": -1,
        "monotone_constraints": [signs[MONOTONE[f]] if f in MONOTONE else 0 for f in features],
        "monotone_constraints_method": "basic",
    }
    data = lgb.Dataset(frame[features], label=frame["default"], free_raw_data=True)
    booster = lgb.train(params, data, num_boost_round=rounds)
    text: str = booster.model_to_string()
    return text


def write_lender_candidate(root: Path, *, rows: int = 8000, seed: int = 7) -> dict[str, Path]:
    """Model, training CSV, validation CSV and Parquet, reasons JSON (paths by name)."""
    root.mkdir(parents=True, exist_ok=True)
    frame = lender_frame(rows * 2, seed=seed)
    training, validation = frame.iloc[:rows], frame.iloc[rows:].reset_index(drop=True)
    paths = {
        "artifact": root / "model.txt",
        "train": root / "train.csv",
        "validation": root / "validation.csv",
        "validation_parquet": root / "validation.parquet",
        "reasons": root / "reasons.json",
    }
    paths["artifact"].write_text(train(training, seed=seed), encoding="utf-8")
    training.to_csv(paths["train"], index=False)
    validation.to_csv(paths["validation"], index=False)
    validation.to_parquet(paths["validation_parquet"], index=False)
    paths["reasons"].write_text(json.dumps(REASONS, indent=2), encoding="utf-8")
    return paths
