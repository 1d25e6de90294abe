"""Score applicants with an approved model: probability, decision, principal reasons.

Input rows are checked against the version's recorded input schema before
anything is scored: every model feature present, no unknown field, a finite
number (``null`` only where the training data had nulls), and inside the
range the data-schema gate recorded (the model was validated there and
nowhere else). A batch with one bad row is refused whole, naming each bad
field.

Decisions follow the policy's cutoff as the gates did: approve when the
probability of default is below the cutoff, decline otherwise. A decline
carries up to four principal reasons: the features whose contributions
(``Booster.predict(..., pred_contrib=True)``, the model's own TreeSHAP
values) pushed the score furthest towards default, largest first, each with
the reason text of the submission.

Fast paths, each falling back to the general per-field check whenever it
cannot prove a row valid (so every refusal and its message are unchanged):

- the rows are validated in bulk: exact key set, exact ``int``/``float``
  types, and ``lo <= v <= hi`` for every value (bounds widened to the largest
  finite float where the schema has none, so NaN and infinities fail too);
- a single row is predicted through LightGBM's single-row C API
  (``LGBM_BoosterPredictForMatSingleRowFast``, set up once per scorer for
  probabilities and for contributions), the same predictor code
  ``Booster.predict`` runs, without its per-call set-up;
- :meth:`Scorer.score_frame` takes a batch as a pandas DataFrame (one column
  per feature) and validates it column by column with numpy.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from operator import itemgetter, le
from typing import TYPE_CHECKING, Any

from core.clock import parse
from core.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    from serving.approval import Approval

MAX_REASONS = 4
MAX_PROBLEMS = 20
_NUMBERS = frozenset({int, float})
_LARGEST = sys.float_info.max


@dataclass(frozen=True)
class FieldSpec:
    name: str
    minimum: float | None
    maximum: float | None
    nullable: bool


def field_specs(features: Sequence[str], suite: Mapping[str, Any] | None) -> list[FieldSpec]:
    """One spec per model feature from a GX suite (JSON form); no suite, no ranges."""
    bounds: dict[str, tuple[float | None, float | None]] = {}
    nullable: set[str] = set()
    strict_nulls: set[str] = set()
    for expectation in (suite or {}).get("expectations", []):
        kind, kwargs = expectation.get("type"), expectation.get("kwargs", {})
        column = kwargs.get("column")
        if kind == "expect_column_values_to_be_between":
            lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
            bounds[column] = (
                None if lo is None else float(lo),
                None if hi is None else float(hi),
            )
        elif kind == "expect_column_values_to_not_be_null":
            if kwargs.get("mostly", 1) < 1:
                nullable.add(column)
            else:
                strict_nulls.add(column)
    specs = []
    for name in features:
        lo, hi = bounds.get(name, (None, None))
        specs.append(FieldSpec(name, lo, hi, name in nullable and name not in strict_nulls))
    return specs


@dataclass(frozen=True)
class Reason:
    feature: str
    text: str
    contribution: float


@dataclass(frozen=True)
class Scored:
    probability_of_default: float
    decision: str
    reasons: list[Reason]


class Scorer:
    """An approved model, parsed from the approved bytes, ready to score."""

    def __init__(self, approval: Approval, booster: Any) -> None:
        self.approval = approval
        self.booster = booster
        self.model = approval.model
        self.version = approval.version
        self.approval_seq = approval.approval_seq
        self.artifact_digest = approval.artifact_digest
        self.cutoff = float(approval.cutoff)
        self.revalidate_by: datetime = parse(approval.revalidate_by)
        self.features = list(approval.features)
        self.specs = field_specs(self.features, approval.schema_suite)
        self._known = frozenset(self.features)
        self._texts = {f: approval.reason_texts.get(f, f) for f in self.features}
        self._values = itemgetter(*self.features) if len(self.features) > 1 else None
        self._low = tuple(-_LARGEST if s.minimum is None else s.minimum for s in self.specs)
        self._high = tuple(_LARGEST if s.maximum is None else s.maximum for s in self.specs)
        self._single = SingleRowPredictor.create(booster, len(self.features))

    def _row_values(self, row: Any) -> tuple[Any, ...] | None:
        """The row's values in feature order if it is certainly valid, else None."""
        if type(row) is not dict or row.keys() != self._known:
            return None
        values: tuple[Any, ...] = (
            self._values(row) if self._values is not None else (row[self.features[0]],)
        )
        if (
            _NUMBERS.issuperset(map(type, values))
            and all(map(le, self._low, values))
            and all(map(le, values, self._high))
        ):
            return values
        return None

    def _fast_matrix(self, rows: Sequence[Any]) -> npt.NDArray[np.float64] | None:
        """The matrix if every row is certainly valid (checked in bulk), else None."""
        import numpy as np

        known = self._known
        if not rows or not all(type(r) is dict and r.keys() == known for r in rows):
            return None
        getter = self._values
        table = (
            list(map(getter, rows))
            if getter is not None
            else [(r[self.features[0]],) for r in rows]
        )
        if not _NUMBERS.issuperset(map(type, chain.from_iterable(table))):
            return None
        try:
            x = np.array(table, dtype=np.float64)
        except OverflowError:  # an int beyond float range: the general path says so
            return None
        if not self._in_bounds(x):
            return None
        return x

    def _in_bounds(self, x: npt.NDArray[np.float64]) -> bool:
        import numpy as np

        # NaN fails both comparisons; infinities fail against the widened bounds.
        low = np.asarray(self._low, dtype=np.float64)
        high = np.asarray(self._high, dtype=np.float64)
        return bool(((x >= low) & (x <= high)).all())

    def matrix(self, rows: Sequence[Any], *, where: str = "applicants") -> npt.NDArray[np.float64]:
        """The rows as a float matrix in feature order; InputError naming every bad field."""
        import numpy as np

        fast = self._fast_matrix(rows)
        if fast is not None:
            return fast
        x = np.empty((len(rows), len(self.specs)), dtype=np.float64)
        problems: list[str] = []
        for i, row in enumerate(rows):
            at = f"{where}[{i}]"
            if not isinstance(row, Mapping):
                problems.append(f"{at}: must be an object of feature values")
                continue
            for name in row:
                if name not in self._known:
                    problems.append(
                        f"{at}.{name}: unknown field; the model takes only its features"
                    )
            for j, spec in enumerate(self.specs):
                value = row.get(spec.name, _MISSING)
                if value is _MISSING:
                    problems.append(f"{at}.{spec.name}: missing")
                elif value is None:
                    if not spec.nullable:
                        problems.append(
                            f"{at}.{spec.name}: null, but the model was validated "
                            "without nulls here"
                        )
                    x[i, j] = math.nan
                elif isinstance(value, bool) or not isinstance(value, int | float):
                    problems.append(f"{at}.{spec.name}: must be a number, got {value!r}")
                elif not math.isfinite(value):
                    problems.append(f"{at}.{spec.name}: must be finite, got {value!r}")
                elif (spec.minimum is not None and value < spec.minimum) or (
                    spec.maximum is not None and value > spec.maximum
                ):
                    problems.append(
                        f"{at}.{spec.name}: {value!r} is outside the validated range "
                        f"{_bound(spec.minimum)}..{_bound(spec.maximum)}"
                    )
                else:
                    x[i, j] = value
            if len(problems) >= MAX_PROBLEMS:
                break
        if not rows:
            problems.append(f"{where}: give at least one applicant")
        if problems:
            shown = problems[:MAX_PROBLEMS]
            more = "" if len(problems) <= MAX_PROBLEMS else " (and more)"
            raise InputError("; ".join(shown) + more)
        return x

    def probabilities(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        import numpy as np

        return np.asarray(self.booster.predict(x), dtype=np.float64)

    def reasons(self, x: npt.NDArray[np.float64]) -> list[list[Reason]]:
        """The principal reasons of every row (largest contribution towards default first)."""
        import numpy as np

        contrib = np.asarray(self.booster.predict(x, pred_contrib=True), dtype=np.float64)
        contrib = contrib[:, : len(self.features)]
        # Stable, as the reference ranking np.argsort(-row, kind="stable") of each row.
        order = np.argsort(-contrib, axis=1, kind="stable")[:, :MAX_REASONS]
        top = np.take_along_axis(contrib, order, axis=1)
        features, texts = self.features, self._texts
        return [
            [
                Reason(features[j], texts[features[j]], value)
                for j, value in zip(js, values, strict=True)
                if value > 0
            ]
            for js, values in zip(order.tolist(), top.tolist(), strict=True)
        ]

    def score(self, rows: Sequence[Any]) -> list[Scored]:
        """Validate every row (all or nothing), then score: probability, decision, reasons."""
        if len(rows) == 1 and self._single is not None:
            values = self._row_values(rows[0])
            if values is not None:
                return [self._score_one(values, self._single)]
        return self.score_matrix(self.matrix(rows))

    def _score_one(self, values: tuple[Any, ...], single: SingleRowPredictor) -> Scored:
        p = single.probability(values)
        if p < self.cutoff:
            return Scored(probability_of_default=p, decision="approve", reasons=[])
        contrib = single.contributions(values)
        n = len(self.features)
        order = sorted(range(n), key=lambda j: -contrib[j])  # stable, as np.argsort
        reasons = [
            Reason(self.features[j], self._texts[self.features[j]], contrib[j])
            for j in order[:MAX_REASONS]
            if contrib[j] > 0
        ]
        return Scored(probability_of_default=p, decision="decline", reasons=reasons)

    def score_frame(self, frame: pd.DataFrame, *, where: str = "applicants") -> list[Scored]:
        """Score a batch given as a DataFrame, one column per feature (the batch entry point).

        Every value is checked as :meth:`matrix` checks a row: the columns are
        exactly the model's features, numeric (booleans refused), finite, and
        inside the validated range; a missing value (NaN) only where the
        training data had nulls. InputError names each bad field by row.
        """
        import numpy as np
        import pandas as pd

        columns = [str(c) for c in frame.columns]
        problems = [
            f"{where}.{name}: unknown field; the model takes only its features"
            for name in columns
            if name not in self._known
        ]
        problems += [f"{where}.{name}: missing" for name in self.features if name not in columns]
        if len(set(columns)) != len(columns):
            problems.append(f"{where}: a column name appears twice")
        if not problems:
            for name in self.features:
                dtype = frame[name].dtype
                if pd.api.types.is_bool_dtype(dtype) or not (
                    pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_float_dtype(dtype)
                ):
                    problems.append(f"{where}.{name}: must be a number, column type {dtype}")
        if not problems and len(frame) == 0:
            problems.append(f"{where}: give at least one applicant")
        if problems:
            raise InputError("; ".join(problems[:MAX_PROBLEMS]))
        x = np.ascontiguousarray(frame[self.features].to_numpy(dtype=np.float64))
        if not self._in_bounds(x):
            nullable = np.array([s.nullable for s in self.specs])
            bad = ~((x >= np.asarray(self._low)) & (x <= np.asarray(self._high)))
            bad &= ~(np.isnan(x) & nullable)  # a null where nulls were validated
            for i, j in zip(*np.nonzero(bad), strict=True):
                spec, value = self.specs[j], float(x[i, j])
                at = f"{where}[{i}].{spec.name}"
                if math.isnan(value):
                    problems.append(f"{at}: null, but the model was validated without nulls here")
                elif not math.isfinite(value):
                    problems.append(f"{at}: must be finite, got {value!r}")
                else:
                    problems.append(
                        f"{at}: {value!r} is outside the validated range "
                        f"{_bound(spec.minimum)}..{_bound(spec.maximum)}"
                    )
                if len(problems) > MAX_PROBLEMS:
                    break
            if problems:
                more = "" if len(problems) <= MAX_PROBLEMS else " (and more)"
                raise InputError("; ".join(problems[:MAX_PROBLEMS]) + more)
        return self.score_matrix(x)

    def score_matrix(self, x: npt.NDArray[np.float64]) -> list[Scored]:
        """Score a matrix that :meth:`matrix` or :meth:`score_frame` built (already checked)."""
        import numpy as np

        p = self.probabilities(x)
        declined = np.flatnonzero(p >= self.cutoff)
        reasons = (
            dict(zip(declined.tolist(), self.reasons(x[declined]), strict=True))
            if declined.size
            else {}
        )
        out = []
        for i, probability in enumerate(p.tolist()):
            why = reasons.get(i)
            out.append(
                Scored(probability, "approve", [])
                if why is None
                else Scored(probability, "decline", why)
            )
        return out


def _bound(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


class SingleRowPredictor:
    """LightGBM's single-row fast prediction for one booster (probability and contributions).

    ``LGBM_BoosterPredictForMatSingleRowFastInit`` prepares the predictor once
    (the same parameters ``Booster.predict`` passes: none, and the booster's
    best iteration); each call then only copies one row of doubles. A lock
    serialises calls on a handle (the server scores from a thread pool).
    """

    def __init__(self, booster: Any, ncol: int) -> None:
        import ctypes

        from lightgbm import basic

        # The library handle lightgbm itself calls (the C API is public; its handle is
        # not, hence the ignore: mypy sees _LIB as imported into basic, not exported).
        _LIB, _safe_call = basic._LIB, basic._safe_call  # type: ignore[attr-defined]
        self._lib, self._safe_call = _LIB, _safe_call
        self._booster = booster  # outlives the handles below
        self.ncol = ncol
        self._row_type = ctypes.c_double * ncol
        self._lock = threading.Lock()
        self._handles: list[Any] = []
        self._out_len = ctypes.c_int64(0)
        for predict_type in (0, 3):  # C_API_PREDICT_NORMAL, C_API_PREDICT_CONTRIB
            handle = ctypes.c_void_p()
            _safe_call(
                _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                    booster._handle,
                    ctypes.c_int(predict_type),
                    ctypes.c_int(0),
                    ctypes.c_int(booster.best_iteration),
                    ctypes.c_int(1),  # C_API_DTYPE_FLOAT64
                    ctypes.c_int32(ncol),
                    ctypes.c_char_p(b""),
                    ctypes.byref(handle),
                )
            )
            self._handles.append(handle)
        self._one = ctypes.c_double * 1
        self._contrib_type = ctypes.c_double * (ncol + 1)
        self._byref = ctypes.byref

    @classmethod
    def create(cls, booster: Any, ncol: int) -> SingleRowPredictor | None:
        """The fast predictor for a binary model, or None (then ``Booster.predict`` is used)."""
        try:
            if booster.num_model_per_iteration() != 1 or booster.num_feature() != ncol:
                return None
            return cls(booster, ncol)
        except Exception:  # noqa: BLE001 - any trouble: the general path still scores
            return None

    def _run(self, handle: Any, values: tuple[Any, ...], out: Any) -> None:
        row = self._row_type(*values)
        with self._lock:
            self._safe_call(
                self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                    handle, row, self._byref(self._out_len), out
                )
            )

    def probability(self, values: tuple[Any, ...]) -> float:
        out = self._one()
        self._run(self._handles[0], values, out)
        return float(out[0])

    def contributions(self, values: tuple[Any, ...]) -> list[float]:
        """One contribution per feature, then the expected value (as ``pred_contrib``)."""
        out = self._contrib_type()
        self._run(self._handles[1], values, out)
        return list(out)

    def __del__(self) -> None:
        for handle in getattr(self, "_handles", []):
            self._lib.LGBM_FastConfigFree(handle)


class _Missing:
    pass


_MISSING: Any = _Missing()
