"""The data contract: what each model feature is and what the model was trained on.

One record per model feature, in the model's order, recorded with the
submission (``version.submitted`` data ``contract``) and read by the gates
and by serving:

- ``kind``: ``numeric`` or ``categorical``. A feature is categorical when the
  LightGBM text model says so (``[categorical_feature: ...]`` in its
  parameters, else a ``feature_infos`` entry that is a category list rather
  than a ``[min:max]`` range); its categories are the model's own
  ``pandas_categorical`` list, in code order. A categorical model feature
  without category names (trained on integer codes) is refused: govreg could
  not tell what a code means.
- ``null_rate``: the training data's share of missing values;
- ``minimum`` / ``maximum``: the training range of a numeric feature.

Values map to the model's inputs exactly as LightGBM's pandas path does
(``lightgbm.basic._data_from_pandas``): a numeric value as a float, a
category as its code (its position in the model's list), a missing value,
or a category the model never saw, as NaN. Category values match by a
normalised text key, so a CSV's ``"2"`` and a Parquet ``2`` are the same
category ``2``; whole-number floats match integers (``2.0`` is ``2``).

Numbers in the canonical form are exact decimal strings (``repr`` of the
float), never floats, so the record hashes the same everywhere.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from core.errors import InputError
from core.errors import quote as errors_quote

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

Kind = Literal["numeric", "categorical"]
Category = str | int | bool
MAX_CATEGORIES = 10_000
_QUOTE_LIMIT = 40


def quote(value: Any) -> str:
    """A value for an error message: a number as it is, a text escaped, quoted and cut
    to a few dozen characters (:func:`core.errors.quote`)."""
    if isinstance(value, int | float) and len(repr(value)) <= _QUOTE_LIMIT:
        return repr(value)
    return errors_quote(value, _QUOTE_LIMIT)


def category_key(value: Any) -> str:
    """The text a category value matches by: ``2``, ``2.0`` and ``"2"`` all give ``"2"``."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return value
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return category_key(value.item())
    return str(value)


def exact(value: float) -> str:
    """A float as an exact decimal string (round-trips through ``float``)."""
    return format(Decimal(repr(float(value))), "f")


@dataclass(frozen=True)
class ModelFeature:
    """A feature as the model text declares it."""

    name: str
    kind: Kind
    categories: tuple[Category, ...] = ()


def _model_lines(model_text: str) -> tuple[dict[str, str], list[str], str | None]:
    header: dict[str, str] = {}
    params: list[str] = []
    pandas_categorical: str | None = None
    in_header = True
    for line in model_text.splitlines():
        if in_header:
            if line.startswith("Tree=") or line == "end of trees":
                in_header = False
            elif "=" in line:
                key, _, value = line.partition("=")
                header[key] = value
        if line.startswith("[categorical_feature:"):
            params.append(line)
        elif line.startswith("pandas_categorical:"):
            pandas_categorical = line[len("pandas_categorical:") :]
    return header, params, pandas_categorical


def model_features(model_text: str, *, source: str = "the model") -> list[ModelFeature]:
    """The model's features, numeric or categorical with the model's own categories."""
    header, params, pandas_categorical = _model_lines(model_text)
    names = header.get("feature_names", "").split(" ") if header.get("feature_names") else []
    if not names:
        raise InputError(f"{source} names no features (no feature_names line)")
    infos = header.get("feature_infos", "").split(" ")
    indices: list[int] | None = None
    if params:
        text = params[-1][len("[categorical_feature:") :].rstrip("]").strip()
        try:
            indices = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            indices = None
    if indices is None:
        indices = [
            j
            for j, info in enumerate(infos)
            if j < len(names) and info not in ("none", "") and not info.startswith("[")
        ]
    if any(not 0 <= j < len(names) for j in indices):
        raise InputError(f"{source} declares a categorical feature index outside its features")
    indices = sorted(set(indices))
    lists: list[Any] = []
    if pandas_categorical is not None:
        try:
            decoded = json.loads(pandas_categorical)
        except ValueError as exc:
            raise InputError(f"{source} has an unreadable pandas_categorical line") from exc
        if decoded is not None:
            if not isinstance(decoded, list) or not all(isinstance(c, list) for c in decoded):
                raise InputError(f"{source} has a malformed pandas_categorical line")
            lists = decoded
    if indices and len(lists) != len(indices):
        first = names[indices[0]]
        raise InputError(
            f"feature '{first}' is categorical in {source}, but the model carries no category "
            "names for it; train on a pandas DataFrame with the column as dtype 'category' "
            "so the model records its categories"
        )
    categories = dict(zip(indices, lists, strict=False))
    out = []
    for j, name in enumerate(names):
        if j in categories:
            cats = categories[j]
            if len(cats) > MAX_CATEGORIES:
                raise InputError(
                    f"feature '{name}' has {len(cats)} categories; at most {MAX_CATEGORIES}"
                )
            for value in cats:
                if not isinstance(value, str | int | float | bool) or (
                    isinstance(value, float) and not math.isfinite(value)
                ):
                    raise InputError(f"feature '{name}' has a category that is not a value")
            keys = [category_key(v) for v in cats]
            if len(set(keys)) != len(keys):
                raise InputError(f"feature '{name}' has two categories with the same value")
            out.append(
                ModelFeature(
                    name,
                    "categorical",
                    tuple(
                        category_key(v) if isinstance(v, float) else v  # floats kept as text
                        for v in cats
                    ),
                )
            )
        else:
            out.append(ModelFeature(name, "numeric"))
    return out


