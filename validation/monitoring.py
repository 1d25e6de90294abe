"""Production monitoring measurements: drift against a frozen reference, discrimination by
vintage, calibration by score grade, live adverse impact and the rates decisions show.

Pure functions of arrays, the gates' measurements reused where they are the same
measurement, so a monitored number means what the gate's number meant:

- **Reference.** :func:`freeze` keeps, per feature and for the score, the bins of the
  validation data as the stability gate makes them (:mod:`validation.stability`):
  a numeric column's deciles (repeated edges merged, a value equal to an edge in the
  lower bin, missing values left out), a categorical column's categories (missing is
  the category ``<missing>``), and each bin's share. It is JSON data (exact decimal
  strings: it reads back as the very floats), recorded by the stability gate at
  evaluation (its ``reference`` detail) and never recomputed from live data.
- **PSI / CSI** of a live sample against the reference:
  ``sum((a - e) * ln(a / e))`` over the reference's bins with both shares floored at
  :data:`validation.stability.SHARE_FLOOR` (:func:`validation.stability.psi_from_shares`);
  a live category the reference never held adds a bin of reference share 0 (floored).
- **Out-of-range and unseen-category rates**: the share of non-missing live values
  outside the data contract's training range, or not among its categories.
- **Approval rate** and its drift: the live share approved minus the reference's.
- **Discrimination by vintage** (:func:`discrimination_by_vintage`): AUC, KS and
  Gini = 2 AUC - 1 per vintage from :func:`validation.performance.discrimination`
  (equal to ``sklearn.metrics.roc_auc_score`` and ``scipy.stats.ks_2samp``); a
  vintage without both outcomes is reported with its counts and no figures.
- **Calibration by grade** (:func:`calibration_by_grade`): per grade the mean
  predicted default, the observed default rate and its Jeffreys interval, the
  quantiles ``alpha/2`` and ``1 - alpha/2`` of Beta(k + 1/2, n - k + 1/2), with the
  lower bound 0 when k = 0 and the upper bound 1 when k = n (Brown, Cai and DasGupta,
  2001); a grade is miscalibrated when its mean prediction lies outside.
- **Adverse impact ratio of live approvals** (:func:`adverse_impact`): each group's
  approval rate over the highest group's, the lowest ratio reported.
- :func:`judge` turns a value and its warn and breach thresholds into
  ``ok`` / ``warn`` / ``breach``, comparing the decimal shown (as the gates do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from core.errors import InputError
from validation.contract import category_key, exact
from validation.result import dec

if TYPE_CHECKING:
    from collections.abc import Sequence
    from decimal import Decimal

    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]

MISSING = "<missing>"
Level = Literal["ok", "warn", "breach"]


# -- the frozen reference ---------------------------------------------------------------
@dataclass(frozen=True)
class NumericBins:
    """A numeric column's reference: interior bin edges (ascending) and each bin's share."""

    edges: tuple[float, ...]
    shares: tuple[float, ...]

    def data(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "edges": [exact(e) for e in self.edges],
            "shares": [exact(s) for s in self.shares],
        }


@dataclass(frozen=True)
class CategoryBins:
    """A categorical column's reference: its categories (sorted, :data:`MISSING` among
    them where the reference had missing values) and each one's share."""

    categories: tuple[str, ...]
    shares: tuple[float, ...]

    def data(self) -> dict[str, Any]:
        return {
            "kind": "categorical",
            "categories": list(self.categories),
            "shares": [exact(s) for s in self.shares],
        }


Bins = NumericBins | CategoryBins


def freeze_numeric(values: Any, bins: int = 10) -> NumericBins:
    """The reference bins of a numeric column: ``bins`` quantiles of its non-missing
    values (the stability gate's bins)."""
    import numpy as np

    from validation.stability import bin_shares, quantile_edges

    x = _floats(values, "reference")
    x = x[~np.isnan(x)]
    if x.size == 0:
        raise InputError("the reference column has no non-missing values")
    if bins < 2:
        raise InputError(f"a reference needs at least 2 bins, not {bins}")
    edges = quantile_edges(x, bins)
    return NumericBins(
        edges=tuple(float(e) for e in edges),
        shares=tuple(float(s) for s in bin_shares(edges, x)),
    )


