"""Shared synthetic data and models for the gate tests (small, built once per session)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from govreg.synthetic import MONOTONE, feature_names, make_credit_data, train_lightgbm
from validation.inputs import GateInputs

ROWS = 10_000
ROUNDS = 60
REASONS = {name: f"reason for {name}" for name in feature_names()}


@pytest.fixture(scope="session")
def train_df() -> pd.DataFrame:
    return make_credit_data(ROWS, seed=11)


@pytest.fixture(scope="session")
def valid_df() -> pd.DataFrame:
    return make_credit_data(ROWS, seed=12)


@pytest.fixture(scope="session")
def good_model(train_df: pd.DataFrame) -> str:
    return train_lightgbm(train_df, num_boost_round=ROUNDS, monotone=MONOTONE)


@pytest.fixture(scope="session")
def make_inputs(
    train_df: pd.DataFrame, valid_df: pd.DataFrame, good_model: str
) -> Callable[..., GateInputs]:
    """A fresh GateInputs for the good model, any field overridable."""

    def build(**overrides: Any) -> GateInputs:
        fields: dict[str, Any] = {
            "model_text": good_model,
            "train": train_df,
            "validation": valid_df,
            "target": "default",
            "protected": ["sex", "age_band"],
            "cutoff": Decimal("0.5"),
            "reason_texts": dict(REASONS),
        }
        fields.update(overrides)
        return GateInputs(**fields)

    return build
