"""Score applicants with an approved model: probability, decision, principal reasons.

What an applicant's value may be is the version's data contract
(:mod:`validation.contract`, recorded with the submission; for a version
submitted before contracts were recorded, :func:`contract_of` builds one
from the recorded schema suite's ranges and the model's own categories):

- a **numeric** feature takes a JSON number (booleans are not numbers),
  finite, an integer within +-2^53 (I-JSON: the decision log records it
  exactly). A number outside the training min..max follows the policy's
  ``scoring.out_of_range``: ``score`` scores it and flags the feature
  (``flags["out_of_range"]``), ``refuse`` refuses it, naming the range;
- a **categorical** feature takes a category: a string, or a number equal to
  one (``2`` for the category ``"2"``), mapped to the model's code exactly as
  LightGBM's pandas path maps it (:meth:`~validation.contract.Feature.code`).
  A category the model never saw follows ``scoring.unseen_category``:
  ``refuse`` refuses it, naming the field and the value; ``missing`` scores
  it as missing (NaN, what LightGBM itself does) and flags the feature
  (``flags["unseen_category"]``);
- ``null`` is a missing value (NaN) for a feature whose training data had
  missing values (``null_rate > 0``), and refused for one that had none.

Anything else (text in a numeric field, objects, lists, ``NaN`` and
``Infinity`` tokens, numbers beyond the float range, unknown or missing
fields) refuses that applicant with a message naming each bad field.

Every applicant is answered on its own: :class:`Scored` or :class:`Refused`;
one bad row never refuses the others.

Decisions follow the policy's cutoff as the gates did: approve when the
probability of default is below the cutoff, decline otherwise. A decline
carries up to four principal reasons: the features whose contributions
(``Booster.predict(..., pred_contrib=True)``, the model's own TreeSHAP
values) pushed the score furthest towards default, largest first, each with
the value that counted and the reason text of the submission (the text for
the applicant's category where one was given).

Fast paths, each falling back to the general per-field check whenever it
cannot prove a value valid (so every refusal, flag and message is the same):

- a single row is checked in bulk (exact key set, a category by one dict
  lookup, exact ``int``/``float`` types and ``lo <= v <= hi`` for numbers)
  and predicted through LightGBM's single-row C API
  (``LGBM_BoosterPredictForMatSingleRowFast``, set up once per scorer for
  probabilities and for contributions), the same predictor code
  ``Booster.predict`` runs, without its per-call set-up;
- a batch is checked column by column (types, bounds with numpy, categories
  by dict lookup);
- :meth:`Scorer.score_frame` takes a batch as a pandas DataFrame (one column
  per feature: numbers, category strings, dtype ``category``, as read from
  CSV or Parquet) and checks it with numpy.
"""

from __future__ import annotations

import math
import numbers
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from operator import itemgetter, le
from typing import TYPE_CHECKING, Any

from core.clock import parse
from core.errors import InputError
from serving.errors import Check, LoadRefused
from validation.contract import DataContract, Feature, category_key, quote
from validation.reasons import text_for

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    from serving.approval import Approval

MAX_REASONS = 4
MAX_PROBLEMS = 20  # per applicant
MAX_CATEGORY_CHARS = 1000  # a longer text is no category of any model here
SAFE_INTEGER = 2**53 - 1  # I-JSON: integers beyond this are not exchanged exactly
OUT_OF_RANGE = "out_of_range"
UNSEEN_CATEGORY = "unseen_category"
_NUMBERS = frozenset({int, float})
_NUMBERS_OR_NULL = frozenset({int, float, type(None)})
_NULL_REFUSED = "null, but the training data had no missing values here"


# -- results ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Reason:
    """A principal reason: the feature, its text, its contribution, and the value that
    counted (the category, the number, or None for a missing value)."""

    feature: str
    text: str
    contribution: float
    value: str | int | float | bool | None = None


@dataclass(frozen=True)
class Scored:
    """A decided applicant; ``flags`` names the features scored outside what the model
    was validated on: ``out_of_range`` and ``unseen_category`` (scored as missing)."""

    probability_of_default: float
    decision: str
    reasons: list[Reason]
    flags: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Refused:
    """An applicant that was not scored: each problem as (where, what to fix)."""

    problems: tuple[tuple[str, str], ...]
    fields: tuple[str, ...]
    more: bool = False

    @property
    def error(self) -> str:
        text = "; ".join(f"{where}: {what}" for where, what in self.problems)
        return text + (" (and more)" if self.more else "")


