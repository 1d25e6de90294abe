"""The recorded ROC points, KS point and histograms checked against sklearn and numpy."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_curve

TOLERANCE = Decimal("1e-12")


def _close(text: str, value: float) -> bool:
    if not np.isfinite(value):
        return text == ("Infinity" if value > 0 else "-Infinity")
    return abs(Decimal(text) - Decimal(repr(float(value)))) <= TOLERANCE


def assert_curves_match(
    recorded: dict[str, Any], y: npt.NDArray[Any], score: npt.NDArray[np.float64]
) -> None:
    """Every recorded ROC point lies on ``roc_curve`` (one point per distinct score), in
    order, from (0, 0) to (1, 1); the KS point is the one with the largest tpr - fpr and
    is among the points; the histogram counts are ``numpy.histogram``'s by outcome."""
    fpr, tpr, threshold = roc_curve(y, score, drop_intermediate=False)
    points = recorded["roc"]
    assert min(len(fpr), 199) <= len(points) <= 200
    j = 0
    for x, v in points:
        while j < len(fpr) and not (_close(x, fpr[j]) and _close(v, tpr[j])):
            j += 1
        assert j < len(fpr), f"({x}, {v}) is not on the ROC curve after point {j}"
    assert points[0] == ["0", "0"]
    assert points[-1] == ["1", "1"]
    gap = tpr - fpr
    k = int(np.argmax(gap))
    ks = recorded["ks"]
    assert _close(ks["ks"], float(np.max(gap)))
    assert _close(ks["fpr"], fpr[k])
    assert _close(ks["tpr"], tpr[k])
    assert _close(ks["score"], threshold[k])
    assert [ks["fpr"], ks["tpr"]] in points
    edges = np.linspace(0.0, 1.0, 21)
    hist = recorded["histogram"]
    assert len(hist["edges"]) == 21
    assert all(_close(e, float(v)) for e, v in zip(hist["edges"], edges, strict=True))
    assert hist["defaults"] == np.histogram(score[y == 1], bins=edges)[0].tolist()
    assert hist["repaid"] == np.histogram(score[y == 0], bins=edges)[0].tolist()
