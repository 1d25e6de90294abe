"""Category codes and unseen categories, mapped once per distinct value, against the
per-value definition (``Feature.code`` of each present value) on any column."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from validation.contract import Feature, _category_codes, unseen_categories


def per_value_codes(feature: Feature, series: pd.Series[Any]) -> Any:
    out = []
    for value in series.astype(object).tolist():
        code = None if value is None or pd.isna(value) else feature.code(value)
        out.append(np.nan if code is None else float(code))
    return np.array(out, dtype=np.float64)


def per_value_unseen(feature: Feature, series: pd.Series[Any]) -> dict[str, Any]:
    present = [v for v in series.astype(object).tolist() if not (v is None or pd.isna(v))]
    unknown = [v for v in present if feature.code(v) is None]
    return {"rows": len(unknown), "examples": sorted({str(v) for v in unknown})[:5]}


_values = st.one_of(
    st.text(max_size=3),
    st.integers(-2, 3),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from([True, False, None, 2.0, "2", "True", "2.0", "rent", np.nan]),
)


@settings(max_examples=400, deadline=None)
@example(values=[0, None], categories=[], kind="category")  # ints made floats by NaN
@example(values=[-0.0, 0.0, True, 1], categories=["1"], kind="object")
@given(
    values=st.lists(_values, max_size=30),
    categories=st.lists(st.sampled_from(["2", "True", "1", "rent", "own", "0", "-1"]), unique=True),
    kind=st.sampled_from(["object", "string", "category"]),
)
def test_codes_and_unseen_equal_the_per_value_definition(
    values: list[Any], categories: list[str], kind: str
) -> None:
    feature = Feature("f", "categorical", 0.0, tuple(categories))
    series = pd.Series(values, dtype=object)
    if kind == "string":
        series = pd.Series([v if v is None or isinstance(v, str) else str(v) for v in values])
        series = series.astype("string")
    elif kind == "category":
        try:
            series = series.astype("category")
        except (TypeError, ValueError):  # categories pandas cannot order or tell apart
            return
    np.testing.assert_array_equal(
        _category_codes(feature, series), per_value_codes(feature, series)
    )
    assert unseen_categories(feature, series) == per_value_unseen(feature, series)


@pytest.mark.parametrize(
    ("values", "codes"),
    [
        (["own", "rent", None, "boat"], [0.0, 1.0, np.nan, np.nan]),
        ([True, 1, 1.0, "1"], [np.nan, 2.0, 2.0, 2.0]),  # True is "True", not the code of 1
        ([2, 2.0, "2", np.nan], [3.0, 3.0, 3.0, np.nan]),
    ],
)
def test_mixed_columns_keep_each_values_category(values: list[Any], codes: list[float]) -> None:
    feature = Feature("f", "categorical", 0.0, ("own", "rent", "1", "2"))
    series = pd.Series(values, dtype=object)
    np.testing.assert_array_equal(_category_codes(feature, series), np.array(codes))