def freeze_categorical(values: Sequence[Any]) -> CategoryBins:
    """The reference bins of a categorical column: one per category text."""
    codes, names = group_codes(values)
    if codes.size == 0:
        raise InputError("the reference column has no rows")
    counts = _bincount(codes, len(names))
    return CategoryBins(
        categories=tuple(names), shares=tuple(float(c) for c in counts / codes.size)
    )


def bins_from_data(data: dict[str, Any]) -> Bins:
    """The bins :meth:`NumericBins.data` or :meth:`CategoryBins.data` wrote."""
    try:
        kind = data["kind"]
        shares = tuple(float(dec_text(s)) for s in data["shares"])
        if kind == "numeric":
            edges = tuple(float(dec_text(e)) for e in data["edges"])
            if len(shares) != len(edges) + 1 or list(edges) != sorted(set(edges)):
                raise ValueError("edges must ascend and number one less than the shares")
            return NumericBins(edges, shares)
        if kind == "categorical":
            categories = tuple(str(c) for c in data["categories"])
            if len(categories) != len(shares) or list(categories) != sorted(set(categories)):
                raise ValueError("categories must be sorted, distinct, one per share")
            return CategoryBins(categories, shares)
        raise ValueError(f"unknown kind {kind!r:.40}")
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"a monitoring reference is malformed: {exc}") from exc


def dec_text(value: Any) -> str:
    """A decimal string as recorded, refusing anything else."""
    if not isinstance(value, str):
        raise TypeError(f"{value!r:.40} is not a decimal string")
    dec_value = _decimal(value)
    if not dec_value.is_finite():
        raise ValueError(f"{value!r:.40} is not finite")
    return value


def _decimal(text: str) -> Decimal:
    from decimal import Decimal, InvalidOperation

    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"{text!r:.40} is not a decimal") from exc


# -- drift ---------------------------------------------------------------------------------
def psi(reference: Bins, live: Any) -> float:
    """PSI (CSI for a feature) of ``live`` against the frozen ``reference``."""
    import numpy as np

    from validation.stability import psi_from_shares

    expected, actual = live_shares(reference, live)
    return psi_from_shares(np.asarray(expected), np.asarray(actual))


def live_shares(reference: Bins, live: Any) -> tuple[list[float], list[float]]:
    """(reference shares, live shares) over the reference's bins; a live category the
    reference lacks adds a bin of reference share 0."""
    import numpy as np

    from validation.stability import bin_shares

    if isinstance(reference, NumericBins):
        x = _floats(live, "live")
        x = x[~np.isnan(x)]
        if x.size == 0:
            raise InputError("the live column has no non-missing values")
        shares = bin_shares(np.asarray(reference.edges, dtype=np.float64), x)
        return list(reference.shares), [float(s) for s in shares]
    codes, names = group_codes(live)
    if codes.size == 0:
        raise InputError("the live column has no rows")
    known = dict(zip(reference.categories, reference.shares, strict=True))
    tally = dict(zip(names, _bincount(codes, len(names)).tolist(), strict=True))
    order = sorted(set(known) | set(tally))
    return [known.get(c, 0.0) for c in order], [tally.get(c, 0) / codes.size for c in order]


def out_of_range_rate(live: Any, minimum: float | None, maximum: float | None) -> float:
    """Share of the non-missing live values below ``minimum`` or above ``maximum``."""
    import numpy as np

    x = _floats(live, "live")
    x = x[~np.isnan(x)]
    if x.size == 0:
        return 0.0
    outside = np.zeros(x.shape, dtype=bool)
    if minimum is not None:
        outside |= x < minimum
    if maximum is not None:
        outside |= x > maximum
    return float(outside.mean())