Result = Scored | Refused


class ApplicantsRefused(InputError):
    """No applicant of a request could be scored. ``errors`` lists every problem of
    every applicant as ``{"field": "applicants[1].income", "message": "missing"}``."""

    def __init__(self, refused: Sequence[Refused]) -> None:
        self.errors = [
            {"field": where, "message": what} for r in refused for where, what in r.problems
        ]
        shown = [f"{e['field']}: {e['message']}" for e in self.errors[:MAX_PROBLEMS]]
        more = (
            " (and more)" if len(self.errors) > MAX_PROBLEMS or any(r.more for r in refused) else ""
        )
        super().__init__("no applicant could be scored: " + "; ".join(shown) + more)


# -- the contract a scorer works from -----------------------------------------------------
def _suite_number(value: Any, what: str, subject: str) -> float | None:
    """A number of the recorded schema suite (decimal strings, or numbers in older suites)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise LoadRefused(
            Check.CONTRACT, subject, f"the recorded schema suite's {what} is {value!r}"
        )
    try:
        number = float(Decimal(str(value)))
    except (InvalidOperation, ValueError, OverflowError) as exc:
        raise LoadRefused(
            Check.CONTRACT, subject, f"the recorded schema suite's {what} is {value!r}"
        ) from exc
    if not math.isfinite(number):
        raise LoadRefused(Check.CONTRACT, subject, f"the recorded schema suite's {what} is {value}")
    return number


def _declared_categories(booster: Any) -> dict[int, list[Any]]:
    """The model's categorical features (index -> its categories, in code order)."""
    indices = booster.params.get("categorical_feature") or []
    if isinstance(indices, str):
        indices = [int(part) for part in indices.split(",") if part.strip()]
    elif isinstance(indices, int):
        indices = [indices]
    lists = booster.pandas_categorical or []
    indices = sorted({int(j) for j in indices})
    if lists and not indices:  # no parameter line: the model text's feature infos tell
        from validation.contract import model_features

        try:
            declared = model_features(booster.model_to_string())
        except InputError:
            return {}
        return {j: list(f.categories) for j, f in enumerate(declared) if f.kind == "categorical"}
    if len(lists) != len(indices):
        return {j: [] for j in indices}  # categorical without names: refused by the check
    return dict(zip(indices, lists, strict=True))


def suite_contract(
    features: Sequence[str], suite: Mapping[str, Any] | None, booster: Any, *, subject: str
) -> DataContract:
    """The contract of a version submitted before contracts were recorded: the model's
    categorical features with its own categories, numeric features with the training
    ranges of the recorded schema suite (decimal strings) and nulls where it allowed them."""
    bounds: dict[str, tuple[float | None, float | None]] = {}
    null_rates: dict[str, float] = {}
    expectations = (suite or {}).get("expectations") or []
    if not isinstance(expectations, list):
        raise LoadRefused(
            Check.CONTRACT, subject, "the recorded schema suite has no expectation list"
        )
    for expectation in expectations:
        if not isinstance(expectation, Mapping) or not isinstance(
            expectation.get("kwargs"), Mapping
        ):
            raise LoadRefused(
                Check.CONTRACT, subject, "a recorded schema expectation has no kwargs"
            )
        kind, kwargs = expectation.get("type"), expectation["kwargs"]
        column = kwargs.get("column")
        if kind == "expect_column_values_to_be_between":
            bounds[str(column)] = (
                _suite_number(kwargs.get("min_value"), f"minimum of {column!r}", subject),
                _suite_number(kwargs.get("max_value"), f"maximum of {column!r}", subject),
            )
        elif kind == "expect_column_values_to_not_be_null":
            mostly = _suite_number(kwargs.get("mostly", "1"), f"null share of {column!r}", subject)
            if mostly is not None and mostly < 1:
                null_rates[str(column)] = 1.0 - mostly
    declared = _declared_categories(booster)
    out = []
    for j, name in enumerate(features):
        rate = null_rates.get(name, 0.0)
        if j in declared:
            out.append(Feature(name, "categorical", rate, tuple(declared[j])))
        else:
            lo, hi = bounds.get(name, (None, None))
            out.append(Feature(name, "numeric", rate, minimum=lo, maximum=hi))
    return DataContract(tuple(out))


