"""Stability gate: PSI per feature and on the score, against PSI computed by hand."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal

import numpy as np
import pandas as pd

from core.canonical import canonical_bytes
from policies.schema import GateSpec
from validation.inputs import GateInputs
from validation.runner import run_gate
from validation.stability import categorical_psi, numeric_psi

SPEC = GateSpec(id="stability", kind="stability", params={"warn_psi": 0.10, "fail_psi": 0.25})


def shifted_psi(shift: float) -> float:
    """PSI of a uniform grid against the same grid shifted right by ``shift`` (< one decile).

    The first decile loses ``shift`` of the rows, the last gains them; the
    other eight keep 10 %.
    """
    return shift * math.log(0.1 / (0.1 - shift)) + shift * math.log((0.1 + shift) / 0.1)


def with_uniform_column(
    train: pd.DataFrame, valid: pd.DataFrame, shift: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    grid_train = np.arange(len(train)) / len(train)
    grid_valid = np.arange(len(valid)) / len(valid) + shift
    return (
        train.assign(postcode_risk=grid_train),
        valid.assign(postcode_risk=grid_valid),
    )


def test_numeric_psi_by_hand() -> None:
    base = np.arange(1000) / 1000
    psi, table = numeric_psi(base, base + 0.05, 10)
    # 0.05 ln(0.1 / 0.05) + 0.05 ln(0.15 / 0.1) = 0.05 ln 3
    assert abs(psi - 0.05 * math.log(3)) < 1e-12
    assert [row["actual_share"] for row in table] == ["0.05", *["0.1"] * 8, "0.15"]
    same, _ = numeric_psi(base, base.copy(), 10)
    assert same == 0.0


def test_empty_bin_is_floored() -> None:
    base = np.arange(1000) / 1000
    psi, _ = numeric_psi(base, base + 0.1, 10)
    # first bin empty (share floored at 1e-4), last bin 0.2
    expected = (1e-4 - 0.1) * math.log(1e-4 / 0.1) + 0.1 * math.log(0.2 / 0.1)
    assert abs(psi - expected) < 1e-12


def test_categorical_psi_by_hand() -> None:
    train = ["a"] * 50 + ["b"] * 50
    valid = ["a"] * 30 + ["b"] * 70
    psi, table = categorical_psi(train, valid)
    expected = (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.7 - 0.5) * math.log(0.7 / 0.5)
    assert abs(psi - expected) < 1e-12
    assert [row["category"] for row in table] == ["a", "b"]


def test_same_population_passes(make_inputs: Callable[..., GateInputs]) -> None:
    result = run_gate(SPEC, make_inputs())
    assert result.verdict == "passed"
    assert Decimal(result.values["max_psi"]) < Decimal("0.02")
    assert set(result.values) == {
        "income",
        "debt_to_income",
        "credit_utilisation",
        "delinquencies_2y",
        "months_since_last_delinquency",
        "employment_years",
        "age",
        "open_accounts",
        "inquiries_6m",
        "loan_amount",
        "postcode_risk",
        "score",
        "max_psi",
    }
    assert result.message == f"max PSI {result.values['max_psi']} < 0.1"


def test_known_shift_warns_with_the_hand_computed_psi(
    make_inputs: Callable[..., GateInputs], train_df: pd.DataFrame, valid_df: pd.DataFrame
) -> None:
    train, valid = with_uniform_column(train_df, valid_df, 0.08)
    result = run_gate(SPEC, make_inputs(train=train, validation=valid))
    expected = shifted_psi(0.08)  # 0.08 ln 5 + 0.08 ln 1.8 = 0.1757...
    assert abs(Decimal(result.values["postcode_risk"]) - Decimal(expected)) < Decimal("1e-11")
    assert result.verdict == "warned"
    assert result.message.startswith("PSI >= 0.1: postcode_risk 0.1757")


def test_large_shift_fails_naming_the_feature(
    make_inputs: Callable[..., GateInputs], train_df: pd.DataFrame, valid_df: pd.DataFrame
) -> None:
    valid = valid_df.assign(debt_to_income=valid_df["debt_to_income"] + 0.3)
    result = run_gate(SPEC, make_inputs(validation=valid))
    assert result.verdict == "failed"
    assert result.message.startswith("PSI >= 0.25: debt_to_income ")
    assert Decimal(result.values["debt_to_income"]) >= Decimal("0.25")
    # the shift moves the scores too
    assert Decimal(result.values["score"]) > Decimal("0.1")
    assert "score" in result.message


def test_deterministic(make_inputs: Callable[..., GateInputs]) -> None:
    a = run_gate(SPEC, make_inputs())
    b = run_gate(SPEC, make_inputs())
    assert canonical_bytes(a.canonical()) == canonical_bytes(b.canonical())