def unseen_category_rate(live: Sequence[Any], categories: Sequence[Any]) -> float:
    """Share of the non-missing live values that are none of ``categories``."""
    known = {category_key(c) for c in categories}
    codes, names = group_codes(live)
    counts = _bincount(codes, len(names))
    present = sum(int(c) for c, name in zip(counts, names, strict=True) if name != MISSING)
    if present == 0:
        return 0.0
    unseen = sum(
        int(c) for c, name in zip(counts, names, strict=True) if name not in known | {MISSING}
    )
    return unseen / present


def approval_rate(decisions: Sequence[str]) -> float:
    """Share of ``decisions`` that are ``approve`` (the others must be ``decline``)."""
    if not decisions:
        raise InputError("no decisions in the window")
    odd = sorted({d for d in decisions if d not in ("approve", "decline")})
    if odd:
        raise InputError(f"decisions must be 'approve' or 'decline', not {odd[:3]}")
    return sum(d == "approve" for d in decisions) / len(decisions)


# -- outcomes ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Vintage:
    vintage: str
    rows: int
    defaults: int
    auc: float | None
    ks: float | None

    @property
    def gini(self) -> float | None:
        return None if self.auc is None else 2.0 * self.auc - 1.0


def discrimination_by_vintage(y: Any, score: Any, vintage: Sequence[str]) -> list[Vintage]:
    """AUC, KS and Gini per vintage (sorted); none where a vintage lacks either outcome."""
    import numpy as np

    from validation.performance import discrimination

    labels, scores = _outcomes(y), _floats(score, "score")
    if not (labels.shape == scores.shape == (len(vintage),)):
        raise InputError("outcomes, scores and vintages must have one entry per decision")
    groups = np.asarray([str(v) for v in vintage], dtype=object)
    out: list[Vintage] = []
    for name in sorted(set(groups.tolist())):
        keep = groups == name
        yv, sv = labels[keep], scores[keep]
        defaults = int(yv.sum())
        if 0 < defaults < yv.size:
            d = discrimination(yv, sv)
            out.append(Vintage(name, int(yv.size), defaults, d.auc, d.ks))
        else:
            out.append(Vintage(name, int(yv.size), defaults, None, None))
    return out


@dataclass(frozen=True)
class Grade:
    grade: str
    rows: int
    defaults: int
    predicted: float  # mean predicted probability of default
    observed: float
    lower: float
    upper: float

    @property
    def calibrated(self) -> bool:
        return self.lower <= self.predicted <= self.upper


