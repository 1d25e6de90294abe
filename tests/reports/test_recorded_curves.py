"""Reading the curves a performance gate result recorded: every malformed field is named."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InputError
from reports.curves import Curves, parse, recorded
from validation.performance import curves


def _good() -> dict[str, Any]:
    return curves(np.array([1, 1, 0, 0]), np.array([0.9, 0.5, 0.5, 0.1]))


def _gate(**details: Any) -> dict[str, Any]:
    return {"kind": "performance", "values": {"auc": "0.875"}, "details": details}


def test_a_recorded_result_reads_back_as_the_numbers_it_holds() -> None:
    found = recorded(_gate(rows=4, curves=_good()))
    assert found == Curves(
        roc=[(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)],
        ks=(0.0, 0.5, 0.5, 0.9),
        auc=0.875,
        hist_edges=[i / 20 for i in range(21)],
        hist_defaults=[0.0] * 10 + [0.5] + [0.0] * 7 + [0.5, 0.0],
        hist_repaid=[0.0, 0.0, 0.5] + [0.0] * 7 + [0.5] + [0.0] * 9,
        rows=4,
        source="recorded",
    )
    assert found.public()["ks"] == {"fpr": "0", "tpr": "0.5", "ks": "0.5", "score": "0.9"}
    assert found.public()["source"] == "recorded by the performance gate at evaluation"


def test_a_result_recorded_before_the_curves_has_none() -> None:
    assert recorded(_gate(rows=4, calibration=[])) is None
    assert recorded({"kind": "performance", "verdict": "error"}) is None


def test_a_useless_models_ks_score_reads_as_infinity() -> None:
    found = recorded(_gate(rows=4, curves=curves(np.array([1, 0]), np.array([0.1, 0.9]))))
    assert found is not None
    assert found.ks == (0.0, 0.0, 0.0, math.inf)


def _set(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = _good()
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


def _drop(key: str) -> dict[str, Any]:
    data = _good()
    del data[key]
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_drop("ks"), "recorded curves are malformed (KeyError: 'ks')"),
        (_drop("histogram"), "recorded curves are malformed (KeyError: 'histogram')"),
        (_set(("roc", 1), ["0"]), "recorded curves are malformed (ValueError: not enough"),
        (_set(("roc",), 3), "recorded curves are malformed (TypeError: 'int' object"),
        (_set(("histogram",), []), "recorded curves are malformed (TypeError: list indices"),
        (_set(("roc", 0, 1), 0.5), "recorded curves: roc[0][1] is not a decimal string"),
        (_set(("ks", "score"), "high"), "recorded curves: ks.score is not a number: 'high'"),
        (_set(("histogram", "edges", 3), None), "histogram.edges[3] is not a decimal string"),
        (_set(("histogram", "defaults", 2), -1), "histogram.defaults[2] is not a count"),
        (_set(("histogram", "repaid", 0), True), "histogram.repaid[0] is not a count"),
        (_set(("histogram", "repaid", 0), "1"), "histogram.repaid[0] is not a count"),
        (_set(("roc",), []), "recorded curves: roc has no points"),
        (
            _set(("histogram", "edges"), ["0", "1"]),
            "recorded curves: 2 histogram edges for 20 and 20 bins",
        ),
        (
            _set(("histogram", "defaults"), [1]),
            "recorded curves: 21 histogram edges for 1 and 20 bins",
        ),
    ],
)
def test_every_malformed_field_is_an_input_error_naming_it(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError) as caught:
        parse(data, auc=0.5, rows=4, source="recorded")
    assert message in str(caught.value)


@pytest.mark.parametrize("auc", [None, 0.8, "high"])
def test_a_gate_without_a_readable_auc_is_an_input_error(auc: Any) -> None:
    gate = _gate(rows=4, curves=_good())
    gate["values"] = {} if auc is None else {"auc": auc}
    with pytest.raises(InputError, match="recorded curves: the gate's auc is not"):
        recorded(gate)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.text(max_size=4)
    | st.sampled_from(["0", "0.5", "1", "Infinity", "NaN", "-0.1"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(data=_json)
def test_any_json_reads_as_curves_or_an_input_error(data: Any) -> None:
    shaped = data if isinstance(data, dict) else {"roc": data}
    try:
        found = parse(shaped, auc=0.5, rows=1, source="recorded")
    except InputError:
        return
    assert found.roc
    assert len(found.hist_defaults) == len(found.hist_edges) - 1


@settings(max_examples=200, deadline=None)
@given(
    path=st.sampled_from(
        [
            ("roc", 0),
            ("roc", 2, 0),
            ("ks",),
            ("ks", "fpr"),
            ("histogram", "edges"),
            ("histogram", "edges", 0),
            ("histogram", "defaults", 5),
            ("histogram", "repaid"),
        ]
    ),
    value=_json,
)
def test_one_field_replaced_by_any_json_reads_or_is_an_input_error(
    path: tuple[Any, ...], value: Any
) -> None:
    data = copy.deepcopy(_good())
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        found = parse(data, auc=0.5, rows=4, source="recorded")
    except InputError:
        return
    assert len(found.hist_defaults) == len(found.hist_edges) - 1
