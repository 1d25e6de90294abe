"""Curves the gates do not record, computed from the stored artifact and validation set.

The ROC curve with its KS point and the score distributions by outcome need
every validation score. Importing LightGBM (and pandas) costs seconds per
process, so numeric LightGBM text models are scored here by a small NumPy
tree walker (checked against ``Booster.predict`` in the tests); models with
categorical splits or other objectives fall back to LightGBM itself.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from registry.store import BlobStore

    FloatArray = npt.NDArray[np.float64]

ROC_POINTS = 200
HIST_BINS = 20


@dataclass(frozen=True)
class Curves:
    """Decimal strings, ready for the charts and the evidence JSON."""

    roc: list[tuple[float, float]]
    ks: tuple[float, float, float, float]  # fpr, tpr, ks, score at the KS point
    auc: float
    hist_edges: list[float]
    hist_defaults: list[float]
    hist_repaid: list[float]
    rows: int

    def public(self) -> dict[str, Any]:
        def f(x: float) -> str:
            return format(round(x, 6), ".6f").rstrip("0").rstrip(".") or "0"

        return {
            "rows": self.rows,
            "auc": f(self.auc),
            "ks": {
                "fpr": f(self.ks[0]),
                "tpr": f(self.ks[1]),
                "ks": f(self.ks[2]),
                "score": f(self.ks[3]),
            },
            "roc": [[f(x), f(y)] for x, y in self.roc],
            "histogram": {
                "edges": [f(e) for e in self.hist_edges],
                "defaults": [f(v) for v in self.hist_defaults],
                "repaid": [f(v) for v in self.hist_repaid],
            },
        }


@dataclass(frozen=True)
class _Tree:
    feature: FloatArray
    threshold: FloatArray
    decision: FloatArray
    left: FloatArray
    right: FloatArray
    leaf: FloatArray


class UnsupportedModel(Exception):
    """The text model uses something the NumPy walker does not implement."""


def _parse(model_text: str) -> tuple[list[str], list[_Tree], float]:
    import numpy as np

    header: dict[str, str] = {}
    trees: list[_Tree] = []
    block: dict[str, str] | None = None
    for line in model_text.splitlines():
        if line.startswith("Tree="):
            if block is not None:
                trees.append(_tree(block))
            block = {}
            continue
        if line.startswith("end of trees"):
            break
        key, sep, value = line.partition("=")
        if not sep:
            continue
        (header if block is None else block)[key] = value
    if block is not None:
        trees.append(_tree(block))
    objective = header.get("objective", "")
    if header.get("num_class", "1") != "1" or not objective.startswith("binary"):
        raise UnsupportedModel(f"objective {objective!r}")
    sigmoid = 1.0
    for part in objective.split()[1:]:
        if part.startswith("sigmoid:"):
            sigmoid = float(part.split(":", 1)[1])
    _ = np
    return header["feature_names"].split(), trees, sigmoid


def _tree(block: dict[str, str]) -> _Tree:
    import numpy as np

    if int(block.get("num_cat", "0")) or block.get("is_linear", "0") != "0":
        raise UnsupportedModel("categorical or linear trees")

    def arr(key: str) -> FloatArray:
        text = block.get(key, "").strip()
        return np.array([float(x) for x in text.split()] if text else [], dtype=np.float64)

    leaf = arr("leaf_value")
    if int(block["num_leaves"]) == 1:
        empty = np.zeros(0)
        return _Tree(empty, empty, empty, empty, empty, leaf)
    return _Tree(
        arr("split_feature"),
        arr("threshold"),
        arr("decision_type"),
        arr("left_child"),
        arr("right_child"),
        leaf,
    )


def predict(model_text: str, x: FloatArray) -> FloatArray:
    """Predicted default probabilities of a numeric binary LightGBM text model."""
    import numpy as np

    _names, trees, sigmoid = _parse(model_text)
    raw = np.zeros(x.shape[0])
    rows = np.arange(x.shape[0])
    for tree in trees:
        if tree.feature.size == 0:
            raw += tree.leaf[0]
            continue
        node = np.zeros(x.shape[0], dtype=np.int64)
        active = np.ones(x.shape[0], dtype=bool)
        while active.any():
            n = node[active]
            r = rows[active]
            value = x[r, tree.feature[n].astype(np.int64)]
            decision = tree.decision[n].astype(np.int64)
            missing_type = (decision >> 2) & 3
            default_left = (decision & 2) != 0
            nan = np.isnan(value)
            is_missing = ((missing_type == 2) & nan) | (
                (missing_type == 1) & (nan | (np.abs(value) <= 1e-35))
            )
            value = np.where(nan & (missing_type != 2), 0.0, value)
            go_left = np.where(is_missing, default_left, value <= tree.threshold[n])
            child = np.where(go_left, tree.left[n], tree.right[n]).astype(np.int64)
            leaf_reached = child < 0
            done_rows = r[leaf_reached]
            raw[done_rows] += tree.leaf[~child[leaf_reached]]
            node[r] = np.where(leaf_reached, 0, child)
            still = active.copy()
            still[done_rows] = False
            active = still
    result: FloatArray = 1.0 / (1.0 + np.exp(-sigmoid * raw))
    return result


def _columns(data: bytes, fmt: str, names: list[str]) -> dict[str, FloatArray]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        if fmt == "csv":
            import pyarrow.csv as pacsv

            table = pacsv.read_csv(io.BytesIO(data))
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(io.BytesIO(data), columns=names)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"validation dataset cannot be read as {fmt}: {exc}") from exc
    out: dict[str, FloatArray] = {}
    for name in names:
        column = table.column(name)
        if not (
            pa.types.is_integer(column.type)
            or pa.types.is_floating(column.type)
            or pa.types.is_boolean(column.type)
        ):
            raise UnsupportedModel(f"column {name} is {column.type}")
        out[name] = np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False))
    return out


def _scores_with_lightgbm(model_text: str, data: bytes, fmt: str, target: str) -> tuple[Any, Any]:
    from core.lgbm import import_lightgbm
    from registry.inputs import load_frame

    lgb = import_lightgbm()

    frame = load_frame(data, fmt, source="validation")
    booster = lgb.Booster(model_str=model_text)
    x = frame[booster.feature_name()]
    return booster.predict(x), frame[target].to_numpy(dtype=float)


def compute(store: BlobStore, submission: dict[str, Any]) -> Curves:
    """ROC, KS point and score histograms on the version's validation set."""
    import numpy as np

    model_text = store.get(submission["artifact"]["digest"]).decode("utf-8")
    data = store.get(submission["validation"]["digest"])
    fmt = submission["validation"].get("format", "parquet")
    target = submission["target"]
    try:
        names = _parse(model_text)[0]
        cols = _columns(data, fmt, [*names, target])
        x = np.column_stack([cols[n] for n in names])
        scores, labels = predict(model_text, x), cols[target]
    except UnsupportedModel:
        scores, labels = _scores_with_lightgbm(model_text, data, fmt, target)
    return curves_of(np.asarray(scores, dtype=float), np.asarray(labels, dtype=float))


