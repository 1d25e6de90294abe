"""The curves the report draws: the ROC curve with its KS point and the score histograms.

The performance gate records them at evaluation time in its result's
``details["curves"]`` (:func:`validation.performance.curves`); :func:`recorded`
reads them from there. A version evaluated before the gate recorded them has
a result without them: :func:`compute` then scores the stored validation set
with LightGBM itself (``Booster.predict``, the inputs encoded by the version's
data contract, as the gates scored them) and runs the same function, so both
paths give the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from core.errors import InputError

if TYPE_CHECKING:
    from registry.store import BlobStore

Source = Literal["recorded", "computed"]
SOURCES: dict[str, str] = {
    "recorded": "recorded by the performance gate at evaluation",
    "computed": "computed at report time with LightGBM from the stored artifact and "
    "validation set (the gate result predates recorded curves)",
}


@dataclass(frozen=True)
class Curves:
    """What the charts draw, as numbers, and its decimal-string form for the evidence JSON."""

    roc: list[tuple[float, float]]
    ks: tuple[float, float, float, float]  # fpr, tpr, ks, score at the KS point
    auc: float
    hist_edges: list[float]
    hist_defaults: list[float]  # share of the defaults per bin
    hist_repaid: list[float]  # share of the repaid per bin
    rows: int
    source: Source

    def public(self) -> dict[str, Any]:
        def f(x: float) -> str:
            return format(round(x, 6), ".6f").rstrip("0").rstrip(".") or "0"

        return {
            "rows": self.rows,
            "source": SOURCES[self.source],
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


def _shares(counts: list[int]) -> list[float]:
    total = max(sum(counts), 1)
    return [c / total for c in counts]


def _number(text: Any, where: str) -> float:
    if not isinstance(text, str):
        raise InputError(f"recorded curves: {where} is not a decimal string")
    try:
        return float(text)
    except ValueError:
        raise InputError(f"recorded curves: {where} is not a number: {text[:40]!r}") from None


def _count(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InputError(f"recorded curves: {where} is not a count")
    return value


def parse(recorded: dict[str, Any], *, auc: float, rows: int, source: Source) -> Curves:
    """:class:`Curves` from the gate's ``details["curves"]`` form; malformed data is an
    :class:`InputError` naming the field."""
    try:
        roc = [
            (_number(x, f"roc[{i}][0]"), _number(y, f"roc[{i}][1]"))
            for i, (x, y) in enumerate(recorded["roc"])
        ]
        ks = recorded["ks"]
        point = (
            _number(ks["fpr"], "ks.fpr"),
            _number(ks["tpr"], "ks.tpr"),
            _number(ks["ks"], "ks.ks"),
            _number(ks["score"], "ks.score"),
        )
        hist = recorded["histogram"]
        edges = [_number(e, f"histogram.edges[{i}]") for i, e in enumerate(hist["edges"])]
        defaults = [_count(c, f"histogram.defaults[{i}]") for i, c in enumerate(hist["defaults"])]
        repaid = [_count(c, f"histogram.repaid[{i}]") for i, c in enumerate(hist["repaid"])]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"recorded curves are malformed ({type(exc).__name__}: {exc})") from None
    if not roc:
        raise InputError("recorded curves: roc has no points")
    if not (len(defaults) == len(repaid) == len(edges) - 1 >= 1):
        raise InputError(
            f"recorded curves: {len(edges)} histogram edges for {len(defaults)} and "
            f"{len(repaid)} bins"
        )
    return Curves(
        roc=roc,
        ks=point,
        auc=auc,
        hist_edges=edges,
        hist_defaults=_shares(defaults),
        hist_repaid=_shares(repaid),
        rows=rows,
        source=source,
    )


def recorded(gate: dict[str, Any]) -> Curves | None:
    """The curves a performance gate result recorded, or None if it recorded none."""
    details = gate.get("details") or {}
    if "curves" not in details:
        return None
    values = gate.get("values") or {}
    auc = _number(values.get("auc"), "the gate's auc")
    rows = details.get("rows")
    return parse(
        details["curves"],
        auc=auc,
        rows=rows if isinstance(rows, int) else 0,
        source="recorded",
    )


def compute(store: BlobStore, submission: dict[str, Any]) -> Curves:
    """The curves of a version whose gate result predates them: the stored validation set
    scored by LightGBM through :class:`validation.inputs.GateInputs`, the inputs encoded by
    the version's data contract (categories as the model's codes, missing values as NaN)
    as the gates scored them. A submission without a recorded contract has it derived from
    the validation set."""
    from registry.inputs import load_frame
    from validation.contract import DataContract
    from validation.inputs import GateInputs
    from validation.performance import curves, discrimination

    model_text = store.get(submission["artifact"]["digest"]).decode("utf-8")
    data = store.get(submission["validation"]["digest"])
    frame = load_frame(data, submission["validation"].get("format", "parquet"), source="validation")
    inputs = GateInputs(
        model_text=model_text,
        train=frame,
        validation=frame,
        target=submission["target"],
        recorded_contract=(
            DataContract.from_canonical(submission["contract"])
            if "contract" in submission
            else None
        ),
    )
    labels, scores = inputs.y_validation, inputs.pred_validation
    disc = discrimination(labels, scores)
    return parse(curves(labels, scores), auc=disc.auc, rows=int(labels.shape[0]), source="computed")