def contract_of(approval: Approval, booster: Any) -> DataContract:
    """The data contract the scorer enforces, checked against the model it scores with.

    The recorded contract (the submission's), else :func:`suite_contract`. The
    feature names, which are categorical and their categories must be the
    model's own (the bytes are approved; the contract must describe them).
    """
    subject = approval.subject
    if approval.contract is not None:
        try:
            contract = DataContract.from_canonical(approval.contract)
        except InputError as exc:
            raise LoadRefused(Check.CONTRACT, subject, str(exc)) from exc
    else:
        contract = suite_contract(
            approval.features, approval.schema_suite, booster, subject=subject
        )
    names = list(booster.feature_name())
    if contract.names != names or list(approval.features) != names:
        raise LoadRefused(
            Check.CONTRACT,
            subject,
            f"the recorded features {contract.names[:8]} are not the model's {names[:8]}",
        )
    declared = _declared_categories(booster)
    for j, feature in enumerate(contract.features):
        if (j in declared) != feature.categorical:
            kind = "categorical" if j in declared else "numeric"
            raise LoadRefused(
                Check.CONTRACT,
                subject,
                f"feature {feature.name!r} is {kind} in the model, {feature.kind} in the contract",
            )
        if feature.categorical:
            model = [category_key(c) for c in declared[j]]
            if not model:
                raise LoadRefused(
                    Check.CONTRACT,
                    subject,
                    f"feature {feature.name!r} is categorical but the model names no categories",
                )
            if model != [category_key(c) for c in feature.categories]:
                raise LoadRefused(
                    Check.CONTRACT,
                    subject,
                    f"the contract's categories of {feature.name!r} are not the model's",
                )
    return contract


# -- messages -----------------------------------------------------------------------------
def show(value: Any) -> str:
    """A value for an error message: escaped, cut short, JSON words for JSON values."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        return quote(value[:48])
    if isinstance(value, int):
        if value.bit_length() > 128:  # never render (or fail to render) a huge integer
            return f"an integer of {int(value.bit_length() * 0.30103) + 1} digits"
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return quote(value) if isinstance(value, numbers.Number) else f"a {type(value).__name__}"


def field_name(name: Any) -> str:
    """A field name for an error path; odd or long names quoted and cut short."""
    if isinstance(name, str) and len(name) <= 64 and name.isprintable() and name.strip() == name:
        return name
    return show(name) if isinstance(name, str) else quote(name)


def _bound(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


class _Problems:
    """Per-row problems and flags of one batch."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.rows: dict[int, list[tuple[str, str]]] = {}
        self.fields: dict[int, list[str]] = {}
        self.more: set[int] = set()
        self.flags: dict[int, dict[str, list[str]]] = {}

    def bad(self, i: int, name: str | None, what: str) -> None:
        found = self.rows.setdefault(i, [])
        if len(found) >= MAX_PROBLEMS:
            self.more.add(i)
            return
        at = f"{self.where}[{i}]" if name is None else f"{self.where}[{i}].{name}"
        found.append((at, what))
        if name is not None and name not in self.fields.setdefault(i, []):
            self.fields[i].append(name)

    def flag(self, i: int, kind: str, name: str) -> None:
        self.flags.setdefault(i, {}).setdefault(kind, []).append(name)

    def refused(self, i: int) -> Refused:
        return Refused(tuple(self.rows[i]), tuple(self.fields.get(i, ())), i in self.more)


