"""Data schema gate: a great-expectations suite from the training data (or supplied)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from core.canonical import canonical_bytes
from policies.schema import DataSchemaParams, GateSpec
from validation.data_schema import derive_suite
from validation.inputs import GateInputs
from validation.runner import run_gate

SPEC = GateSpec(id="data-schema", kind="data_schema")


def test_derived_suite_describes_the_training_data(train_df: pd.DataFrame) -> None:
    suite = derive_suite(train_df, DataSchemaParams())
    by_key = {(e["type"], e["kwargs"]["column"]): e["kwargs"] for e in suite["expectations"][1:]}
    assert by_key[("expect_column_values_to_be_in_set", "sex")]["value_set"] == ["female", "male"]
    assert by_key[("expect_column_values_to_be_in_set", "age_band")]["value_set"] == [
        "18-29",
        "30-44",
        "45-59",
        "60+",
    ]
    income = by_key[("expect_column_values_to_be_between", "income")]
    assert income == {
        "column": "income",
        "min_value": int(train_df["income"].min()),
        "max_value": int(train_df["income"].max()),
        "mostly": 0.995,
    }
    assert by_key[("expect_column_values_to_not_be_null", "income")] == {"column": "income"}
    assert suite["expectations"][0] == {
        "type": "expect_table_columns_to_match_set",
        "kwargs": {"column_set": sorted(train_df.columns), "exact_match": False},
    }
    columns = {e["kwargs"]["column"] for e in suite["expectations"][1:]}
    assert columns == set(train_df.columns)
    # the columns, then per column (14): type + range or categories + nulls
    assert len(suite["expectations"]) == 1 + 3 * 14


def test_fresh_sample_of_the_same_population_passes(
    make_inputs: Callable[..., GateInputs], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_gate(SPEC, make_inputs())
    assert result.verdict == "passed", result.message
    assert result.values == {
        "expectations": "43",
        "failed_expectations": "0",
        "success_percent": "100",
    }
    assert result.message == "all 43 expectations passed"
    assert result.details["suite_source"] == "derived"
    assert len(result.details["results"]) == 43
    assert "great-expectations" in result.library_versions
    assert list(tmp_path.iterdir()) == []  # GX wrote nothing to the working directory
    assert os.environ["GX_ANALYTICS_ENABLED"] == "false"


def test_unseen_category_fails(
    make_inputs: Callable[..., GateInputs], valid_df: pd.DataFrame
) -> None:
    valid = valid_df.copy()
    valid.loc[valid.index[:3], "age_band"] = "90+"
    result = run_gate(SPEC, make_inputs(validation=valid))
    assert result.verdict == "failed"
    assert result.message == (
        "1 of 43 expectations failed: expect_column_values_to_be_in_set(age_band) "
        "unexpected ['90+']"
    )
    failed = [r for r in result.details["results"] if not r["success"]]
    assert failed[0]["unexpected_count"] == 3


def test_missing_column_fails(
    make_inputs: Callable[..., GateInputs], valid_df: pd.DataFrame
) -> None:
    result = run_gate(SPEC, make_inputs(validation=valid_df.drop(columns=["sex"])))
    assert result.verdict == "failed"
    assert result.message == (
        "4 of 43 expectations failed: expect_table_columns_to_match_set missing ['sex'], "
        "expect_column_values_to_be_in_set(sex), expect_column_values_to_be_in_type_list(sex), "
        "expect_column_values_to_not_be_null(sex)"
    )


def test_wrong_type_and_nulls_fail(
    make_inputs: Callable[..., GateInputs], valid_df: pd.DataFrame
) -> None:
    valid = valid_df.assign(open_accounts=valid_df["open_accounts"].astype(str))
    result = run_gate(SPEC, make_inputs(validation=valid))
    assert result.verdict == "failed"
    assert "expect_column_values_to_be_in_type_list(open_accounts)" in result.message
    holes = valid_df.copy()
    holes.loc[holes.index[:5], "income"] = float("nan")
    nulls = run_gate(SPEC, make_inputs(validation=holes))
    assert nulls.verdict == "failed"
    assert nulls.message == (
        "1 of 43 expectations failed: expect_column_values_to_not_be_null(income) "
        "unexpected ['None']"
    )


def test_values_outside_the_training_range_warn_then_fail(
    make_inputs: Callable[..., GateInputs], valid_df: pd.DataFrame
) -> None:
    top = valid_df["debt_to_income"].max() + 1
    valid = valid_df.copy()
    valid.loc[valid.index[:30], "debt_to_income"] = top  # 0.3 %: within 0.5 %, above half of it
    warned = run_gate(SPEC, make_inputs(validation=valid))
    assert warned.verdict == "warned"
    assert warned.message == (
        "all 43 expectations passed; values outside the training range in debt_to_income"
    )
    valid.loc[valid.index[:80], "debt_to_income"] = top  # 0.8 % > 0.5 %
    failed = run_gate(SPEC, make_inputs(validation=valid))
    assert failed.verdict == "failed"


def test_supplied_suite_replaces_the_derived_one(
    make_inputs: Callable[..., GateInputs],
) -> None:
    suite = {
        "name": "bureau-contract",
        "expectations": [
            {"type": "expect_column_to_exist", "kwargs": {"column": "bureau_score"}},
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "age", "min_value": 18, "max_value": 85},
                "id": "ignored-id",
            },
        ],
    }
    result = run_gate(SPEC, make_inputs(schema_suite=suite))
    assert result.verdict == "failed"
    assert result.details["suite_source"] == "supplied"
    assert result.details["suite"]["expectations"][1] == {
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "age", "min_value": 18, "max_value": 85},
    }
    assert result.message == "1 of 2 expectations failed: expect_column_to_exist(bureau_score)"
    empty = run_gate(SPEC, make_inputs(schema_suite={"name": "x", "expectations": []}))
    assert empty.verdict == "error"
    assert "an empty suite proves nothing" in empty.message


def test_deterministic(make_inputs: Callable[..., GateInputs]) -> None:
    a = run_gate(SPEC, make_inputs())
    b = run_gate(SPEC, make_inputs())
    assert canonical_bytes(a.canonical()) == canonical_bytes(b.canonical())


def test_categorical_model_features_read_from_csv_pass_the_type_check() -> None:
    """A category column as pandas 3 reads it from CSV (dtype ``str``) is checked as text."""
    import numpy as np

    from validation.contract import DataContract, Feature
    from validation.data_schema import as_gx_frame, run_suite

    contract = DataContract((Feature("housing", "categorical", 0.1, ("own", "rent")),))
    frame = pd.DataFrame({"housing": pd.Series(["own", "rent", None, "rent"])})
    suite = derive_suite(frame, DataSchemaParams(), contract=contract)
    shown = as_gx_frame(frame, contract)
    assert shown["housing"].dtype == np.dtype(object)
    result = run_suite(shown, suite)
    assert [r["success"] for r in result["results"]] == [True] * len(suite["expectations"])
