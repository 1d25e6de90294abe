"""Fairness gate: adverse impact ratio and equalized odds, checked against fairlearn and aif360."""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.canonical import canonical_bytes
from core.errors import InputError
from govreg.synthetic import make_credit_data, train_lightgbm
from policies.schema import GateSpec
from validation import fairness
from validation.inputs import GateInputs
from validation.result import fmt
from validation.runner import run_gate

# aif360 ships modules with invalid escape sequences (compile-time warnings on first import).
pytestmark = [
    pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:invalid escape sequence:SyntaxWarning"),
]

TOLERANCE = Decimal("1e-9")
# Rates below 1 carry 12 significant digits: within 5e-13 of the float.
RATE_TOLERANCE = Decimal("1e-12")
ATTRIBUTES = ("sex", "age_band", "sex|age_band")


def spec(**params: object) -> GateSpec:
    # 10,000 validation rows leave intersection groups of ~300 rows (~50 defaults), whose
    # true positive rates vary by a few points from sampling alone: 0.15 keeps the unbiased
    # model's point estimates clear of that noise (the default policy's 0.10 is for
    # full-size validation sets); the bootstrap interval still reaches above it.
    base: dict[str, object] = {
        "min_adverse_impact_ratio": 0.80,
        "max_equalized_odds_difference": 0.15,
        "min_group_size": 30,
        "bootstrap_samples": 200,
    }
    base.update(params)
    return GateSpec(id="fairness", kind="fairness", params=base)