def curves_of(scores: FloatArray, labels: FloatArray) -> Curves:
    import numpy as np

    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    positives, negatives = float(y.sum()), float(len(y) - y.sum())
    tp = np.cumsum(y)
    fp = np.cumsum(1 - y)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # one point per distinct score
    tpr = np.r_[0.0, tp[last] / positives]
    fpr = np.r_[0.0, fp[last] / negatives]
    auc = float(np.trapezoid(tpr, fpr))
    gap = tpr - fpr
    k = int(np.argmax(gap))
    ks_score = float(s[last[k - 1]]) if k > 0 else 1.0
    pick = np.unique(np.r_[np.linspace(0, len(fpr) - 1, ROC_POINTS).astype(int), k])
    roc = [(float(fpr[i]), float(tpr[i])) for i in pick]
    edges = np.linspace(0.0, 1.0, HIST_BINS + 1)
    defaults, _ = np.histogram(scores[labels == 1], bins=edges)
    repaid, _ = np.histogram(scores[labels == 0], bins=edges)
    return Curves(
        roc=roc,
        ks=(float(fpr[k]), float(tpr[k]), float(gap[k]), ks_score),
        auc=auc,
        hist_edges=[float(e) for e in edges],
        hist_defaults=[float(v) / max(positives, 1.0) for v in defaults],
        hist_repaid=[float(v) / max(negatives, 1.0) for v in repaid],
        rows=len(y),
    )