@dataclass(frozen=True)
class Feature:
    """One model feature of the contract."""

    name: str
    kind: Kind
    null_rate: float
    categories: tuple[Category, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    _codes: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        codes = {category_key(c): i for i, c in enumerate(self.categories)}
        object.__setattr__(self, "_codes", codes)

    @property
    def nullable(self) -> bool:
        """Missing values are allowed where training had them."""
        return self.null_rate > 0

    @property
    def categorical(self) -> bool:
        return self.kind == "categorical"

    def code(self, value: Any) -> int | None:
        """The model's code for a category value, or None for a category it never saw."""
        return self._codes.get(category_key(value))

    def canonical(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "null_rate": exact(self.null_rate),
        }
        if self.categorical:
            data["categories"] = list(self.categories)
        else:
            data["minimum"] = None if self.minimum is None else exact(self.minimum)
            data["maximum"] = None if self.maximum is None else exact(self.maximum)
        return data


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(Decimal(str(value)))
    except (ArithmeticError, ValueError) as exc:
        raise InputError(f"the data contract's {what} is not a number") from exc
    if not math.isfinite(number):
        raise InputError(f"the data contract's {what} is not finite")
    return number


@dataclass(frozen=True)
class DataContract:
    """The model's features in order, each with its kind, categories, null rate and range."""

    features: tuple[Feature, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def __getitem__(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    @property
    def categorical(self) -> list[Feature]:
        return [f for f in self.features if f.categorical]

    def canonical(self) -> dict[str, Any]:
        return {"features": [f.canonical() for f in self.features]}

    @classmethod
    def from_canonical(cls, data: Any) -> DataContract:
        """The contract recorded with a submission; a malformed record is an InputError."""
        if not isinstance(data, Mapping) or not isinstance(data.get("features"), list):
            raise InputError("the data contract has no 'features' list")
        features = []
        for item in data["features"]:
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
                raise InputError("a data contract feature has no name")
            name, kind = item["name"], item.get("kind")
            if kind not in ("numeric", "categorical"):
                raise InputError(f"data contract feature '{name}' has an unknown kind")
            null_rate = _number(item.get("null_rate", "0"), f"null rate of '{name}'") or 0.0
            if kind == "categorical":
                cats = item.get("categories")
                if not isinstance(cats, list) or not all(
                    isinstance(c, str | int | bool) for c in cats
                ):
                    raise InputError(f"data contract feature '{name}' has no category list")
                features.append(Feature(name, "categorical", null_rate, tuple(cats)))
            else:
                features.append(
                    Feature(
                        name,
                        "numeric",
                        null_rate,
                        minimum=_number(item.get("minimum"), f"minimum of '{name}'"),
                        maximum=_number(item.get("maximum"), f"maximum of '{name}'"),
                    )
                )
        return cls(tuple(features))

    @classmethod
    def numeric_only(
        cls, names: Sequence[str], bounds: Mapping[str, tuple[float | None, float | None]]
    ) -> DataContract:
        """A contract for a version submitted before contracts were recorded."""
        features = []
        for name in names:
            lo, hi = bounds.get(name, (None, None))
            features.append(Feature(name, "numeric", 0.0, minimum=lo, maximum=hi))
        return cls(tuple(features))

    # -- frames ------------------------------------------------------------------
    def check_frame(self, frame: pd.DataFrame, *, source: str) -> None:
        """Refuse a frame that cannot feed the model: name the column, the first bad value
        and what was expected. Categories the model never saw are left to the gates."""
        import pandas as pd

        missing = [f.name for f in self.features if f.name not in frame.columns]
        if missing:
            raise InputError(
                f"dataset {source} lacks the model's features {', '.join(missing[:8])}"
                + renamed_hint(missing, [str(c) for c in frame.columns])
            )
        for feature in self.features:
            series = frame[feature.name]
            if feature.categorical:
                continue
            if isinstance(series.dtype, pd.CategoricalDtype) or not (
                pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)
            ):
                bad = _first_non_number(series)
                if bad is not None:
                    row, value = bad
                    raise InputError(
                        f"column '{feature.name}' of {source} must be numeric (the model "
                        f"treats it as a number), but row {row} holds {quote(value)}; "
                        "write a number, or leave the cell empty for a missing value"
                    )

    def encode(self, frame: pd.DataFrame, *, where: str = "data") -> npt.NDArray[np.float64]:
        """The frame's model features as LightGBM's pandas path feeds them (float64).

        Numeric columns as floats, categories as the model's codes, missing
        values and unseen categories as NaN. Call :meth:`check_frame` first.
        """
        import numpy as np

        x = np.empty((len(frame), len(self.features)), dtype=np.float64)
        for j, feature in enumerate(self.features):
            if feature.name not in frame.columns:
                raise InputError(f"the {where} lacks model feature column '{feature.name}'")
            x[:, j] = self.column(feature, frame[feature.name], where=where)
        return x

    def column(
        self, feature: Feature, series: pd.Series[Any], *, where: str = "data"
    ) -> npt.NDArray[np.float64]:
        """One column as model input (see :meth:`encode`)."""
        import numpy as np
        import pandas as pd

        if feature.categorical:
            return _category_codes(feature, series)
        if isinstance(series.dtype, pd.CategoricalDtype):
            series = series.astype(object)
        if pd.api.types.is_bool_dtype(series):
            as_bool: npt.NDArray[np.float64] = series.to_numpy(dtype=np.float64, na_value=np.nan)
            return as_bool
        if not pd.api.types.is_numeric_dtype(series):
            numbers = pd.to_numeric(series, errors="coerce")
            bad = _first_non_number(series)
            if bad is not None:
                raise InputError(
                    f"column '{feature.name}' of the {where} must be numeric, but row {bad[0]} "
                    f"holds {quote(bad[1])}"
                )
            series = numbers
        values: npt.NDArray[np.float64] = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return values

    def unseen(self, frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
        """Per categorical feature: how many rows hold a category the model never saw,
        and the first few such values (features without any are left out)."""
        out: dict[str, dict[str, Any]] = {}
        for feature in self.categorical:
            found = unseen_categories(feature, frame[feature.name])
            if found["rows"]:
                out[feature.name] = found
        return out


def unseen_categories(feature: Feature, series: pd.Series[Any]) -> dict[str, Any]:
    """How many present values of ``series`` are categories ``feature`` does not know."""
    import numpy as np

    found = _distinct(series)
    if found is None:
        values = series[series.notna()].astype(object)
        mask = values.map(lambda v: feature.code(v) is None).astype(bool)
        return {
            "rows": int(mask.sum()),
            "examples": sorted({str(v) for v in values[mask].tolist()})[:5],
        }
    positions, distinct = found
    counts = np.bincount(positions[positions >= 0], minlength=len(distinct))
    unknown = [i for i, v in enumerate(distinct) if counts[i] and feature.code(v) is None]
    if not unknown:
        return {"rows": 0, "examples": []}
    # examples as the rows hold them (-0.0 and 0.0 are one distinct value, two texts)
    held = series.astype(object).to_numpy()[np.isin(positions, unknown)]
    return {"rows": int(held.size), "examples": sorted({str(v) for v in held})[:5]}


# Column types whose distinct values pandas tells apart exactly as category_key does
# (in a mixed column True and 1 hash alike, but are the categories "True" and "1").
_HOMOGENEOUS = frozenset({"string", "integer", "floating", "boolean", "empty"})


def _distinct(series: pd.Series[Any]) -> tuple[npt.NDArray[np.intp], list[Any]] | None:
    """``(positions, distinct values)``: each row's position among the column's distinct
    values (-1 where missing), so that each value is mapped once; None for a mixed column."""
    import numpy as np
    import pandas as pd

    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = np.asarray(series.cat.codes.to_numpy(), dtype=np.intp)
        return codes, list(series.cat.categories)
    if pd.api.types.infer_dtype(series, skipna=True) not in _HOMOGENEOUS:
        return None
    positions, distinct = pd.factorize(series, use_na_sentinel=True)
    return np.asarray(positions, dtype=np.intp), list(distinct)


def _category_codes(feature: Feature, series: pd.Series[Any]) -> npt.NDArray[np.float64]:
    import numpy as np

    found = _distinct(series)
    if found is None:
        keys = series.map(lambda v: None if _is_missing(v) else feature.code(v))
        codes: npt.NDArray[np.float64] = keys.to_numpy(dtype=np.float64, na_value=np.nan)
        return codes
    # Map each distinct value once, then the rows' positions (missing: the last, NaN).
    positions, distinct = found
    table = np.array(
        [np.nan if (c := feature.code(v)) is None else float(c) for v in distinct] + [np.nan],
        dtype=np.float64,
    )
    mapped: npt.NDArray[np.float64] = table[np.where(positions < 0, len(distinct), positions)]
    return mapped


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # noqa: PLR0124 - NaN and pandas NA differ from themselves
    except (TypeError, ValueError):
        return False


def _first_non_number(series: pd.Series[Any]) -> tuple[int, Any] | None:
    """The first (row, value) that is present but not a number, else None."""
    import pandas as pd

    present = series[series.notna()]
    if isinstance(series.dtype, pd.CategoricalDtype):
        present = present.astype(object)
    numbers = pd.to_numeric(present, errors="coerce")
    bad = numbers.isna()
    # Booleans given as text or Python bools are not numbers either.
    bad |= present.map(lambda v: isinstance(v, bool) or (isinstance(v, str) and not v.strip()))
    if not bad.any():
        return None
    position = int(bad.to_numpy().nonzero()[0][0])
    index = present.index[position]
    row = int(series.index.get_loc(index)) + 1
    return row, present.iloc[position]


def lightgbm_name(column: str) -> str:
    """The name LightGBM gives a training column (it replaces spaces with '_')."""
    return column.replace(" ", "_")


def renamed_hint(missing: Sequence[str], columns: Sequence[str]) -> str:
    """Where a missing feature is a column LightGBM renamed, say so and how to fix it."""
    renamed = {lightgbm_name(c): c for c in columns if lightgbm_name(c) != c}
    hints = [f"'{renamed[m]}' -> '{m}'" for m in missing if m in renamed]
    if not hints:
        return ""
    return (
        "; LightGBM renamed columns when the model was trained ("
        + ", ".join(hints[:4])
        + "): rename them so in your data, or train on names without spaces"
    )


def derive(model_text: str, train: pd.DataFrame, *, source: str) -> DataContract:
    """The contract of a model and its training data; refuses data that cannot feed it."""
    import numpy as np

    declared = model_features(model_text, source="the model")
    numeric = DataContract(tuple(Feature(f.name, f.kind, 0.0, f.categories) for f in declared))
    numeric.check_frame(train, source=source)
    features = []
    for feature in numeric.features:
        series = train[feature.name]
        null_rate = float(series.isna().mean()) if len(series) else 0.0
        if feature.categorical:
            info = unseen_categories(feature, series)
            if info["rows"]:
                raise InputError(
                    f"column '{feature.name}' of {source} holds {info['rows']} rows with "
                    f"categories the model does not know (e.g. {quote(info['examples'][0])}); "
                    f"the model's categories are {_list(feature.categories)}: was it "
                    "trained on this data?"
                )
            features.append(Feature(feature.name, "categorical", null_rate, feature.categories))
            continue
        values = numeric.column(feature, series, where=source)
        finite = values[~np.isnan(values)]
        if np.isinf(finite).any():
            raise InputError(f"column '{feature.name}' of {source} holds an infinite value")
        if finite.size == 0:
            raise InputError(f"column '{feature.name}' of {source} has no values at all")
        features.append(
            Feature(
                feature.name,
                "numeric",
                null_rate,
                minimum=float(finite.min()),
                maximum=float(finite.max()),
            )
        )
    return DataContract(tuple(features))


def _list(values: Sequence[Any]) -> str:
    shown = ", ".join(quote(v) for v in values[:8])
    return f"[{shown}{', ...' if len(values) > 8 else ''}]"
