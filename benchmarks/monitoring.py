"""Monitoring measurements benchmark: one window's metrics against direct computations.

The data is one monitoring window as the monitor will hold it: ``--decisions`` live
applicants with 20 features (17 numbers with missing values, 3 categorical with
missing values, as decoded from the decision log: Python objects), their scores and
decisions, and ``--outcomes`` matured outcomes with vintage, grade and a protected
attribute; the reference is frozen on 100,000 validation rows.

Timed, each the median of ``--runs``:

- govreg: :mod:`validation.monitoring` (CSI per feature, PSI of the score,
  out-of-range and unseen-category rates, approval rate, AUC/KS/Gini by vintage,
  calibration by grade with Jeffreys intervals, the live adverse impact ratio);
- reference, same run: the same figures computed directly with numpy and pandas
  (``np.digitize`` + ``np.bincount`` PSI, ``value_counts`` shares, one
  ``np.argsort`` per vintage for AUC and KS, ``groupby`` calibration and
  ``scipy.stats.beta.ppf``), checked equal to govreg's first.

Run:  .venv/bin/python benchmarks/monitoring.py [--decisions 1000000] [--outcomes 200000]
Targets (2 cores): govreg <= 10 s and <= 1.5x the reference.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NUMERIC = 17
CATEGORIES = {
    "housing": ["own", "rent", "mortgage", "other"],
    "purpose": ["car", "home", "business", "education", "debt", "medical"],
    "employment": ["salaried", "self", "retired", "student", "none"],
}
VINTAGES = [f"2026-{m:02d}" for m in range(1, 13)]
GRADES = (0.02, 0.05, 0.1, 0.2, 0.35, 1.0)


def make_window(rows: int, seed: int, shift: float = 0.0) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    numeric = rng.normal(shift, 1.0, (rows, NUMERIC))
    numeric[rng.random((rows, NUMERIC)) < 0.05] = np.nan
    categorical = {}
    for name, cats in CATEGORIES.items():
        pick = rng.choice(np.array([*cats, None], dtype=object), rows)
        categorical[name] = pick.tolist()  # Python objects, as decoded inputs are
    score = 1 / (1 + np.exp(-(rng.normal(-2.0 + shift, 1.0, rows))))
    return {"numeric": numeric, "categorical": categorical, "score": score}


def grades_of(p: Any) -> list[str]:
    import numpy as np

    index = np.searchsorted(np.asarray(GRADES), p, side="left")
    return [chr(ord("A") + int(i)) for i in index]


def run_govreg(ref: dict[str, Any], live: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from validation import monitoring as m

    figures: dict[str, Any] = {}
    for j in range(NUMERIC):
        figures[f"csi_{j}"] = m.psi(ref["bins"][j], live["numeric"][:, j])
        figures[f"oor_{j}"] = m.out_of_range_rate(live["numeric"][:, j], -3.0, 3.0)
    for name, cats in CATEGORIES.items():
        figures[f"csi_{name}"] = m.psi(ref["bins"][name], live["categorical"][name])
        figures[f"unseen_{name}"] = m.unseen_category_rate(live["categorical"][name], cats[:-1])
    figures["psi_score"] = m.psi(ref["bins"]["score"], live["score"])
    figures["approval"] = m.approval_rate(live["decisions"])
    vintages = m.discrimination_by_vintage(out["y"], out["score"], out["vintage"])
    figures["auc"] = [v.auc for v in vintages]
    figures["ks"] = [v.ks for v in vintages]
    grades = m.calibration_by_grade(out["y"], out["score"], out["grade"])
    figures["calibration"] = [(g.grade, g.lower, g.upper) for g in grades]
    figures["air"] = m.adverse_impact(np.asarray(out["approved"]), out["group"]).ratio
    return figures


def _psi(e: Any, a: Any) -> float:
    import numpy as np

    e = np.maximum(e, 1e-4)
    a = np.maximum(a, 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def run_reference(ref: dict[str, Any], live: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    from scipy.stats import beta

    figures: dict[str, Any] = {}
    for j in range(NUMERIC):
        x = live["numeric"][:, j]
        x = x[~np.isnan(x)]
        edges = np.asarray(ref["bins"][j].edges)
        a = np.bincount(np.digitize(x, edges, right=True), minlength=edges.size + 1) / x.size
        figures[f"csi_{j}"] = _psi(np.asarray(ref["bins"][j].shares), a)
        figures[f"oor_{j}"] = float(((x < -3.0) | (x > 3.0)).mean())
    for name, cats in CATEGORIES.items():
        column = pd.Series(live["categorical"][name], dtype=object).fillna("<missing>")
        shares = column.value_counts(normalize=True)
        bins = ref["bins"][name]
        order = sorted(set(bins.categories) | set(shares.index))
        e = np.asarray(
            [dict(zip(bins.categories, bins.shares, strict=True)).get(c, 0.0) for c in order]
        )
        figures[f"csi_{name}"] = _psi(e, shares.reindex(order, fill_value=0.0).to_numpy())
        present = column[column != "<missing>"]
        figures[f"unseen_{name}"] = float((~present.isin(cats[:-1])).mean())
    s = live["score"]
    edges = np.asarray(ref["bins"]["score"].edges)
    a = np.bincount(np.digitize(s, edges, right=True), minlength=edges.size + 1) / s.size
    figures["psi_score"] = _psi(np.asarray(ref["bins"]["score"].shares), a)
    figures["approval"] = float((np.asarray(live["decisions"], dtype=object) == "approve").mean())
    frame = pd.DataFrame({"y": out["y"], "s": out["score"], "v": out["vintage"], "g": out["grade"]})
    aucs, kss = [], []
    for _, part in frame.groupby("v", sort=True):
        y, sc = part["y"].to_numpy(), part["s"].to_numpy()
        order = np.argsort(sc, kind="stable")
        ranks = np.empty(sc.size)
        ranks[order] = np.arange(1, sc.size + 1)  # no ties in continuous scores
        pos = int(y.sum())
        neg = sc.size - pos
        aucs.append(float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg)))
        cum_pos = np.cumsum(y[order]) / pos
        cum_neg = np.cumsum(1 - y[order]) / neg
        kss.append(float(np.max(np.abs(cum_pos - cum_neg))))
    figures["auc"], figures["ks"] = aucs, kss
    grouped = frame.groupby("g", sort=True)["y"].agg(["sum", "count"])
    k, n = grouped["sum"].to_numpy(), grouped["count"].to_numpy()
    lower = np.where(k == 0, 0.0, beta.ppf(0.025, k + 0.5, n - k + 0.5))
    upper = np.where(k == n, 1.0, beta.ppf(0.975, k + 0.5, n - k + 0.5))
    figures["calibration"] = list(zip(grouped.index, lower.tolist(), upper.tolist(), strict=True))
    groups = pd.Series(out["group"], dtype=object).fillna("<missing>")
    rates = pd.Series(out["approved"]).groupby(groups).mean()
    figures["air"] = float(rates.min() / rates.max())
    return figures


def _same(a: Any, b: Any, what: str) -> None:
    import math

    if isinstance(a, list):
        assert len(a) == len(b), what
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{what}[{i}]")
    elif isinstance(a, tuple):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{what}[{i}]")
    elif isinstance(a, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (what, a, b)
    else:
        assert a == b, (what, a, b)


def _median(action: Any, runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    import numpy as np

    from validation import monitoring as m

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--outcomes", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    validation = make_window(100_000, seed=1)
    ref = {
        "bins": {
            **{j: m.freeze_numeric(validation["numeric"][:, j]) for j in range(NUMERIC)},
            **{n: m.freeze_categorical(validation["categorical"][n]) for n in CATEGORIES},
            "score": m.freeze_numeric(validation["score"]),
        }
    }
    live = make_window(args.decisions, seed=2, shift=0.1)
    live["decisions"] = np.where(live["score"] >= 0.2, "decline", "approve").tolist()
    rng = np.random.default_rng(3)
    p = live["score"][: args.outcomes]
    out = {
        "score": p,
        "y": rng.binomial(1, p),
        "vintage": rng.choice(VINTAGES, args.outcomes).tolist(),
        "grade": grades_of(p),
        "group": rng.choice(np.array(["F", "M", None], dtype=object), args.outcomes).tolist(),
        "approved": (p < 0.2).tolist(),
    }
    got, expected = run_govreg(ref, live, out), run_reference(ref, live, out)
    for key in expected:
        _same(got[key], expected[key], key)
    ours = _median(lambda: run_govreg(ref, live, out), args.runs)
    theirs = _median(lambda: run_reference(ref, live, out), args.runs)
    print(
        f"one window: {args.decisions:,} decisions, {args.outcomes:,} matured outcomes, "
        f"{NUMERIC + len(CATEGORIES)} features; figures equal to the direct computation"
    )
    print(f"  govreg (validation.monitoring): {ours:7.2f} s  (target <= 10 s)")
    print(f"  direct numpy/pandas reference:  {theirs:7.2f} s")
    print(f"  ratio: {ours / theirs:.2f}x  (target <= 1.5x)")


if __name__ == "__main__":
    main()
