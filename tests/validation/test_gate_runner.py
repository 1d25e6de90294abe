"""The runner fails closed, and the default policy evaluates all six gates."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from core.canonical import canonical_bytes
from policies.loader import find_policy
from policies.schema import GateSpec, LatencyParams, PerformanceParams, Policy
from validation.inputs import GateInputs
from validation.result import GateResult, fmt, jsonable, worst
from validation.runner import EmptyPolicyError, run_gate, run_policy
from validation.spec import GateSpecLike


def crashing_gate(spec: GateSpecLike, inputs: GateInputs) -> GateResult:
    raise ZeroDivisionError("division by zero in the measurement")


def test_a_gate_that_raises_is_an_error(make_inputs: Callable[..., GateInputs]) -> None:
    spec = GateSpec(id="performance", kind="performance")
    result = run_gate(spec, make_inputs(), gates={"performance": crashing_gate})
    assert result.verdict == "error"
    assert result.message == "gate raised ZeroDivisionError: division by zero in the measurement"
    assert result.blocking is True
    assert not result.ok
    assert result.values == {}


def test_unknown_kind_is_an_error(make_inputs: Callable[..., GateInputs]) -> None:
    # The schema refuses unknown kinds; a spec built around it must not pass either.
    spec = GateSpec.model_construct(
        id="sentiment", kind="sentiment", blocking=True, params=PerformanceParams()
    )
    result = run_gate(spec, make_inputs())
    assert result.verdict == "error"
    assert result.message == "unknown gate kind 'sentiment': refusing to evaluate it"


def test_parameters_of_another_kind_are_an_error(make_inputs: Callable[..., GateInputs]) -> None:
    spec = GateSpec.model_construct(
        id="performance", kind="performance", blocking=True, params=LatencyParams()
    )
    result = run_gate(spec, make_inputs())
    assert result.verdict == "error"
    assert result.message == (
        "gate raised TypeError: gate 'performance' of kind 'performance' "
        "has parameters of kind 'latency'"
    )


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"model_text": ""}, "missing or invalid input: the model text is empty"),
        ({"model_text": "not a model"}, "missing or invalid input: the model is not a LightGBM"),
        ({"target": "bad_loan"}, "missing or invalid input: the validation data lacks the target"),
    ],
)
def test_missing_input_is_an_error(
    make_inputs: Callable[..., GateInputs], override: dict[str, Any], reason: str
) -> None:
    result = run_gate(GateSpec(id="performance", kind="performance"), make_inputs(**override))
    assert result.verdict == "error"
    assert result.message.startswith(reason)


def test_missing_feature_column_is_an_error(
    make_inputs: Callable[..., GateInputs], valid_df: pd.DataFrame
) -> None:
    inputs = make_inputs(validation=valid_df.drop(columns=["income"]))
    for kind in ("performance", "stability", "latency", "explainability", "fairness"):
        result = run_gate(GateSpec(id=kind, kind=kind), inputs)
        assert result.verdict == "error", kind
        assert "the validation data lacks model feature columns ['income']" in result.message


def test_non_binary_target_is_an_error(
    make_inputs: Callable[..., GateInputs], valid_df: pd.DataFrame
) -> None:
    inputs = make_inputs(validation=valid_df.assign(default=valid_df["default"] * 2))
    result = run_gate(GateSpec(id="performance", kind="performance"), inputs)
    assert result.verdict == "error"
    assert "must hold only 0 and 1" in result.message


def test_default_policy_runs_every_gate_deterministically(
    make_inputs: Callable[..., GateInputs],
) -> None:
    policy = find_policy("credit-risk")
    results = run_policy(policy, make_inputs())
    assert [r.gate_id for r in results] == [g.id for g in policy.gates]
    assert [r.kind for r in results] == [
        "performance",
        "fairness",
        "data_schema",
        "explainability",
        "stability",
        "latency",
    ]
    by_kind = {r.kind: r for r in results}
    for kind in ("performance", "data_schema", "explainability", "stability", "latency"):
        assert by_kind[kind].verdict == "passed", by_kind[kind].message
    # 10,000 rows: the fairness verdict depends on sampling noise of the intersections
    assert by_kind["fairness"].verdict in ("passed", "failed")
    assert by_kind["performance"].thresholds == {"min_auc": "0.8", "min_ks": "0.35"}
    again = run_policy(policy, make_inputs())
    for first, second in zip(results, again, strict=True):
        if first.kind == "latency":  # measured times differ from run to run
            assert first.verdict == second.verdict
            continue
        assert canonical_bytes(first.canonical()) == canonical_bytes(second.canonical())


def test_run_policy_tells_each_gate_before_it_runs() -> None:
    """The progress the evaluation use case shows: one call per gate, in order."""
    policy = find_policy("credit-risk")
    gates = [
        GateSpec.model_construct(id=name, kind="unknown", blocking=True, params=None)
        for name in ("first", "second")
    ]
    seen: list[str] = []
    results = run_policy(
        Policy.model_construct(**{**dict(policy), "gates": gates}),
        GateInputs.__new__(GateInputs),
        before_gate=lambda spec: seen.append(str(spec.id)),
    )
    assert seen == ["first", "second"]
    assert [(r.gate_id, r.verdict) for r in results] == [("first", "error"), ("second", "error")]


def test_an_empty_policy_is_refused() -> None:
    policy = find_policy("credit-risk")
    empty = Policy.model_construct(**{**dict(policy), "gates": []})
    with pytest.raises(EmptyPolicyError, match="has no gates"):
        run_policy(empty, GateInputs.__new__(GateInputs))


def test_worst_and_jsonable() -> None:
    assert worst(["passed", "warned"]) == "warned"
    assert worst(["warned", "insufficient_data", "passed"]) == "insufficient_data"
    assert worst(["insufficient_data", "failed"]) == "failed"
    assert worst(["failed", "error"]) == "error"
    assert worst([]) == "passed"
    assert jsonable({"a": 0.5, "b": [1, Decimal("0.10"), (2.0, None)], 3: True}) == {
        "a": "0.5",
        "b": [1, "0.10", ["2", None]],
        "3": True,
    }
    assert fmt(math.nan) == "NaN"
    with pytest.raises(TypeError):
        jsonable(object())