def aif360_metrics() -> ModuleType:
    """aif360's sklearn metrics, imported without its root log handler and optional-module logs."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    logging.disable(logging.WARNING)
    try:
        import aif360.sklearn.metrics as metrics
    finally:
        logging.disable(logging.NOTSET)
        root.handlers[:] = handlers
    module: ModuleType = metrics
    return module


def close(text: str, value: float, tolerance: Decimal = TOLERANCE) -> bool:
    return abs(Decimal(text) - Decimal(repr(float(value)))) < tolerance


def labels_of(frame: pd.DataFrame, attribute: str) -> pd.Series:
    """Each row's group label: the attribute's value, or the values of an intersection joined."""
    return frame[attribute.split("|")].astype(str).agg("|".join, axis=1)


@pytest.fixture(scope="module")
def biased_model() -> tuple[str, pd.DataFrame, pd.DataFrame]:
    train = make_credit_data(10_000, seed=21, biased=True)
    valid = make_credit_data(10_000, seed=22, biased=True)
    return train_lightgbm(train, num_boost_round=60), train, valid


def test_unbiased_model_equals_fairlearn_and_aif360_and_warns_on_its_intersection(
    make_inputs: Callable[..., GateInputs], valid_df: pd.DataFrame
) -> None:
    from fairlearn.metrics import (
        MetricFrame,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    metrics = aif360_metrics()
    inputs = make_inputs()
    result = run_gate(spec(), inputs)
    # Every point estimate passes; the intersection's equalized odds interval does not.
    intersection = result.details["attributes"]["sex|age_band"]
    assert result.verdict == "warned"
    assert result.message == (
        "sex|age_band: equalized odds difference confidence interval "
        f"[{intersection['eod_ci_low']}, {intersection['eod_ci_high']}] reaches above 0.15"
    )
    assert Decimal(result.values["max_equalized_odds_difference"]) <= Decimal("0.15")
    assert Decimal(intersection["eod_ci_high"]) > Decimal("0.15")

    approved = (inputs.pred_validation < 0.5).astype(int)
    declined = 1 - approved
    y = valid_df["default"].to_numpy()
    for attribute in ATTRIBUTES:
        columns = attribute.split("|")
        sensitive = valid_df[columns] if len(columns) > 1 else valid_df[attribute]
        entry = result.details["attributes"][attribute]
        assert entry["excluded_groups"] == []
        frame = MetricFrame(
            metrics={
                "selection": selection_rate,
                "tpr": true_positive_rate,
                "fpr": false_positive_rate,
            },
            y_true=y,
            y_pred=declined,
            sensitive_features=sensitive,
        )
        by_group = frame.by_group
        by_group.index = [
            "|".join(map(str, k)) if isinstance(k, tuple) else k for k in by_group.index
        ]
        approval = 1 - by_group["selection"]
        groups = entry["groups"]
        assert [g["group"] for g in groups] == sorted(by_group.index)
        best = approval.max()
        assert entry["reference_group"] == approval.idxmax()
        for group in groups:
            assert close(group["approval_rate"], approval[group["group"]])
            assert close(group["adverse_impact_ratio"], approval[group["group"]] / best)
            low, high = Decimal(group["air_ci_low"]), Decimal(group["air_ci_high"])
            assert low <= Decimal(group["adverse_impact_ratio"]) <= high
            tpr, fpr = by_group.loc[group["group"], "tpr"], by_group.loc[group["group"], "fpr"]
            assert close(group["true_positive_rate"], tpr, RATE_TOLERANCE)
            assert close(group["false_positive_rate"], fpr, RATE_TOLERANCE)
        eod = equalized_odds_difference(y, declined, sensitive_features=sensitive)
        assert close(result.values[f"equalized_odds_difference.{attribute}"], eod, RATE_TOLERANCE)
        assert close(entry["equalized_odds_difference"], eod, RATE_TOLERANCE)
        assert Decimal(entry["eod_ci_low"]) <= Decimal(entry["eod_ci_high"])
        assert close(result.values[f"adverse_impact_ratio.{attribute}"], approval.min() / best)
        # aif360: each group (unprivileged) against the reference group (privileged)
        labels = labels_of(valid_df, attribute)
        reference = entry["reference_group"]
        for group in groups:
            if group["group"] == reference:
                continue
            rows = labels.isin([group["group"], reference]).to_numpy()
            y_true = pd.Series(y[rows], index=pd.Index(labels[rows].to_numpy(), name="g"))
            ratio = metrics.disparate_impact_ratio(
                y_true, approved[rows], prot_attr="g", priv_group=reference, pos_label=1
            )
            assert close(group["adverse_impact_ratio"], ratio)
    assert result.values["min_adverse_impact_ratio"] == min(
        result.values[f"adverse_impact_ratio.{a}"] for a in ATTRIBUTES
    )
    assert result.thresholds == {
        "min_adverse_impact_ratio": "0.8",
        "max_equalized_odds_difference": "0.15",
        "min_group_size": "30",
        "min_group_defaults": "30",
        "min_group_non_defaults": "30",
        "confidence": "0.95",
    }


def loop_bootstrap(
    frame: pd.DataFrame,
    declined: np.ndarray,
    references: dict[str, str],
    *,
    seed: int,
    samples: int,
    confidence: float,
) -> dict[str, Any]:
    """The gate's bootstrap written out plainly: a loop over groups and replicates.

    The same scheme and draw order as the gate (one generator for the attributes in
    order; per attribute defaults, then declined defaults, then declined
    non-defaults, each group by group, replicate by replicate), with every count
    taken from the data by pandas rather than from the gate.
    """
    rng = np.random.default_rng(seed)
    alpha = (1.0 - confidence) / 2.0
    y = frame["default"].to_numpy()
    out: dict[str, Any] = {}
    for attribute in ATTRIBUTES:
        labels = labels_of(frame, attribute).to_numpy()
        groups = sorted(set(labels.tolist()))
        k = len(groups)
        n = [int((labels == g).sum()) for g in groups]
        d = [int(((labels == g) & (y == 1)).sum()) for g in groups]
        tp = [int(((labels == g) & (y == 1) & declined).sum()) for g in groups]
        fp = [int(((labels == g) & (y == 0) & declined).sum()) for g in groups]
        draw_d = [[int(rng.binomial(n[i], d[i] / n[i])) for _ in range(samples)] for i in range(k)]
        draw_tp = [
            [int(rng.binomial(draw_d[i][b], tp[i] / d[i])) for b in range(samples)]
            for i in range(k)
        ]
        draw_fp = [
            [int(rng.binomial(n[i] - draw_d[i][b], fp[i] / (n[i] - d[i]))) for b in range(samples)]
            for i in range(k)
        ]
        ref = groups.index(references[attribute])
        ratios: list[list[float]] = [[] for _ in groups]
        eods: list[float] = []
        for b in range(samples):
            rate = [(n[i] - draw_tp[i][b] - draw_fp[i][b]) / n[i] for i in range(k)]
            for i in range(k):
                ratios[i].append(rate[i] / rate[ref])
            tpr = [draw_tp[i][b] / draw_d[i][b] for i in range(k)]
            fpr = [draw_fp[i][b] / (n[i] - draw_d[i][b]) for i in range(k)]
            eods.append(max(max(tpr) - min(tpr), max(fpr) - min(fpr)))
        out[attribute] = {
            "groups": groups,
            "draws": (draw_d, draw_tp, draw_fp),
            "air": [
                (float(np.quantile(r, alpha)), float(np.quantile(r, 1.0 - alpha))) for r in ratios
            ],
            "eod": (float(np.quantile(eods, alpha)), float(np.quantile(eods, 1.0 - alpha))),
        }
    return out


def test_bootstrap_intervals_equal_a_straightforward_loop_and_reproduce(
    make_inputs: Callable[..., GateInputs], valid_df: pd.DataFrame
) -> None:
    inputs = make_inputs()
    gate_spec = spec(seed=5, bootstrap_samples=150, confidence=0.9)
    result = run_gate(gate_spec, inputs)
    assert canonical_bytes(run_gate(gate_spec, make_inputs()).canonical()) == canonical_bytes(
        result.canonical()
    )
    attributes = result.details["attributes"]
    declined = inputs.pred_validation >= 0.5
    references = {a: attributes[a]["reference_group"] for a in ATTRIBUTES}
    loop = loop_bootstrap(valid_df, declined, references, seed=5, samples=150, confidence=0.9)
    for attribute in ATTRIBUTES:
        entry, expected = attributes[attribute], loop[attribute]
        assert [g["group"] for g in entry["groups"]] == expected["groups"]
        for group, (low, high) in zip(entry["groups"], expected["air"], strict=True):
            assert (group["air_ci_low"], group["air_ci_high"]) == (fmt(low), fmt(high))
        assert (entry["eod_ci_low"], entry["eod_ci_high"]) == tuple(map(fmt, expected["eod"]))

    # The module's raw numbers, not only their decimal strings, equal the loop's exactly.
    counts = fairness.attribute_counts(
        valid_df, ["sex", "age_band"], inputs.y_validation, ~declined
    )[0]
    replicates = fairness.bootstrap(counts, samples=150, rng=np.random.default_rng(5))
    draw_d, draw_tp, draw_fp = loop["sex"]["draws"]
    assert replicates.defaults.tolist() == draw_d
    assert replicates.declined_defaults.tolist() == draw_tp
    assert replicates.declined_non_defaults.tolist() == draw_fp
    everyone = np.ones(len(counts.groups), dtype=bool)
    low, high = fairness.percentile_interval(
        fairness.eod_replicates(replicates, everyone, everyone)[None, :], 0.9
    )
    assert (float(low[0]), float(high[0])) == loop["sex"]["eod"]
    reference = counts.groups.index(references["sex"])
    air_low, air_high = fairness.percentile_interval(
        fairness.air_replicates(replicates, reference), 0.9
    )
    assert list(zip(air_low.tolist(), air_high.tolist(), strict=True)) == loop["sex"]["air"]


def test_biased_model_fails_the_four_fifths_rule(
    biased_model: tuple[str, pd.DataFrame, pd.DataFrame], make_inputs: Callable[..., GateInputs]
) -> None:
    model, train, valid = biased_model
    result = run_gate(spec(), make_inputs(model_text=model, train=train, validation=valid))
    assert result.verdict == "failed"
    air = Decimal(result.values["adverse_impact_ratio.sex"])
    assert air < Decimal("0.8")
    approved = valid.assign(
        ok=make_inputs(model_text=model, validation=valid).pred_validation < 0.5
    )
    rates = approved.groupby("sex")["ok"].mean()
    assert close(result.values["adverse_impact_ratio.sex"], rates["female"] / rates["male"])
    assert f"sex: adverse impact ratio {fmt(air)} ('female' vs 'male') < 0.8" in result.message


def test_tiny_group_gives_insufficient_data(
    make_inputs: Callable[..., GateInputs], valid_df: pd.DataFrame
) -> None:
    valid = valid_df.copy()
    valid.loc[valid.index[:12], "sex"] = "unknown"
    defaults = int(valid["default"].iloc[:12].sum())
    result = run_gate(spec(), make_inputs(validation=valid))
    assert result.verdict == "insufficient_data"
    assert result.message.startswith(
        f"sex: groups excluded (insufficient data): 'unknown' (12 rows, {defaults} defaults, "
        f"{12 - defaults} non-defaults; below min_group_size 30, min_group_defaults 30, "
        "min_group_non_defaults 30)"
    )
    entry = result.details["attributes"]["sex"]
    assert entry["excluded_groups"] == [
        {
            "group": "unknown",
            "rows": 12,
            "defaults": defaults,
            "non_defaults": 12 - defaults,
            "missed": ["min_group_size", "min_group_defaults", "min_group_non_defaults"],
            "excluded_from": ["adverse_impact_ratio", "true_positive_rate", "false_positive_rate"],
        }
    ]
    # the other groups are still measured, the intersection without its small groups
    assert [g["group"] for g in entry["groups"]] == ["female", "male"]
    assert "adverse_impact_ratio.sex" in result.values
    assert "adverse_impact_ratio.sex|age_band" in result.values
    small = result.details["attributes"]["sex|age_band"]["excluded_groups"]
    assert {g["group"] for g in small} == {
        f"unknown|{band}" for band in labels_of(valid.iloc[:12], "age_band")
    }
    for group in small:
        assert f"'{group['group']}' ({group['rows']} rows" in result.message
    # a failure among the large groups still fails the gate
    strict = run_gate(spec(min_adverse_impact_ratio=1), make_inputs(validation=valid))
    assert strict.verdict == "failed"
    # a declared reference group that is too small cannot anchor the ratio
    small_ref = run_gate(spec(reference_groups={"sex": "unknown"}), make_inputs(validation=valid))
    assert small_ref.verdict == "insufficient_data"
    assert "sex: reference group 'unknown' is too small to compare" in small_ref.message


def test_group_with_few_defaults_leaves_the_true_positive_rates_and_is_listed(
    make_inputs: Callable[..., GateInputs], valid_df: pd.DataFrame
) -> None:
    from fairlearn.metrics import MetricFrame, false_positive_rate, true_positive_rate

    # 150 applicants, 3 of them defaulted: enough rows for an approval rate, not for a TPR.
    valid = valid_df.copy()
    chosen = np.concatenate(
        [
            valid.index[valid["default"] == 1][:3].to_numpy(),
            valid.index[valid["default"] == 0][:147].to_numpy(),
        ]
    )
    valid.loc[chosen, "sex"] = "nonbinary"
    inputs = make_inputs(validation=valid)
    result = run_gate(spec(max_equalized_odds_difference=1), inputs)
    assert result.verdict == "insufficient_data"
    assert result.message.startswith(
        "sex: groups excluded (insufficient data): 'nonbinary' (150 rows, 3 defaults, "
        "147 non-defaults; below min_group_defaults 30); "
    )
    entry = result.details["attributes"]["sex"]
    assert entry["excluded_groups"] == [
        {
            "group": "nonbinary",
            "rows": 150,
            "defaults": 3,
            "non_defaults": 147,
            "missed": ["min_group_defaults"],
            "excluded_from": ["true_positive_rate"],
        }
    ]
    by_name = {g["group"]: g for g in entry["groups"]}
    assert list(by_name) == ["female", "male", "nonbinary"]
    # Its approval rate and false positive rate are compared; its TPR is not.
    assert by_name["nonbinary"]["rows"] == 150
    assert by_name["nonbinary"]["adverse_impact_ratio"] is not None
    assert by_name["nonbinary"]["true_positive_rate"] is None
    declined = (inputs.pred_validation >= 0.5).astype(int)
    frame = MetricFrame(
        metrics={"tpr": true_positive_rate, "fpr": false_positive_rate},
        y_true=valid["default"].to_numpy(),
        y_pred=declined,
        sensitive_features=valid["sex"],
    ).by_group
    tpr_range = (
        frame.loc[["female", "male"], "tpr"].max() - frame.loc[["female", "male"], "tpr"].min()
    )
    fpr_range = frame["fpr"].max() - frame["fpr"].min()
    assert close(entry["tpr_difference"], tpr_range, RATE_TOLERANCE)
    assert close(entry["fpr_difference"], fpr_range, RATE_TOLERANCE)
    assert close(entry["equalized_odds_difference"], max(tpr_range, fpr_range), RATE_TOLERANCE)
    assert close(by_name["nonbinary"]["false_positive_rate"], frame.loc["nonbinary", "fpr"])


def test_intersection_groups_below_the_limits_are_excluded_and_named(
    make_inputs: Callable[..., GateInputs], valid_df: pd.DataFrame
) -> None:
    inputs = make_inputs()
    result = run_gate(spec(min_group_size=400), inputs)
    sizes = valid_df.groupby(["sex", "age_band"])["default"].agg(["size", "sum"])
    small = sizes[sizes["size"] < 400]
    assert list(small.index) == [("female", "60+"), ("male", "60+")]
    expected = [
        {
            "group": f"{sex}|{band}",
            "rows": int(row["size"]),
            "defaults": int(row["sum"]),
            "non_defaults": int(row["size"] - row["sum"]),
            "missed": ["min_group_size"],
            "excluded_from": ["adverse_impact_ratio", "true_positive_rate", "false_positive_rate"],
        }
        for (sex, band), row in small.iterrows()
    ]
    entry = result.details["attributes"]["sex|age_band"]
    assert entry["excluded_groups"] == expected
    assert "female|60+" not in [g["group"] for g in entry["groups"]]
    named = ", ".join(
        f"'{g['group']}' ({g['rows']} rows, {g['defaults']} defaults, {g['non_defaults']} "
        "non-defaults; below min_group_size 400)"
        for g in expected
    )
    assert result.message.endswith(f"sex|age_band: groups excluded: {named}")
    # Intersection groups alone are listed, not judged: the verdict is the same without them.
    assert result.verdict == "warned"
    # With the policy's limits and no bootstrap, the excluded groups still reach the message.
    quiet = run_gate(spec(min_group_size=400, bootstrap_samples=0), inputs)
    assert quiet.verdict == "passed"
    assert quiet.message == (
        f"adverse impact ratio {quiet.values['min_adverse_impact_ratio']} >= 0.8 and equalized "
        f"odds difference {quiet.values['max_equalized_odds_difference']} <= 0.15 for sex, "
        f"age_band, sex|age_band; sex|age_band: groups excluded: {named}"
    )


def built_inputs(
    make_inputs: Callable[..., GateInputs],
    cells: list[tuple[dict[str, str], int, int, int, int]],
) -> GateInputs:
    """Inputs with exactly known decisions, one block of rows per cell.

    Each cell is (protected values, rows, defaults, declined defaults, declined
    non-defaults); the predictions are set directly in the inputs' prediction cache.
    """
    frames, preds = [], []
    for values, rows, defaults, declined_defaults, declined_non_defaults in cells:
        default = np.zeros(rows, dtype=np.int64)
        default[:defaults] = 1
        pred = np.full(rows, 0.1)
        pred[:declined_defaults] = 0.9
        pred[defaults : defaults + declined_non_defaults] = 0.9
        frames.append(pd.DataFrame({**values, "default": default}, index=range(rows)))
        preds.append(pred)
    frame = pd.concat(frames, ignore_index=True)
    inputs = make_inputs(validation=frame, protected=list(cells[0][0]))
    inputs.__dict__["pred_validation"] = np.concatenate(preds)
    return inputs


def test_point_equalized_odds_passing_with_a_wide_interval_warns(
    make_inputs: Callable[..., GateInputs],
) -> None:
    # TPR 20/40 vs 17/40 (difference 0.075), FPR 36/360 in both: the point estimate passes
    # 0.10, but 40 defaults per group put the TPR difference's spread near 0.11.
    inputs = built_inputs(
        make_inputs, [({"sex": "A"}, 400, 40, 20, 36), ({"sex": "B"}, 400, 40, 17, 36)]
    )
    result = run_gate(spec(max_equalized_odds_difference=0.1, bootstrap_samples=500), inputs)
    entry = result.details["attributes"]["sex"]
    assert result.values["equalized_odds_difference.sex"] == "0.075"
    assert entry["tpr_difference"] == "0.075"
    assert entry["fpr_difference"] == "0"
    assert result.verdict == "warned"
    assert result.message == (
        f"sex: equalized odds difference confidence interval [{entry['eod_ci_low']}, "
        f"{entry['eod_ci_high']}] reaches above 0.1"
    )
    assert Decimal(entry["eod_ci_low"]) < Decimal("0.075") < Decimal("0.1")
    assert Decimal("0.15") < Decimal(entry["eod_ci_high"]) < Decimal("0.4")
    # AIR 344/347 with its interval above 0.8: the warning is the equalized odds' alone.
    assert result.values["adverse_impact_ratio.sex"] == fmt(344 / 347)
    assert Decimal(entry["groups"][0]["air_ci_low"]) > Decimal("0.8")
    # A limit above the interval passes; one below the point estimate fails.
    wide = run_gate(spec(max_equalized_odds_difference=0.5, bootstrap_samples=500), inputs)
    assert wide.verdict == "passed"
    strict = run_gate(spec(max_equalized_odds_difference=0.07, bootstrap_samples=500), inputs)
    assert strict.verdict == "failed"
    assert strict.message == "sex: equalized odds difference 0.075 > 0.07"


def test_attribute_left_with_one_group_is_insufficient_data(
    make_inputs: Callable[..., GateInputs],
) -> None:
    # Declared attribute: B misses every limit, which leaves A alone.
    inputs = built_inputs(
        make_inputs, [({"sex": "A"}, 300, 60, 30, 24), ({"sex": "B"}, 20, 5, 2, 2)]
    )
    result = run_gate(spec(), inputs)
    assert result.verdict == "insufficient_data"
    assert result.message == (
        "sex: groups excluded (insufficient data): 'B' (20 rows, 5 defaults, 15 non-defaults; "
        "below min_group_size 30, min_group_defaults 30, min_group_non_defaults 30); "
        "sex: fewer than two groups of at least 30 rows to compare"
    )
    assert result.values == {}
    assert result.details["attributes"]["sex"]["note"] == "fewer than two groups to compare"
    # Intersection: every single group is large enough, only 'A|X' of the intersection is.
    cells = [
        ({"sex": "A", "region": "X"}, 160, 40, 20, 12),
        ({"sex": "A", "region": "Y"}, 100, 25, 12, 7),
        ({"sex": "B", "region": "X"}, 100, 25, 12, 7),
        ({"sex": "B", "region": "Y"}, 100, 25, 12, 7),
    ]
    inputs = built_inputs(make_inputs, cells)
    result = run_gate(spec(min_group_size=150, max_equalized_odds_difference=1), inputs)
    assert result.verdict == "insufficient_data"
    small = ", ".join(
        f"'{g}' (100 rows, 25 defaults, 75 non-defaults; below min_group_size 150, "
        "min_group_defaults 30)"
        for g in ("A|Y", "B|X", "B|Y")
    )
    assert result.message.endswith(
        "sex|region: fewer than two groups of at least 150 rows to compare; "
        f"sex|region: groups excluded: {small}"
    )
    assert "adverse_impact_ratio.sex|region" not in result.values
    assert {"adverse_impact_ratio.sex", "adverse_impact_ratio.region"} <= set(result.values)
    # One group with enough defaults: the ratio is compared, equalized odds is not.
    inputs = built_inputs(
        make_inputs, [({"sex": "A"}, 300, 60, 30, 24), ({"sex": "B"}, 300, 10, 5, 29)]
    )
    result = run_gate(spec(), inputs)
    assert result.verdict == "insufficient_data"
    assert "sex: fewer than two groups with at least 30 defaults to compare equalized odds" in (
        result.message
    )
    assert "adverse_impact_ratio.sex" in result.values
    assert "equalized_odds_difference.sex" not in result.values


def test_missing_protected_values_are_a_group_of_their_own(
    make_inputs: Callable[..., GateInputs], valid_df: pd.DataFrame
) -> None:
    with_gaps = valid_df.copy()
    with_gaps["sex"] = with_gaps["sex"].astype(object)
    with_gaps.loc[with_gaps.index[:150], "sex"] = None
    with_gaps.loc[with_gaps.index[150:200], "sex"] = np.nan
    with_gaps["age_band"] = pd.Categorical(with_gaps["age_band"])
    with_gaps.loc[with_gaps.index[100:400], "age_band"] = np.nan
    assert int(with_gaps["sex"].isna().sum()) == 200
    assert int(with_gaps["age_band"].isna().sum()) == 300
    result = run_gate(spec(bootstrap_samples=50), make_inputs(validation=with_gaps))
    sex = {g["group"]: g for g in result.details["attributes"]["sex"]["groups"]}
    assert list(sex) == ["<missing>", "female", "male"]
    assert sex["<missing>"]["rows"] == 200
    assert sex["<missing>"]["defaults"] == int(valid_df["default"].iloc[:200].sum())
    bands = [g["group"] for g in result.details["attributes"]["age_band"]["groups"]]
    assert bands == ["18-29", "30-44", "45-59", "60+", "<missing>"]  # labels sort as text
    # Missing values gave exactly the result of a group labelled "<missing>" in the data.
    labelled = valid_df.copy()
    labelled.loc[labelled.index[:200], "sex"] = "<missing>"
    labelled.loc[labelled.index[100:400], "age_band"] = "<missing>"
    same = run_gate(spec(bootstrap_samples=50), make_inputs(validation=labelled))
    assert canonical_bytes(result.canonical()) == canonical_bytes(same.canonical())
    intersection = result.details["attributes"]["sex|age_band"]
    assert "<missing>|<missing>" in [g["group"] for g in intersection["groups"]] + [
        g["group"] for g in intersection["excluded_groups"]
    ]
    # A real group labelled "<missing>" beside missing values would merge two groups.
    clash = with_gaps.copy()
    clash["sex"] = clash["sex"].where(clash.index != clash.index[500], "<missing>")
    refused = run_gate(spec(), make_inputs(validation=clash))
    assert refused.verdict == "error"
    assert refused.message.endswith(
        "the protected attribute 'sex' has missing values and a group labelled '<missing>': "
        "rename that group"
    )


def test_encode_labels_any_values_fuzz() -> None:
    pool: list[object] = ["a", "b", "", " ", "é", "<missing>", None, np.nan, pd.NA, 1, 2.5, True]
    rng = np.random.default_rng(2024)
    for _ in range(300):
        size = int(rng.integers(1, 40))
        values = np.empty(size, dtype=object)
        values[:] = [pool[int(i)] for i in rng.integers(0, len(pool), size=size)]
        missing = pd.isna(pd.Series(values, dtype=object)).to_numpy()
        data: object = values
        if rng.random() < 0.3:
            data = pd.Categorical(
                [None if m else str(v) for v, m in zip(values, missing, strict=True)]
            )
        elif rng.random() < 0.5:  # a column of a frame whose index repeats
            data = pd.Series(values, index=np.zeros(size, dtype=np.int64))
        named = [str(v) for v, m in zip(values, missing, strict=True) if not m]
        if missing.any() and "<missing>" in named:
            with pytest.raises(InputError, match="has missing values and a group labelled"):
                fairness.encode("x", data)
            continue
        codes, labels = fairness.encode("x", data)
        assert labels == sorted(set(labels))
        assert codes.shape == (size,)
        expected = ["<missing>" if m else str(v) for v, m in zip(values, missing, strict=True)]
        assert [labels[c] for c in codes.tolist()] == expected


def test_declared_reference_group(
    make_inputs: Callable[..., GateInputs], valid_df: pd.DataFrame
) -> None:
    inputs = make_inputs()
    result = run_gate(spec(reference_groups={"age_band": "60+"}), inputs)
    entry = result.details["attributes"]["age_band"]
    assert entry["reference_group"] == "60+"
    assert entry["reference_declared"] is True
    rates = valid_df.assign(ok=inputs.pred_validation < 0.5).groupby("age_band")["ok"].mean()
    for group in entry["groups"]:
        assert close(group["adverse_impact_ratio"], rates[group["group"]] / rates["60+"])
    bad = run_gate(spec(reference_groups={"sex": "nobody"}), inputs)
    assert bad.verdict == "error"
    assert "reference group 'nobody' of 'sex' is not in the data" in bad.message


def constructed_inputs(make_inputs: Callable[..., GateInputs]) -> GateInputs:
    """Two groups of 200: A always approved, B approved 164 times (AIR 0.82).

    The predictions are set directly in the inputs' prediction cache, so the
    fairness arithmetic is checked on exactly known decisions.
    """
    sex = np.array(["A"] * 200 + ["B"] * 200)
    pred = np.full(400, 0.1)
    pred[200 + 164 :] = 0.9
    default = np.zeros(400, dtype=np.int64)
    default[::5] = 1
    frame = pd.DataFrame({"sex": sex, "default": default})
    inputs = make_inputs(validation=frame, protected=["sex"])
    inputs.__dict__["pred_validation"] = pred
    return inputs


def test_point_estimate_passing_with_a_low_interval_warns(
    make_inputs: Callable[..., GateInputs],
) -> None:
    inputs = constructed_inputs(make_inputs)
    result = run_gate(spec(max_equalized_odds_difference=1, bootstrap_samples=1000), inputs)
    assert result.values["adverse_impact_ratio.sex"] == "0.82"
    assert result.verdict == "warned"
    assert result.message == "sex: AIR confidence interval reaches below 0.8 for 'B'"
    group_b = result.details["attributes"]["sex"]["groups"][1]
    assert Decimal(group_b["air_ci_low"]) < Decimal("0.8") < Decimal(group_b["air_ci_high"])
    # binomial sd of 0.82 over 200 rows is 0.0272: the 95 % interval is about +-0.053
    assert Decimal("0.74") < Decimal(group_b["air_ci_low"]) < Decimal("0.79")
    # a stricter cutoff on the ratio fails the same data
    failed = run_gate(spec(min_adverse_impact_ratio=0.85, max_equalized_odds_difference=1), inputs)
    assert failed.verdict == "failed"
    assert failed.message == "sex: adverse impact ratio 0.82 ('B' vs 'A') < 0.85"


def test_equalized_odds_by_hand(make_inputs: Callable[..., GateInputs]) -> None:
    inputs = constructed_inputs(make_inputs)
    # A declines nobody: TPR 0, FPR 0. B: rows 364..399 declined; defaults every 5th row.
    y = inputs.validation["default"].to_numpy()
    declined_b = np.zeros(400, dtype=bool)
    declined_b[364:] = True
    tpr_b = (declined_b & (y == 1))[200:].sum() / y[200:].sum()
    fpr_b = (declined_b & (y == 0))[200:].sum() / (200 - y[200:].sum())
    result = run_gate(spec(bootstrap_samples=0), inputs)
    eod = fmt(max(tpr_b, fpr_b))
    assert result.values["equalized_odds_difference.sex"] == eod
    entry = result.details["attributes"]["sex"]
    # without a bootstrap the intervals are the point estimates
    assert (entry["eod_ci_low"], entry["eod_ci_high"]) == (eod, eod)
    assert result.verdict == "failed"


def test_no_protected_attribute_is_an_error(make_inputs: Callable[..., GateInputs]) -> None:
    result = run_gate(spec(), make_inputs(protected=[]))
    assert result.verdict == "error"
    assert "no protected attributes declared" in result.message
    missing = run_gate(spec(), make_inputs(protected=["religion"]))
    assert missing.verdict == "error"
    assert "lacks the protected attribute 'religion'" in missing.message


def test_deterministic(make_inputs: Callable[..., GateInputs]) -> None:
    a = run_gate(spec(), make_inputs())
    b = run_gate(spec(), make_inputs())
    assert canonical_bytes(a.canonical()) == canonical_bytes(b.canonical())
    c = run_gate(spec(seed=1), make_inputs())
    assert a.details != c.details
