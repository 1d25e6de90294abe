"""Benchmark: the default policy's gates against the same measurements by direct library calls.

Run: ``.venv/bin/python benchmarks/gates.py [--rows 100000]``.

Synthetic credit data (``govreg.synthetic``), 20 features, a LightGBM model of
``--rounds`` trees; training and validation sets of ``--rows`` rows each.
Every library is imported before the clock starts (import times are printed
apart). For each gate: govreg's time (predictions cached, as in a policy run),
the direct computation's time and the ratio. Direct computations:

- performance: ``sklearn.metrics.roc_auc_score`` + ``scipy.stats.ks_2samp`` +
  ``sklearn.metrics.brier_score_loss``;
- fairness: ``fairlearn.metrics.MetricFrame`` with 3 metrics (selection rate,
  true and false positive rates) over the 2 sensitive features, plus aif360's
  ``disparate_impact_ratio`` for each attribute;
- data_schema: great-expectations validating the same suite (context, data
  source, batch, validate);
- explainability: LightGBM ``pred_contrib`` on the same rows plus
  ``Booster.predict`` on the same monotone sweep;
- stability: ``pandas.qcut`` / ``pandas.cut`` / ``value_counts`` PSI per feature
  and on the score;
- latency: the same loop of single-row ``Booster.predict`` calls.

Then the whole evaluation (fresh inputs: predictions plus all six gates), the
fairness speed-up against MetricFrame and the largest absolute difference
between govreg's and fairlearn's group rates and equalized odds differences.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

from govreg.synthetic import (
    MONOTONE,
    PROTECTED,
    feature_names,
    make_credit_data,
    train_lightgbm,
)
from policies.loader import find_policy
from policies.schema import DataSchemaParams, ExplainabilityParams, LatencyParams
from validation.inputs import GateInputs
from validation.runner import run_gate, run_policy


def timed(function: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time of ``repeat`` calls, and the last call's value."""
    best = float("inf")
    value: Any = None
    for _ in range(repeat):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value