def _tuple_getter(keys: Sequence[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """itemgetter that always returns a tuple (itemgetter of one key returns the item)."""
    if len(keys) == 1:
        key = keys[0]
        return lambda row: (row[key],)
    if not keys:
        return lambda row: ()
    getter: Callable[[Any], tuple[Any, ...]] = itemgetter(*keys)
    return getter


class _Missing:
    pass


_MISSING: Any = _Missing()


# -- the scorer -----------------------------------------------------------------------------
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
        self.rules = approval.scoring
        self.contract = contract_of(approval, booster)
        self.features = self.contract.names
        specs = self.contract.features
        self._specs = specs
        self._known = frozenset(self.features)
        self._refuse_unseen = self.rules.unseen_category == "refuse"
        self._refuse_out_of_range = self.rules.out_of_range == "refuse"
        texts = approval.reason_texts
        try:
            self._default_text = [text_for(texts, f.name) for f in specs]
            self._code_text = [
                [text_for(texts, f.name, c) for c in f.categories] if f.categorical else []
                for f in specs
            ]
        except (AttributeError, TypeError) as exc:  # not the recorded form
            raise LoadRefused(
                Check.CONTRACT, approval.subject, f"the reason texts are malformed ({exc})"
            ) from exc
        self._categories = [list(f.categories) for f in specs]
        self._categorical = [f.categorical for f in specs]
        # One dict lookup per category value: text keys -> code (a float, as the model
        # takes it); None -> NaN where nulls are allowed. Anything else (a number equal
        # to a category, say) misses and takes the per-field check.
        self._lookup: list[dict[Any, float]] = []
        for f in specs:
            table: dict[Any, float] = {}
            if f.categorical:
                table = {category_key(c): float(i) for i, c in enumerate(f.categories)}
                if f.nullable:
                    table[None] = math.nan
            self._lookup.append(table)
        self._cat_lookups = [(j, self._lookup[j]) for j, f in enumerate(specs) if f.categorical]
        numeric = [j for j, f in enumerate(specs) if not f.categorical]
        self._numeric = numeric
        self._nullable_numeric = [j for j in numeric if specs[j].nullable]
        self._numeric_of = _tuple_getter(numeric)
        self._values = _tuple_getter(self.features)
        # The fast check's bounds: the training range, never beyond +-2^53 (larger
        # values, exact or not, take the per-field check).
        self._low = [
            -float(SAFE_INTEGER) if f.minimum is None else max(f.minimum, -float(SAFE_INTEGER))
            for f in specs
        ]
        self._high = [
            float(SAFE_INTEGER) if f.maximum is None else min(f.maximum, float(SAFE_INTEGER))
            for f in specs
        ]
        self._num_low = [self._low[j] for j in numeric]
        self._num_high = [self._high[j] for j in numeric]
        self._single = SingleRowPredictor.create(booster, len(self.features))

    # -- one value, the general check ----------------------------------------------------
    def _value(self, j: int, value: Any, i: int, out: _Problems) -> float:
        """The model input for ``value`` of feature ``j`` (row ``i``); problems and flags
        go to ``out`` (then the returned NaN is never scored)."""
        spec = self._specs[j]
        name = spec.name
        if value is None:
            if not spec.nullable:
                out.bad(i, name, _NULL_REFUSED)
            return math.nan
        if spec.categorical:
            return self._category(spec, value, i, out)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            out.bad(i, name, f"must be a number, got {show(value)}")
            return math.nan
        if isinstance(value, numbers.Integral):
            if not -SAFE_INTEGER <= int(value) <= SAFE_INTEGER:
                out.bad(i, name, f"{show(value)} is beyond +-2^53; send it as a decimal number")
                return math.nan
            number = float(value)
        else:
            try:
                number = float(value)
            except (OverflowError, ValueError):
                number = math.nan
            if not math.isfinite(number):
                out.bad(i, name, f"must be a finite number, got {show(value)}")
                return math.nan
        lo, hi = spec.minimum, spec.maximum
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            if self._refuse_out_of_range:
                out.bad(
                    i,
                    name,
                    f"{show(value)} is outside the training range {_bound(lo)}..{_bound(hi)}",
                )
                return math.nan
            out.flag(i, OUT_OF_RANGE, name)
        return number

    def _category(self, spec: Feature, value: Any, i: int, out: _Problems) -> float:
        name = spec.name
        if isinstance(value, str):
            if len(value) > MAX_CATEGORY_CHARS:
                out.bad(
                    i, name, f"{show(value)} has {len(value)} characters; too long for a category"
                )
                return math.nan
            if not value.isascii():
                try:
                    value.encode()
                except UnicodeEncodeError:
                    out.bad(i, name, f"{show(value)} is not valid Unicode text")
                    return math.nan
        elif isinstance(value, numbers.Integral):  # booleans too (a category may be one)
            if not -SAFE_INTEGER <= int(value) <= SAFE_INTEGER:
                out.bad(i, name, f"{show(value)} is beyond +-2^53; no category is")
                return math.nan
        elif isinstance(value, numbers.Real):
            try:
                finite = math.isfinite(value)
            except (OverflowError, ValueError):
                finite = False
            if not finite:
                out.bad(i, name, f"must be a category, got {show(value)}")
                return math.nan
        else:
            out.bad(i, name, f"must be a category (a string), got {show(value)}")
            return math.nan
        code = spec.code(value)
        if code is None:
            if self._refuse_unseen:
                known = ", ".join(quote(c) for c in spec.categories[:8])
                more = ", ..." if len(spec.categories) > 8 else ""
                out.bad(
                    i,
                    name,
                    f"{show(value)} is not a category the model was trained on "
                    f"(its categories: {known}{more})",
                )
            else:
                out.flag(i, UNSEEN_CATEGORY, name)
            return math.nan
        return float(code)

    def _row(self, i: int, row: Any, x: npt.NDArray[np.float64], out: _Problems) -> None:
        """The general check of one row (any shape), into ``x[i]``."""
        if not isinstance(row, Mapping):
            out.bad(i, None, f"must be an object of feature values, got {show(row)}")
            x[i] = math.nan
            return
        for name in row:
            if name not in self._known:
                out.bad(i, field_name(name), "unknown field; the model takes only its features")
        for j, name in enumerate(self.features):
            value = row.get(name, _MISSING)
            if value is _MISSING:
                out.bad(i, name, "missing")
                x[i, j] = math.nan
            else:
                x[i, j] = self._value(j, value, i, out)

    # -- the fast checks ------------------------------------------------------------------
    def _fast_row(self, row: Any) -> list[Any] | None:
        """The row's model inputs in feature order if it is certainly valid, in range and
        known, else None (then the general check decides)."""
        if type(row) is not dict or row.keys() != self._known:
            return None
        values = list(self._values(row))
        try:
            for j, lookup in self._cat_lookups:
                values[j] = lookup[values[j]]
        except (KeyError, TypeError):
            return None
        nulls = None
        for j in self._nullable_numeric:
            if values[j] is None:
                values[j] = self._low[j]  # a stand-in inside the bounds, for the check
                nulls = [j] if nulls is None else [*nulls, j]
        checked = self._numeric_of(values)
        if not (
            _NUMBERS.issuperset(map(type, checked))
            and all(map(le, self._num_low, checked))
            and all(map(le, checked, self._num_high))
        ):
            return None
        if nulls is not None:
            for j in nulls:
                values[j] = math.nan
        return values

    def _column(
        self, j: int, column: Sequence[Any], rows: Sequence[int], out: _Problems
    ) -> npt.NDArray[np.float64]:
        """One feature of a batch of dict rows (``rows`` their positions), checked in bulk;
        only the values the bulk check cannot pass take the general check."""
        import numpy as np

        if self._categorical[j]:
            lookup = self._lookup[j]
            try:
                codes: list[Any] = list(map(lookup.get, column))
            except TypeError:  # an unhashable value (a list, an object)
                codes = [lookup.get(v) if isinstance(v, str) else None for v in column]
            if None in codes:
                for k, code in enumerate(codes):
                    if code is None:
                        codes[k] = self._value(j, column[k], rows[k], out)
            return np.array(codes, dtype=np.float64)
        spec = self._specs[j]
        allowed = _NUMBERS_OR_NULL if spec.nullable else _NUMBERS
        values = None
        if allowed.issuperset(map(type, column)):
            try:
                values = np.array(column, dtype=np.float64)  # None -> NaN
            except OverflowError:  # an integer beyond the float range
                values = None
        if values is None:
            return np.array(
                [self._value(j, v, rows[k], out) for k, v in enumerate(column)], dtype=np.float64
            )
        nan = np.isnan(values)
        check = np.flatnonzero(~((values >= self._low[j]) & (values <= self._high[j])) & ~nan)
        if nan.any():  # null (missing) or a NaN given as a number (refused)
            check = np.concatenate([check, np.flatnonzero(nan)])
        for k in check.tolist():
            if column[k] is not None:
                values[k] = self._value(j, column[k], rows[k], out)
        return values

    def _encode(self, rows: Sequence[Any], out: _Problems) -> npt.NDArray[np.float64]:
        import numpy as np

        n = len(rows)
        x = np.empty((n, len(self.features)), dtype=np.float64)
        known = self._known
        regular = [i for i, r in enumerate(rows) if type(r) is dict and r.keys() == known]
        if len(regular) < n:
            fine = set(regular)
            for i, row in enumerate(rows):
                if i not in fine:
                    self._row(i, row, x, out)
        if regular:
            subset = rows if len(regular) == n else [rows[i] for i in regular]
            columns = list(zip(*map(self._values, subset), strict=True))
            at = None if len(regular) == n else np.asarray(regular)
            for j, column in enumerate(columns):
                values = self._column(j, column, regular, out)
                if at is None:
                    x[:, j] = values
                else:
                    x[at, j] = values
        return x

    # -- scoring ------------------------------------------------------------------------
    def score(self, rows: Sequence[Any], *, where: str = "applicants") -> list[Result]:
        """Check and score every applicant on its own: :class:`Scored` or :class:`Refused`."""
        if len(rows) == 1 and self._single is not None:
            values = self._fast_row(rows[0])
            if values is not None:
                return [self._score_one(values, self._single, {})]
        if not rows:
            raise InputError(f"{where}: give at least one applicant")
        out = _Problems(where)
        x = self._encode(rows, out)
        return self._decide(x, out)

    def matrix(self, rows: Sequence[Any], *, where: str = "applicants") -> npt.NDArray[np.float64]:
        """The rows as model input (categories as codes, missing as NaN), all or nothing:
        an InputError names every bad field."""
        if not rows:
            raise InputError(f"{where}: give at least one applicant")
        out = _Problems(where)
        x = self._encode(rows, out)
        if out.rows:
            refused = [out.refused(i).error for i in sorted(out.rows)]
            raise InputError("; ".join(refused[:MAX_PROBLEMS]))
        return x

    def score_frame(self, frame: pd.DataFrame, *, where: str = "applicants") -> list[Result]:
        """Score a batch given as a DataFrame, one column per feature (the batch entry point).

        Columns must be exactly the model's features (else InputError). Each value is
        checked as a JSON row's is, with one difference: a missing cell (NaN, None, NA)
        is a missing value, allowed where training had missing values. A categorical
        feature may be text (CSV), dtype ``category`` (Parquet) or numbers equal to its
        categories; a numeric one must be numeric. Each row is answered on its own.
        """
        import numpy as np

        columns = [str(c) for c in frame.columns]
        problems = [
            f"{where}.{field_name(name)}: unknown field; the model takes only its features"
            for name in columns
            if name not in self._known
        ]
        problems += [f"{where}.{name}: missing" for name in self.features if name not in columns]
        if len(set(columns)) != len(columns):
            problems.append(f"{where}: a column name appears twice")
        if not problems and len(frame) == 0:
            problems.append(f"{where}: give at least one applicant")
        if problems:
            raise InputError("; ".join(problems[:MAX_PROBLEMS]))
        out = _Problems(where)
        x = np.empty((len(frame), len(self.features)), dtype=np.float64)
        labels = dict(zip(columns, frame.columns, strict=True))  # as given (not only str)
        for j, name in enumerate(self.features):
            x[:, j] = self._frame_column(j, frame[labels[name]], out)
        return self._decide(x, out)

    def _frame_column(
        self, j: int, series: pd.Series[Any], out: _Problems
    ) -> npt.NDArray[np.float64]:
        import numpy as np
        import pandas as pd

        spec = self._specs[j]
        present = series.notna().to_numpy()
        if spec.categorical:
            codes = np.array(self.contract.column(spec, series), dtype=np.float64)  # writable
            nan = np.isnan(codes)
            for k in np.flatnonzero(nan & ~present).tolist():
                if not spec.nullable:
                    out.bad(k, spec.name, _NULL_REFUSED)
            unseen = np.flatnonzero(nan & present).tolist()
            if unseen:
                given = series.iloc[unseen].astype(object).tolist()
                for k, value in zip(unseen, given, strict=True):
                    codes[k] = self._value(j, value, k, out)
            return codes
        dtype = series.dtype
        if (
            isinstance(dtype, pd.CategoricalDtype)
            or pd.api.types.is_bool_dtype(dtype)
            or not pd.api.types.is_numeric_dtype(dtype)
        ):
            cells = series.astype(object).tolist()
            return np.array(
                [
                    self._value(j, value if present[k] else None, k, out)
                    for k, value in enumerate(cells)
                ],
                dtype=np.float64,
            )
        values: npt.NDArray[np.float64] = series.to_numpy(
            dtype=np.float64, na_value=np.nan, copy=True
        )
        nan = np.isnan(values)
        if not spec.nullable:
            for k in np.flatnonzero(nan).tolist():
                out.bad(k, spec.name, _NULL_REFUSED)
        outside = ~((values >= self._low[j]) & (values <= self._high[j])) & ~nan
        for k in np.flatnonzero(outside).tolist():
            values[k] = self._value(j, float(values[k]), k, out)
        return values

    def _decide(self, x: npt.NDArray[np.float64], out: _Problems) -> list[Result]:
        n = len(x)
        ok = [i for i in range(n) if i not in out.rows]
        scored: list[Scored] = []
        if ok and n == 1 and self._single is not None:
            scored = [self._score_one(x[0].tolist(), self._single, out.flags.get(0, {}))]
        elif ok:
            scored = self._score_matrix(
                x if len(ok) == n else x[ok], [out.flags.get(i, {}) for i in ok]
            )
        results: list[Result] = []
        decided = iter(scored)
        for i in range(n):
            results.append(out.refused(i) if i in out.rows else next(decided))
        return results

    def probabilities(self, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        import numpy as np

        return np.asarray(self.booster.predict(x), dtype=np.float64)

    def _reason(self, j: int, contribution: float, value: float) -> Reason:
        name = self.features[j]
        if value != value:  # noqa: PLR0124 - NaN: scored as missing
            return Reason(name, self._default_text[j], contribution, None)
        if self._categorical[j]:
            code = int(value)
            return Reason(name, self._code_text[j][code], contribution, self._categories[j][code])
        return Reason(name, self._default_text[j], contribution, float(value))

    def reasons(self, x: npt.NDArray[np.float64]) -> list[list[Reason]]:
        """The principal reasons of every row (largest contribution towards default first)."""
        import numpy as np

        contrib = np.asarray(self.booster.predict(x, pred_contrib=True), dtype=np.float64)
        contrib = contrib[:, : len(self.features)]
        # Stable, as the reference ranking np.argsort(-row, kind="stable") of each row.
        order = np.argsort(-contrib, axis=1, kind="stable")[:, :MAX_REASONS]
        top = np.take_along_axis(contrib, order, axis=1)
        values = np.take_along_axis(x, order, axis=1)
        return [
            [self._reason(j, c, v) for j, c, v in zip(js, cs, vs, strict=True) if c > 0]
            for js, cs, vs in zip(order.tolist(), top.tolist(), values.tolist(), strict=True)
        ]

    def _score_one(
        self, values: list[Any], single: SingleRowPredictor, flags: dict[str, list[str]]
    ) -> Scored:
        p = single.probability(values)
        if p < self.cutoff:
            return Scored(p, "approve", [], dict(flags))
        contrib = single.contributions(values)
        n = len(self.features)
        order = sorted(range(n), key=lambda j: -contrib[j])  # stable, as np.argsort
        reasons = [
            self._reason(j, contrib[j], values[j]) for j in order[:MAX_REASONS] if contrib[j] > 0
        ]
        return Scored(p, "decline", reasons, dict(flags))

    def score_matrix(self, x: npt.NDArray[np.float64]) -> list[Scored]:
        """Score model input that :meth:`matrix` built (checked, encoded)."""
        return self._score_matrix(x, [{}] * len(x))

    def _score_matrix(
        self, x: npt.NDArray[np.float64], flags: Sequence[dict[str, list[str]]]
    ) -> list[Scored]:
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
                Scored(probability, "approve", [], dict(flags[i]))
                if why is None
                else Scored(probability, "decline", why, dict(flags[i]))
            )
        return out


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

    def _run(self, handle: Any, values: Sequence[Any], out: Any) -> None:
        row = self._row_type(*values)
        with self._lock:
            self._safe_call(
                self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                    handle, row, self._byref(self._out_len), out
                )
            )

    def probability(self, values: Sequence[Any]) -> float:
        out = self._one()
        self._run(self._handles[0], values, out)
        return float(out[0])

    def contributions(self, values: Sequence[Any]) -> list[float]:
        """One contribution per feature, then the expected value (as ``pred_contrib``)."""
        out = self._contrib_type()
        self._run(self._handles[1], values, out)
        return list(out)

    def __del__(self) -> None:
        for handle in getattr(self, "_handles", []):
            self._lib.LGBM_FastConfigFree(handle)
