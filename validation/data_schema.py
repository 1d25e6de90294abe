"""Data schema gate: the validation data must pass a great-expectations suite.

The suite is the submission's (``GateInputs.schema_suite``, GX's suite JSON
form: ``{"name": ..., "expectations": [{"type": ..., "kwargs": {...}}]}``) or
derived from the training data by :func:`derive_suite`:

- every column exists (a missing column fails; extra columns are allowed);
- numeric columns: numeric type, values within the training min..max for at
  least ``range_mostly`` of the rows;
- categorical model features (the data contract): values in the model's own
  categories (a category the model never saw fails);
- other columns: string-like type, values in the training categories (an
  unseen category fails), when there are at most ``max_categories``;
- nulls: none when training had none, else at most the training null rate
  plus ``null_rate_tolerance``.

GX runs in an ephemeral (in-memory) context with analytics and progress bars
off, so nothing is written to disk or sent anywhere. The suite and a summary
of each expectation's result go in ``details``. ``warned`` when the suite
passes but more than half of the tolerated share (``1 - range_mostly``) of a
column lies outside its training range.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import TYPE_CHECKING, Any

from core.errors import InputError
from validation.contract import category_key
from validation.result import GateResult, Verdict, fmt, jsonable
from validation.spec import DataSchemaParamsLike, GateSpecLike, params_of
from validation.versions import library_versions

if TYPE_CHECKING:
    import pandas as pd

    from validation.contract import DataContract
    from validation.inputs import GateInputs

NUMERIC_TYPES: tuple[str, ...] = (
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "float32",
    "float64",
    "Float32",
    "Float64",
)
STRING_TYPES: tuple[str, ...] = ("str", "CategoricalDtype")
_KEPT_RESULT_KEYS = (
    "observed_value",
    "element_count",
    "unexpected_count",
    "unexpected_percent",
    "missing_count",
)


def _number(value: Any) -> int | float:
    as_float = float(value)
    return int(as_float) if as_float.is_integer() and abs(as_float) < 2**53 else as_float


def derive_suite(
    frame: pd.DataFrame,
    params: DataSchemaParamsLike,
    *,
    contract: DataContract | None = None,
    name: str = "derived-from-training",
) -> dict[str, Any]:
    """A GX suite (JSON form) describing ``frame``: columns, types, ranges, categories, nulls.

    A categorical feature of ``contract`` gets the model's own categories as its
    value set (as texts: see :func:`as_gx_frame`), whatever their number.
    """
    import pandas as pd

    categorical = {f.name: f for f in contract.categorical} if contract else {}

    columns = list(params.columns) or [str(c) for c in frame.columns]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"the training data lacks the schema columns {missing}")
    # One table-level check that every column is present (cheaper than one per column;
    # the column-level expectations below also fail, by name, on a missing column).
    expectations: list[dict[str, Any]] = [
        {
            "type": "expect_table_columns_to_match_set",
            "kwargs": {"column_set": sorted(columns), "exact_match": False},
        }
    ]
    mostly = float(params.range_mostly)
    tolerance = float(params.null_rate_tolerance)
    for column in columns:
        series = frame[column]
        non_null = series.dropna()
        if column in categorical:
            expectations.append(
                {
                    "type": "expect_column_values_to_be_in_type_list",
                    "kwargs": {"column": column, "type_list": list(STRING_TYPES)},
                }
            )
            expectations.append(
                {
                    "type": "expect_column_values_to_be_in_set",
                    "kwargs": {
                        "column": column,
                        "value_set": [category_key(c) for c in categorical[column].categories],
                    },
                }
            )
        elif pd.api.types.is_bool_dtype(series):
            expectations.append(
                {
                    "type": "expect_column_values_to_be_in_set",
                    "kwargs": {"column": column, "value_set": [False, True]},
                }
            )
        elif pd.api.types.is_numeric_dtype(series):
            expectations.append(
                {
                    "type": "expect_column_values_to_be_in_type_list",
                    "kwargs": {"column": column, "type_list": list(NUMERIC_TYPES)},
                }
            )
            if len(non_null):
                expectations.append(
                    {
                        "type": "expect_column_values_to_be_between",
                        "kwargs": {
                            "column": column,
                            "min_value": _number(non_null.min()),
                            "max_value": _number(non_null.max()),
                            "mostly": mostly,
                        },
                    }
                )
        else:
            expectations.append(
                {
                    "type": "expect_column_values_to_be_in_type_list",
                    "kwargs": {"column": column, "type_list": list(STRING_TYPES)},
                }
            )
            categories = sorted({str(v) for v in non_null.unique()})
            if len(categories) <= params.max_categories:
                expectations.append(
                    {
                        "type": "expect_column_values_to_be_in_set",
                        "kwargs": {"column": column, "value_set": categories},
                    }
                )
        null_rate = float(series.isna().mean()) if len(series) else 0.0
        kwargs: dict[str, Any] = {"column": column}
        if null_rate > 0:
            kwargs["mostly"] = max(0.0, 1.0 - null_rate - tolerance)
        expectations.append({"type": "expect_column_values_to_not_be_null", "kwargs": kwargs})
    return {"name": name, "expectations": expectations, "meta": {}}


def _clean_suite(suite: dict[str, Any]) -> dict[str, Any]:
    """The parts of a suite that define it (no ids, no GX version stamps)."""
    expectations = suite.get("expectations")
    if not isinstance(expectations, list) or not expectations:
        raise InputError("the schema suite has no expectations; an empty suite proves nothing")
    cleaned: list[dict[str, Any]] = []
    for item in expectations:
        if not isinstance(item, dict) or "type" not in item or "kwargs" not in item:
            raise InputError("each expectation of the schema suite needs 'type' and 'kwargs'")
        cleaned.append({"type": str(item["type"]), "kwargs": dict(item["kwargs"])})
    return {"name": str(suite.get("name") or "supplied"), "expectations": cleaned}


def as_gx_frame(frame: pd.DataFrame, contract: DataContract | None = None) -> pd.DataFrame:
    """``frame`` as GX checks it: pandas string and category columns as ``object`` (GX 1.x
    type checks miss ``str`` and ``category``), and the categorical features of
    ``contract`` as category texts (``2``, ``2.0`` and ``"2"`` alike), nulls kept."""
    import pandas as pd

    categorical = {f.name for f in contract.categorical} if contract else set()
    convert = [
        c
        for c in frame.columns
        if c in categorical or isinstance(frame[c].dtype, pd.StringDtype | pd.CategoricalDtype)
    ]
    if not convert:
        return frame
    out = frame.copy(deep=False)
    for c in convert:
        column = frame[c].astype(object)
        if c in categorical:
            # astype(object) again: pandas infers a string dtype for map's result
            column = column.map(lambda v: None if pd.isna(v) else category_key(v)).astype(object)
        out[c] = column
    return out


def run_suite(frame: pd.DataFrame, suite: dict[str, Any]) -> dict[str, Any]:
    """Validate ``frame`` against ``suite`` with GX; return GX's result as JSON data."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"  # no usage analytics, ever
    with warnings.catch_warnings():
        # GX 1.x imports the deprecated ``sre_constants`` module.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="great_expectations")
        warnings.filterwarnings("ignore", message="module 'sre_constants' is deprecated")
        import great_expectations as gx
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        )
        context = gx.get_context(mode="ephemeral", project_config=config)
        source = context.data_sources.add_pandas(name="govreg")
        asset = source.add_dataframe_asset(name="validation")
        batch_definition = asset.add_batch_definition_whole_dataframe("whole")
        try:
            gx_suite = gx.ExpectationSuite(
                name=suite["name"], expectations=[dict(e) for e in suite["expectations"]]
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError(f"the schema suite is not a valid GX suite: {exc}") from exc
        batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(gx_suite, result_format="SUMMARY")
        # GX leaves to_json_dict unannotated.
        data: dict[str, Any] = result.to_json_dict()  # type: ignore[no-untyped-call]
    return data


def summarise(gx_result: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per expectation (sorted): type, column, success and the key counts."""
    lines: list[dict[str, Any]] = []
    for item in gx_result.get("results", []):
        config = item.get("expectation_config", {})
        kwargs = {k: v for k, v in config.get("kwargs", {}).items() if k != "batch_id"}
        result = item.get("result") or {}
        line: dict[str, Any] = {
            "type": config.get("type"),
            "column": kwargs.get("column"),
            "success": bool(item.get("success")),
        }
        for key in _KEPT_RESULT_KEYS:
            if key in result:
                line[key] = result[key]
        missing = ((result.get("details") or {}).get("mismatched") or {}).get("missing")
        if missing:
            line["missing_columns"] = sorted(str(c) for c in missing)
        if result.get("partial_unexpected_list"):
            line["unexpected_examples"] = sorted(
                {str(v) for v in result["partial_unexpected_list"]}
            )[:10]
        exception = item.get("exception_info") or {}
        if exception.get("raised_exception"):
            line["exception"] = str(exception.get("exception_message") or "")
        line["_order"] = json.dumps(kwargs, sort_keys=True, default=str)
        lines.append(line)
    # GX does not keep the suite's order: sort by column, type and arguments.
    lines.sort(
        key=lambda x: (x["column"] is not None, str(x["column"]), str(x["type"]), x.pop("_order"))
    )
    return lines


def _describe(line: dict[str, Any]) -> str:
    if "missing_columns" in line:
        return f"{line['type']} missing {line['missing_columns']}"
    text = f"{line['type']}({line['column']})"
    if "unexpected_examples" in line:
        text += f" unexpected {line['unexpected_examples']}"
    return text


def evaluate(spec: GateSpecLike, inputs: GateInputs) -> GateResult:
    """The validation data passes the training-derived (or supplied) GX suite."""
    params: DataSchemaParamsLike = params_of(spec)
    if inputs.schema_suite is not None:
        suite = _clean_suite(inputs.schema_suite)
        source = "supplied"
    else:
        suite = _clean_suite(derive_suite(inputs.train, params, contract=inputs.contract))
        source = "derived"
    if len(inputs.validation) == 0:
        raise InputError("the validation data has no rows")
    gx_result = run_suite(as_gx_frame(inputs.validation, inputs.contract), suite)
    lines = summarise(gx_result)
    failed = [line for line in lines if not line["success"]]
    # Warn when more than half of the tolerated share lies outside the training ranges.
    warn_share = (1.0 - float(params.range_mostly)) / 2.0
    outside = [
        line
        for line in lines
        if line["success"]
        and line["type"] == "expect_column_values_to_be_between"
        and int(line.get("unexpected_count") or 0)
        > warn_share * int(line.get("element_count") or 0)
    ]
    verdict: Verdict
    if failed:
        verdict = "failed"
        named = ", ".join(_describe(line) for line in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        message = f"{len(failed)} of {len(lines)} expectations failed: {named}{more}"
    elif outside:
        verdict = "warned"
        message = (
            f"all {len(lines)} expectations passed; values outside the training range in "
            + ", ".join(str(line["column"]) for line in outside)
        )
    else:
        verdict = "passed"
        message = f"all {len(lines)} expectations passed"
    values = {
        "expectations": str(len(lines)),
        "failed_expectations": str(len(failed)),
        "success_percent": fmt(100.0 * (len(lines) - len(failed)) / len(lines)),
    }
    thresholds = {
        "range_mostly": fmt(params.range_mostly),
        "null_rate_tolerance": fmt(params.null_rate_tolerance),
    }
    details = {
        "suite_source": source,
        "suite": jsonable(suite),
        "results": jsonable(lines),
    }
    return GateResult(
        gate_id=spec.id,
        kind=spec.kind,
        verdict=verdict,
        blocking=spec.blocking,
        values=values,
        thresholds=thresholds,
        details=details,
        library_versions=library_versions("great-expectations", "pandas"),
        message=message,
    )