def import_libraries() -> dict[str, float]:
    """Import every library once (timed), silencing their import-time noise."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    times: dict[str, float] = {}
    root = logging.getLogger()
    handlers = list(root.handlers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        for name in (
            "lightgbm",
            "sklearn.metrics",
            "scipy.stats",
            "fairlearn.metrics",
            "aif360.sklearn.metrics",
            "great_expectations",
        ):
            start = time.perf_counter()
            __import__(name)
            times[name] = time.perf_counter() - start
        logging.disable(logging.NOTSET)
    root.handlers[:] = handlers
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="validation (and training) rows")
    parser.add_argument("--rounds", type=int, default=100, help="boosting rounds")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per measurement")
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    imports = import_libraries()
    print("import times (s):", ", ".join(f"{k} {v:.2f}" for k, v in imports.items()))

    import great_expectations as gx
    from aif360.sklearn.metrics import disparate_impact_ratio
    from fairlearn.metrics import (
        MetricFrame,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from scipy.stats import ks_2samp
    from sklearn.metrics import brier_score_loss, roc_auc_score

    from validation.data_schema import _clean_suite, as_gx_frame, derive_suite
    from validation.explainability import sample_rows

    extra = 20 - len(feature_names())
    start = time.perf_counter()
    train = make_credit_data(args.rows, seed=1, extra_features=extra)
    valid = make_credit_data(args.rows, seed=2, extra_features=extra)
    data_s = time.perf_counter() - start
    start = time.perf_counter()
    model = train_lightgbm(train, num_boost_round=args.rounds, monotone=MONOTONE)
    train_s = time.perf_counter() - start
    features = feature_names(extra)
    print(
        f"data: 2 x {args.rows:,} rows x {len(features)} features in {data_s:.2f} s; "
        f"model: {args.rounds} trees in {train_s:.2f} s"
    )
    reasons = {f: f"reason text for {f}" for f in features}
    policy = find_policy("credit-risk")

    def fresh_inputs() -> GateInputs:
        return GateInputs(
            model_text=model,
            train=train,
            validation=valid,
            target="default",
            protected=list(PROTECTED),
            cutoff=policy.decision_cutoff,
            reason_texts=reasons,
        )

    # Whole evaluation: fresh inputs (parse, predict) and all six gates.
    run_policy(policy, fresh_inputs())  # warm-up (GX internals, LightGBM threads)
    whole_s, results = timed(lambda: run_policy(policy, fresh_inputs()), repeat=args.repeat)

    inputs = fresh_inputs()
    predict_s, _ = timed(lambda: (inputs.pred_validation, inputs.pred_train))
    print(f"machine load average (1 min): {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    booster = inputs.booster
    x_valid = inputs.x_validation
    x_train = inputs.x_train
    y = inputs.y_validation
    score = inputs.pred_validation
    score_train = inputs.pred_train
    cutoff = float(policy.decision_cutoff)
    approved = (score < cutoff).astype(np.int64)
    declined = 1 - approved
    specs = {g.kind: g for g in policy.gates}

    # Direct computations, one per gate.
    def direct_performance() -> None:
        roc_auc_score(y, score)
        ks_2samp(score[y == 1], score[y == 0])
        brier_score_loss(y, score)

    frames: dict[str, Any] = {}

    def direct_fairness() -> None:
        frames["frame"] = MetricFrame(
            metrics={
                "selection_rate": selection_rate,
                "tpr": true_positive_rate,
                "fpr": false_positive_rate,
            },
            y_true=y,
            y_pred=declined,
            sensitive_features=valid[list(PROTECTED)],
        )
        for attribute in PROTECTED:
            labels = valid[attribute].to_numpy()
            best = max(set(labels), key=lambda g: approved[labels == g].mean())
            y_series = pd.Series(y, index=pd.Index(labels, name="g"))
            disparate_impact_ratio(y_series, approved, prot_attr="g", priv_group=best, pos_label=1)

    schema_params = specs["data_schema"].params
    assert isinstance(schema_params, DataSchemaParams)
    suite = _clean_suite(derive_suite(train, schema_params))
    gx_frame = as_gx_frame(valid)

    def direct_schema() -> None:
        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        )
        context = gx.get_context(mode="ephemeral", project_config=config)
        asset = context.data_sources.add_pandas(name="d").add_dataframe_asset(name="v")
        batch = asset.add_batch_definition_whole_dataframe("w").get_batch(
            batch_parameters={"dataframe": gx_frame}
        )
        batch.validate(gx.ExpectationSuite(name="s", expectations=suite["expectations"]))

    explain = specs["explainability"].params
    assert isinstance(explain, ExplainabilityParams)
    sample = x_valid[sample_rows(len(valid), explain.importance_rows, explain.seed)]
    sweep_rows = x_valid[sample_rows(len(valid), explain.monotone_rows, explain.seed + 1)]

    def direct_explainability() -> None:
        booster.predict(sample, pred_contrib=True)
        for feature in explain.monotone:
            j = features.index(feature)
            grid = np.unique(
                np.quantile(x_train[:, j], np.linspace(0.01, 0.99, explain.grid_points))
            )
            swept = np.repeat(sweep_rows, grid.size, axis=0)
            swept[:, j] = np.tile(grid, sweep_rows.shape[0])
            booster.predict(swept)

    def direct_stability() -> None:
        columns = [*(x_train[:, j] for j in range(len(features))), score_train]
        targets = [*(x_valid[:, j] for j in range(len(features))), score]
        for base, new in zip(columns, targets, strict=True):
            _, edges = pd.qcut(base, 10, retbins=True, duplicates="drop")
            edges[0], edges[-1] = -np.inf, np.inf
            e = pd.Series(pd.cut(base, edges)).value_counts(normalize=True, sort=False)
            a = pd.Series(pd.cut(new, edges)).value_counts(normalize=True, sort=False)
            e, a = np.maximum(e.to_numpy(), 1e-4), np.maximum(a.to_numpy(), 1e-4)
            float(np.sum((a - e) * np.log(a / e)))

    latency = specs["latency"].params
    assert isinstance(latency, LatencyParams)
    row = x_valid[:1].copy()

    def direct_latency() -> None:
        for _ in range(latency.warmup + latency.runs):
            start = time.perf_counter_ns()
            booster.predict(row, num_threads=latency.num_threads)
            time.perf_counter_ns() - start

    directs: dict[str, tuple[str, Callable[[], None]]] = {
        "performance": ("sklearn roc_auc + scipy ks_2samp + brier", direct_performance),
        "fairness": ("fairlearn MetricFrame (3 x 2) + aif360 DI", direct_fairness),
        "data_schema": ("great-expectations validate", direct_schema),
        "explainability": ("lightgbm pred_contrib + sweep", direct_explainability),
        "stability": ("pandas qcut/cut PSI", direct_stability),
        "latency": ("Booster.predict 1-row loop", direct_latency),
    }

    print(f"\nshared predictions (validation + training): {predict_s:.3f} s")
    header = f"{'gate':<16}{'verdict':<19}{'govreg s':>10}{'direct s':>10}{'ratio':>8}  direct"
    print(header)
    print("-" * len(header) + "-" * 30)
    gate_times: dict[str, float] = {}
    for spec in policy.gates:
        label, direct = directs[spec.kind]
        run_gate(spec, inputs)  # warm-up
        direct()
        # Alternate the two and keep the best of each: fair under a noisy machine.
        ours_s = theirs_s = float("inf")
        for _ in range(args.repeat):
            elapsed, result = timed(partial(run_gate, spec, inputs))
            ours_s = min(ours_s, elapsed)
            theirs_s = min(theirs_s, timed(direct)[0])
        gate_times[spec.kind] = ours_s
        print(
            f"{spec.kind:<16}{result.verdict:<19}{ours_s:>10.3f}{theirs_s:>10.3f}"
            f"{ours_s / theirs_s:>8.2f}  {label}"
        )

    # Fairness: speed-up against MetricFrame alone and largest difference from fairlearn.
    def metric_frame_only() -> Any:
        return MetricFrame(
            metrics={
                "selection_rate": selection_rate,
                "tpr": true_positive_rate,
                "fpr": false_positive_rate,
            },
            y_true=y,
            y_pred=declined,
            sensitive_features=valid[list(PROTECTED)],
        )

    mf_s, frame = timed(metric_frame_only, repeat=args.repeat)
    fair = next(r for r in results if r.kind == "fairness")
    by_group = frame.by_group
    differences: list[float] = []
    for group in fair.details["attributes"]["sex|age_band"]["groups"]:
        key = tuple(group["group"].split("|"))
        differences.append(
            abs(float(Decimal(group["approval_rate"])) - (1 - by_group.loc[key, "selection_rate"]))
        )
        differences.append(
            abs(float(Decimal(group["true_positive_rate"])) - by_group.loc[key, "tpr"])
        )
        differences.append(
            abs(float(Decimal(group["false_positive_rate"])) - by_group.loc[key, "fpr"])
        )
    for attribute in (*PROTECTED, "|".join(PROTECTED)):
        columns = attribute.split("|")
        sensitive = valid[columns] if len(columns) > 1 else valid[attribute]
        eod = equalized_odds_difference(y, declined, sensitive_features=sensitive)
        ours = float(Decimal(fair.values[f"equalized_odds_difference.{attribute}"]))
        differences.append(abs(ours - eod))

    print("-" * len(header) + "-" * 30)
    print(f"whole evaluation (fresh inputs, 6 gates): {whole_s:.3f} s (target <= 5 s)")
    for result in results:
        print(f"  {result.gate_id:<16}{result.verdict:<19}{result.message[:90]}")
    print(
        f"fairness gate {gate_times['fairness']:.3f} s vs MetricFrame {mf_s:.3f} s: "
        f"{mf_s / gate_times['fairness']:.1f}x faster (target >= 5x)"
    )
    print(
        f"fairness max |govreg - fairlearn| over group rates and equalized odds: "
        f"{max(differences):.3g} (target <= 1e-9; values carry 12 significant digits)"
    )


if __name__ == "__main__":
    main()
