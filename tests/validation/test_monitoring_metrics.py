"""Monitoring measurements (validation/monitoring.py) against direct computations:
numpy for the bins and PSI, the stability gate's own PSI, sklearn and scipy for
discrimination, scipy's beta distribution for the Jeffreys interval, pandas for the
live adverse impact ratio; and every refusal of bad input."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import beta, ks_2samp
from sklearn.metrics import roc_auc_score

from core.errors import InputError
from validation import monitoring as m
from validation.stability import SHARE_FLOOR, categorical_psi, numeric_psi

RNG_SEED = 20261206


def _direct_psi(e: np.ndarray, a: np.ndarray) -> float:
    e = np.maximum(e, SHARE_FLOOR)
    a = np.maximum(a, SHARE_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


# -- reference and PSI -------------------------------------------------------------------
def test_numeric_reference_is_the_deciles_with_edge_values_in_the_lower_bin() -> None:
    ref = np.arange(1.0, 101.0)  # 1..100
    bins = m.freeze_numeric(np.r_[ref, np.nan, np.nan])  # missing values left out
    expected_edges = np.quantile(ref, np.linspace(0, 1, 11)[1:-1])
    assert bins.edges == tuple(expected_edges.tolist())
    # np.digitize(right=True): edges[i-1] < x <= edges[i], the gate's searchsorted "left"
    counts = np.bincount(np.digitize(ref, expected_edges, right=True), minlength=10)
    assert bins.shares == tuple((counts / 100).tolist())
    assert bins.shares == (0.1,) * 10


def test_numeric_psi_equals_the_direct_formula_and_the_stability_gate() -> None:
    rng = np.random.default_rng(RNG_SEED)
    ref = rng.normal(0, 1, 5000)
    live = np.r_[rng.normal(0.4, 1.3, 3000), [np.nan] * 40]
    bins = m.freeze_numeric(ref)
    edges = np.asarray(bins.edges)
    e = np.bincount(np.digitize(ref, edges, right=True), minlength=edges.size + 1) / ref.size
    clean = live[~np.isnan(live)]
    a = np.bincount(np.digitize(clean, edges, right=True), minlength=edges.size + 1) / clean.size
    got = m.psi(bins, live)
    assert got == pytest.approx(_direct_psi(e, a), rel=1e-12)
    assert got == numeric_psi(ref, live)[0]  # the gate's measurement, exactly
    assert got > 0.1


def test_psi_of_the_reference_against_itself_is_zero() -> None:
    ref = np.linspace(0, 1, 997)
    assert m.psi(m.freeze_numeric(ref), ref) == 0.0
    cats = ["a", "b", "b", None, "c"] * 10
    assert m.psi(m.freeze_categorical(cats), cats) == 0.0


def test_categorical_psi_counts_unseen_live_categories_and_equals_the_gate() -> None:
    ref = ["A"] * 60 + ["B"] * 30 + [None] * 10
    live = ["A"] * 40 + ["B"] * 30 + ["Z"] * 20 + [np.nan] * 10
    bins = m.freeze_categorical(ref)
    assert bins.categories == ("<missing>", "A", "B")
    assert bins.shares == (0.1, 0.6, 0.3)
    expected, actual = m.live_shares(bins, live)
    # sorted union: <missing>, A, B, Z (Z absent from the reference, share 0)
    assert expected == [0.1, 0.6, 0.3, 0.0]
    assert actual == [0.1, 0.4, 0.3, 0.2]
    got = m.psi(bins, live)
    assert got == pytest.approx(_direct_psi(np.array(expected), np.array(actual)), rel=1e-12)
    gate, _ = categorical_psi(pd.Series(ref, dtype=object), pd.Series(live, dtype=object))
    assert got == gate


def test_category_texts_match_as_the_contract_matches() -> None:
    bins = m.freeze_categorical([2, 2.0, "2", 3])
    assert bins.categories == ("2", "3")
    assert bins.shares == (0.75, 0.25)
    # True hashes equal to 1 but is the category "True"
    bins = m.freeze_categorical([1, True, 1.0, None, np.nan, "True", False, 0])
    assert bins.categories == ("0", "1", "<missing>", "False", "True")
    assert bins.shares == (0.125, 0.25, 0.25, 0.125, 0.25)


def test_reference_round_trips_through_its_recorded_data() -> None:
    rng = np.random.default_rng(RNG_SEED)
    numeric = m.freeze_numeric(rng.gamma(2.0, 3.0, 1000))
    assert m.bins_from_data(numeric.data()).data() == numeric.data()
    cats = m.freeze_categorical(["x", "y", "y", None])
    assert m.bins_from_data(cats.data()) == cats
    assert cats.data() == {
        "kind": "categorical",
        "categories": ["<missing>", "x", "y"],
        "shares": ["0.25", "0.25", "0.5"],
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "'kind'"),
        ({"kind": "numeric", "edges": ["1"], "shares": ["1"]}, "one less than the shares"),
        ({"kind": "numeric", "edges": ["2", "1"], "shares": ["a", "b", "c"]}, "not a decimal"),
        ({"kind": "numeric", "edges": ["2", "1"], "shares": ["0", "0", "1"]}, "must ascend"),
        ({"kind": "numeric", "edges": [1], "shares": ["0", "1"]}, "not a decimal string"),
        ({"kind": "numeric", "edges": ["NaN"], "shares": ["0", "1"]}, "not finite"),
        ({"kind": "categorical", "categories": ["b", "a"], "shares": ["1", "0"]}, "sorted"),
        ({"kind": "other", "shares": []}, "unknown kind 'other'"),
    ],
)
def test_a_malformed_reference_is_refused_naming_what_is_wrong(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError, match="monitoring reference is malformed") as info:
        m.bins_from_data(data)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: m.freeze_numeric([np.nan, np.nan]), "no non-missing values"),
        (lambda: m.freeze_numeric([1.0, 2.0], bins=1), "at least 2 bins, not 1"),
        (lambda: m.freeze_numeric([1.0, np.inf]), "infinite"),
        (lambda: m.freeze_numeric(["a", "b"]), "not numbers"),
        (lambda: m.freeze_numeric([[1.0], [2.0]]), "one column"),
        (lambda: m.freeze_categorical([]), "no rows"),
        (lambda: m.psi(m.freeze_numeric([1.0, 2.0]), [np.nan]), "live column has no non-missing"),
        (lambda: m.psi(m.freeze_categorical(["a"]), []), "live column has no rows"),
    ],
)
def test_bad_columns_are_refused(call: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        call()


# -- rates -------------------------------------------------------------------------------
def test_out_of_range_and_unseen_category_rates() -> None:
    live = np.array([-1.0, 0.0, 5.0, 10.0, 11.0, np.nan, np.nan, 3.0])
    # 6 non-missing; -1 and 11 outside [0, 10] (the bounds themselves inside)
    assert m.out_of_range_rate(live, 0.0, 10.0) == 2 / 6
    assert m.out_of_range_rate(live, None, 10.0) == 1 / 6
    assert m.out_of_range_rate(live, None, None) == 0.0
    assert m.out_of_range_rate([np.nan], 0.0, 1.0) == 0.0
    cats = ["A", "B", "Q", None, 2.0, "2", "R"]
    # non-missing: A B Q 2 2 R; known A, B, 2 -> Q and R unseen
    assert m.unseen_category_rate(cats, ["A", "B", 2]) == 2 / 6
    assert m.unseen_category_rate([None], ["A"]) == 0.0


def test_approval_and_override_rates() -> None:
    assert m.approval_rate(["approve", "decline", "approve", "approve"]) == 0.75
    with pytest.raises(InputError, match=r"not \['maybe'\]"):
        m.approval_rate(["approve", "maybe"])
    with pytest.raises(InputError, match="no decisions"):
        m.approval_rate([])
    assert m.override_rate(3, 200) == 0.015
    with pytest.raises(InputError, match=r"\(5/4\)"):
        m.override_rate(5, 4)
    with pytest.raises(InputError, match=r"\(0/0\)"):
        m.override_rate(0, 0)


# -- outcomes ----------------------------------------------------------------------------
def test_discrimination_by_vintage_equals_sklearn_and_scipy() -> None:
    rng = np.random.default_rng(RNG_SEED)
    n = 6000
    vintage = rng.choice(["2026-01", "2026-02", "2026-03"], n)
    y = rng.binomial(1, 0.12, n)
    score = np.round(rng.normal(0, 1, n) + 1.1 * y, 2)  # ties on purpose
    got = m.discrimination_by_vintage(y, score, list(vintage))
    assert [v.vintage for v in got] == ["2026-01", "2026-02", "2026-03"]
    for v in got:
        keep = vintage == v.vintage
        assert v.rows == int(keep.sum())
        assert v.defaults == int(y[keep].sum())
        auc = roc_auc_score(y[keep], score[keep])
        assert v.auc == pytest.approx(auc, abs=1e-12)
        assert v.gini == pytest.approx(2 * auc - 1, abs=1e-12)
        ks = ks_2samp(score[keep][y[keep] == 1], score[keep][y[keep] == 0]).statistic
        assert v.ks == pytest.approx(ks, abs=1e-12)


def test_a_vintage_without_both_outcomes_has_counts_and_no_figures() -> None:
    got = m.discrimination_by_vintage([0, 0, 1, 0], [0.1, 0.2, 0.9, 0.3], ["a", "a", "b", "b"])
    assert got == [
        m.Vintage("a", 2, 0, None, None),
        m.Vintage("b", 2, 1, 1.0, 1.0),
    ]
    assert got[0].gini is None
    assert got[1].gini == 1.0


def test_jeffreys_interval_equals_scipy_beta_quantiles() -> None:
    for k, n in [(3, 50), (1, 7), (40, 41), (120, 1000)]:
        lower, upper = m.jeffreys_interval(k, n)
        assert lower == pytest.approx(beta.ppf(0.025, k + 0.5, n - k + 0.5), rel=1e-12)
        assert upper == pytest.approx(beta.ppf(0.975, k + 0.5, n - k + 0.5), rel=1e-12)
    lower, upper = m.jeffreys_interval(0, 20)
    assert lower == 0.0
    assert upper == pytest.approx(beta.ppf(0.975, 0.5, 20.5), rel=1e-12)
    lower, upper = m.jeffreys_interval(20, 20, confidence=0.9)
    assert lower == pytest.approx(beta.ppf(0.05, 20.5, 0.5), rel=1e-12)
    assert upper == 1.0


@pytest.mark.parametrize(
    ("k", "n", "confidence", "message"),
    [
        (5, 4, 0.95, r"\(5/4\)"),
        (0, 0, 0.95, r"\(0/0\)"),
        (-1, 4, 0.95, r"\(-1/4\)"),
        (1, 4, 1.0, "between 0 and 1, not 1.0"),
        (1, 4, 0.0, "not 0.0"),
    ],
)
def test_jeffreys_interval_refuses_impossible_counts(
    k: int, n: int, confidence: float, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        m.jeffreys_interval(k, n, confidence)


def test_calibration_by_grade() -> None:
    y = np.array([0, 0, 0, 1, 0, 1, 1, 1, 0, 0])
    p = np.array([0.02, 0.04, 0.03, 0.05, 0.5, 0.6, 0.7, 0.4, 0.1, 0.2])
    grade = ["A", "A", "A", "A", "C", "C", "C", "C", "B", "B"]
    got = m.calibration_by_grade(y, p, grade)
    assert [(g.grade, g.rows, g.defaults) for g in got] == [("A", 4, 1), ("B", 2, 0), ("C", 4, 3)]
    a, b, c = got
    assert a.predicted == pytest.approx(0.035, abs=1e-15)
    assert a.observed == 0.25
    assert (a.lower, a.upper) == m.jeffreys_interval(1, 4)
    assert a.calibrated  # 0.035 inside the wide interval of 1 in 4
    assert b.predicted == pytest.approx(0.15, abs=1e-15)
    assert (b.lower, b.observed) == (0.0, 0.0)
    assert c.predicted == pytest.approx(0.55, abs=1e-15)
    assert c.observed == 0.75
    # far too few rows to call any grade miscalibrated; with many, a gap shows:
    many_y = np.r_[np.ones(300, dtype=int), np.zeros(700, dtype=int)]
    (one,) = m.calibration_by_grade(many_y, np.full(1000, 0.2), ["A"] * 1000)
    assert one.observed == 0.3
    assert one.upper < 0.34
    assert one.lower > 0.27
    assert not one.calibrated


def test_calibration_refuses_bad_probabilities_and_lengths() -> None:
    with pytest.raises(InputError, match=r"must lie in \[0, 1\]"):
        m.calibration_by_grade([0, 1], [0.2, 1.2], ["A", "A"])
    with pytest.raises(InputError, match=r"must lie in \[0, 1\]"):
        m.calibration_by_grade([0, 1], [0.2, np.nan], ["A", "A"])
    with pytest.raises(InputError, match="one entry per decision"):
        m.calibration_by_grade([0, 1], [0.2, 0.3], ["A"])
    with pytest.raises(InputError, match=r"0 \(repaid\) or 1 \(default\)"):
        m.calibration_by_grade([0, 2], [0.2, 0.3], ["A", "A"])
    with pytest.raises(InputError, match=r"0 \(repaid\) or 1 \(default\)"):
        m.discrimination_by_vintage([True, False], [0.2, 0.3], ["A", "A"])


def test_adverse_impact_equals_a_pandas_groupby() -> None:
    rng = np.random.default_rng(RNG_SEED)
    group = rng.choice(["F", "M", "X"], 3000, p=[0.45, 0.5, 0.05]).astype(object)
    group[:30] = None
    approved = rng.random(3000) < np.where(group == "F", 0.55, 0.7)
    got = m.adverse_impact(approved, list(group))
    frame = pd.DataFrame({"g": pd.Series(group).fillna("<missing>"), "a": approved})
    rates = frame.groupby("g")["a"].mean()
    assert got.groups == tuple(rates.index)
    assert got.approval_rates == tuple(rates.to_list())
    assert got.rows == tuple(frame.groupby("g").size().to_list())
    assert got.ratio == rates.min() / rates.max()
    assert got.lowest == rates.idxmin()
    assert got.reference == rates.idxmax()


def test_adverse_impact_refusals_and_no_approvals() -> None:
    assert m.adverse_impact(np.array([False, False]), ["a", "b"]).ratio == 1.0
    with pytest.raises(InputError, match="booleans"):
        m.adverse_impact(np.array([1, 0]), ["a", "b"])
    with pytest.raises(InputError, match="one entry per decision"):
        m.adverse_impact(np.array([True]), ["a", "b"])


# -- judging -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "level"),
    [(0.0999999999999, "ok"), (0.1, "warn"), (0.2499, "warn"), (0.25, "breach"), (3.0, "breach")],
)
def test_judge_compares_the_shown_decimal(value: float, level: str) -> None:
    assert m.judge(value, warn=Decimal("0.10"), breach=Decimal("0.25")) == level


@pytest.mark.parametrize(
    ("value", "level"), [(0.81, "ok"), (0.8, "warn"), (0.71, "warn"), (0.7, "breach")]
)
def test_judge_where_lower_is_worse(value: float, level: str) -> None:
    got = m.judge(value, warn=Decimal("0.80"), breach=Decimal("0.70"), higher_is_worse=False)
    assert got == level


# -- hostile input -----------------------------------------------------------------------
_values = st.lists(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(2**70), 2**70),
        st.none(),
        st.text(max_size=5),
        st.booleans(),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(ref=_values, live=_values)
def test_any_column_gives_a_figure_or_a_clear_refusal(ref: list[Any], live: list[Any]) -> None:
    for freeze in (m.freeze_numeric, m.freeze_categorical):
        try:
            bins = freeze(ref)
        except InputError:
            continue
        assert m.bins_from_data(bins.data()).data() == bins.data()
        try:
            value = m.psi(bins, live)
        except InputError:
            continue
        assert np.isfinite(value)
        assert value >= 0


@settings(max_examples=300, deadline=None)
@given(
    data=st.recursive(
        st.one_of(st.none(), st.text(max_size=8), st.integers(), st.floats(), st.booleans()),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_any_recorded_reference_reads_back_or_is_refused(data: Any) -> None:
    candidate = (
        data if isinstance(data, dict) else {"kind": "numeric", "edges": data, "shares": data}
    )
    try:
        bins = m.bins_from_data(candidate)
    except InputError:
        return
    assert isinstance(bins, m.NumericBins | m.CategoryBins)