def jeffreys_interval(defaults: int, rows: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Jeffreys interval of a default rate: Beta(k + 1/2, n - k + 1/2) quantiles,
    0 below when k = 0 and 1 above when k = n."""
    from scipy.special import betaincinv

    if rows < 1 or not 0 <= defaults <= rows:
        raise InputError(
            f"a default rate needs 0 <= defaults <= rows and rows >= 1 ({defaults}/{rows})"
        )
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be between 0 and 1, not {confidence}")
    alpha = 1.0 - confidence
    a, b = defaults + 0.5, rows - defaults + 0.5
    lower = 0.0 if defaults == 0 else float(betaincinv(a, b, alpha / 2))
    upper = 1.0 if defaults == rows else float(betaincinv(a, b, 1 - alpha / 2))
    return lower, upper


def calibration_by_grade(
    y: Any, probability: Any, grade: Sequence[str], confidence: float = 0.95
) -> list[Grade]:
    """Per score grade (sorted): rows, defaults, mean prediction, observed rate, interval."""
    import numpy as np

    labels, p = _outcomes(y), _floats(probability, "probability")
    if not (labels.shape == p.shape == (len(grade),)):
        raise InputError("outcomes, probabilities and grades must have one entry per decision")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise InputError("probabilities of default must lie in [0, 1]")
    groups = np.asarray([str(g) for g in grade], dtype=object)
    out: list[Grade] = []
    for name in sorted(set(groups.tolist())):
        keep = groups == name
        rows, defaults = int(keep.sum()), int(labels[keep].sum())
        lower, upper = jeffreys_interval(defaults, rows, confidence)
        out.append(
            Grade(name, rows, defaults, float(p[keep].mean()), defaults / rows, lower, upper)
        )
    return out


@dataclass(frozen=True)
class Impact:
    groups: tuple[str, ...]
    rows: tuple[int, ...]
    approval_rates: tuple[float, ...]
    ratio: float  # the lowest group rate over the highest
    lowest: str
    reference: str


def adverse_impact(approved: Any, group: Sequence[Any]) -> Impact:
    """Adverse impact ratio of live approvals across the groups of one attribute
    (missing is the group ``<missing>``): min rate / max rate."""
    import numpy as np

    flags = np.asarray(approved)
    if flags.dtype != bool:
        raise InputError("approvals must be booleans")
    codes, names = group_codes(group)
    if flags.shape != codes.shape:
        raise InputError("approvals and groups must have one entry per decision")
    if codes.size == 0:
        raise InputError("no decisions in the window")
    rows = _bincount(codes, len(names))
    rates = _bincount(codes[flags], len(names)) / rows
    hi, lo = int(np.argmax(rates)), int(np.argmin(rates))
    ratio = 1.0 if rates[hi] == 0 else float(rates[lo] / rates[hi])
    return Impact(
        groups=tuple(names),
        rows=tuple(int(r) for r in rows),
        approval_rates=tuple(float(r) for r in rates),
        ratio=ratio,
        lowest=names[lo],
        reference=names[hi],
    )


def override_rate(overrides: int, decisions: int) -> float:
    if decisions < 1 or not 0 <= overrides <= decisions:
        raise InputError(
            f"an override rate needs 0 <= overrides <= decisions >= 1 ({overrides}/{decisions})"
        )
    return overrides / decisions


# -- judging -------------------------------------------------------------------------------
def judge(value: float, *, warn: Decimal, breach: Decimal, higher_is_worse: bool = True) -> Level:
    """``breach`` at or beyond ``breach``, ``warn`` at or beyond ``warn``, else ``ok``;
    the decimal shown (:func:`validation.result.fmt`) is what is compared, as the gates compare."""
    shown = dec(value)
    if higher_is_worse:
        return "breach" if shown >= breach else "warn" if shown >= warn else "ok"
    return "breach" if shown <= breach else "warn" if shown <= warn else "ok"


# -- inputs --------------------------------------------------------------------------------
def _floats(values: Any, what: str) -> FloatArray:
    import numpy as np

    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"the {what} values are not numbers: {exc}") from exc
    if x.ndim != 1:
        raise InputError(f"the {what} values must be one column")
    if np.isinf(x).any():
        raise InputError(f"the {what} values hold an infinite number")
    return x


def _outcomes(y: Any) -> npt.NDArray[np.int64]:
    import numpy as np

    x = np.asarray(y)
    if x.ndim != 1 or x.dtype == bool or not np.isin(x, (0, 1)).all():
        raise InputError("outcomes must be 0 (repaid) or 1 (default)")
    return x.astype(np.int64)


def group_codes(values: Sequence[Any]) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Each value's group as an index into the sorted category texts (``2``, ``2.0`` and
    ``"2"`` alike; :data:`MISSING` for a missing value): one hash pass over the values,
    the texts made once per distinct value."""
    import numpy as np
    import pandas as pd

    column = pd.Series(values, dtype=object) if not isinstance(values, pd.Series) else values
    column = column.astype(object)
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    if any(isinstance(u, bool) for u in uniques.tolist()):
        # True hashes equal to 1 (and 1.0) but is another category text: one per value
        keys = [None if m else category_key(v) for v, m in zip(column, column.isna(), strict=True)]
        codes, uniques = pd.factorize(pd.Series(keys, dtype=object), use_na_sentinel=True)
    texts = [category_key(u) for u in uniques.tolist()]
    if (codes < 0).any():
        texts.append(MISSING)
        codes = np.where(codes < 0, len(texts) - 1, codes)
    names = sorted(set(texts))
    index = {name: i for i, name in enumerate(names)}
    position = np.asarray([index[t] for t in texts], dtype=np.int64)
    return position[codes].astype(np.int64), names


def _bincount(codes: npt.NDArray[np.int64], size: int) -> npt.NDArray[np.int64]:
    import numpy as np

    return np.bincount(codes, minlength=size)
