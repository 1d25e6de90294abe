"""Checks on what a submitter hands in, before anything is recorded.

The artifact must be a well-formed LightGBM native text model (a data format;
pickles and code are never accepted; see :mod:`core.model_text`), which
LightGBM reads only in a child process (:mod:`registry.model_probe`);
datasets must be CSV or Parquet, non-empty, with a binary target and every
protected column, and able to feed the model (its data contract:
:mod:`validation.contract`).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import InputError, quote
from core.files import ImportedPath, read_beneath, read_file
from core.lgbm import import_lightgbm
from core.model_text import check_model_text, token
from registry.decoding import DecodeLimits, read_parquet
from registry.model_probe import probe_model

if TYPE_CHECKING:
    import pandas as pd

    from validation.contract import DataContract

LIGHTGBM_FORMAT = "lightgbm-text"
DEFAULT_LIMITS = DecodeLimits()
_PLAIN = re.compile(r"[A-Za-z0-9_.\- ]{1,40}")  # column names shown as they are


def read_input_file(path: Path | ImportedPath, what: str, *, max_bytes: int) -> bytes:
    """Read a user's file once, from one descriptor: a regular file within the size
    limit. A file named under the server's import folder is opened relative to
    that folder without following symbolic links (:mod:`core.files`)."""
    if isinstance(path, ImportedPath):
        return read_beneath(path, what, max_bytes=max_bytes)
    return read_file(path, what, max_bytes=max_bytes)


@dataclass(frozen=True)
class ModelInfo:
    format: str
    features: list[str]
    num_trees: int


def load_lightgbm_text(data: bytes, *, source: str) -> Any:
    """A LightGBM booster parsed in this process from ``data``, if it is a native text model.

    The serving loader's parse, of bytes whose SHA-256 is the approved digest
    (they passed :func:`inspect_artifact` at submission). The structural check
    of :mod:`core.model_text` runs again first: pickles, archives and any
    malformed text are refused before LightGBM sees a byte.
    """
    subject = f"artifact {source}"
    check_model_text(data, subject=subject)
    lgb = import_lightgbm()
    try:
        return lgb.Booster(model_str=data.decode("utf-8"))
    except lgb.basic.LightGBMError as exc:
        # LightGBM's message can quote the file; only a short escaped piece is kept.
        raise InputError(
            f"{subject} does not load as a LightGBM model (LightGBM says {token(str(exc), 80)})"
        ) from None


def inspect_artifact(data: bytes, *, source: str) -> ModelInfo:
    """The facts of an untrusted LightGBM text model; refuse anything else.

    The structural check runs here; LightGBM itself parses the bytes only in a
    child process (:mod:`registry.model_probe`), so no file can abort the caller.
    """
    subject = f"artifact {source}"
    text = check_model_text(data, subject=subject)
    probed = probe_model(data, subject=subject, expected=text)
    return ModelInfo(format=LIGHTGBM_FORMAT, features=probed.features, num_trees=probed.num_trees)


@dataclass(frozen=True)
class DatasetInfo:
    format: str
    rows: int
    columns: list[dict[str, str]]

    def public(self) -> dict[str, Any]:
        return {"format": self.format, "rows": self.rows, "columns": self.columns}


def dataset_format(path: Path | ImportedPath) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise InputError(f"dataset {path} must be .csv or .parquet, not '{suffix or 'no suffix'}'")


def load_frame(
    data: bytes, fmt: str, *, source: str, limits: DecodeLimits = DEFAULT_LIMITS
) -> pd.DataFrame:
    """The frame of a CSV or Parquet dataset. A Parquet file is decoded within
    ``limits`` (:mod:`registry.decoding`); a CSV file is never decompressed, so the
    upload limit bounds it. A parser's message is quoted short: it may carry the
    file's text, so a CSV error names its line instead."""
    import pandas as pd

    if fmt == "parquet":
        try:
            return read_parquet(data, source=source, limits=limits)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(_unreadable(source, fmt, exc)) from exc
    try:
        return pd.read_csv(io.BytesIO(data), compression=None)
    except Exception as exc:
        raise InputError(_unreadable(source, fmt, exc)) from exc


_LINE = re.compile(r"\b(?:line|row) (\d+)")


def _unreadable(source: str, fmt: str, exc: Exception) -> str:
    """Why a dataset does not parse, without the parser's quote of the file: the line
    number if the parser named one, else the error's kind and a short escaped excerpt."""
    message = str(exc)
    line = _LINE.search(message)
    if fmt == "csv" and line:
        return (
            f"dataset {source} cannot be read as csv: line {line.group(1)} does not parse "
            f"({type(exc).__name__}); check that line's fields and quotes"
        )
    return f"dataset {source} cannot be read as {fmt} ({type(exc).__name__}: {quote(message, 80)})"


def describe_frame(frame: pd.DataFrame, fmt: str) -> DatasetInfo:
    columns = [{"name": str(c), "dtype": str(frame[c].dtype)} for c in frame.columns]
    return DatasetInfo(format=fmt, rows=len(frame), columns=columns)


def _column(name: object) -> str:
    """A column name for a message: as it is if plain, else escaped and cut short."""
    text = str(name)
    return text if _PLAIN.fullmatch(text) else quote(text)


def check_dataset(
    frame: pd.DataFrame,
    *,
    source: str,
    target: str,
    protected: list[str],
) -> None:
    """The submission contract for one dataset."""
    if len(frame) == 0:
        raise InputError(f"dataset {source} has no rows")
    if target not in frame.columns:
        raise InputError(
            f"dataset {source} has no target column '{target}'; pass --target with one of "
            f"{', '.join(map(_column, frame.columns[:12]))}"
        )
    labels = frame[target]
    values = set(labels.dropna().unique().tolist())
    if labels.isna().any() or not values <= {0, 1} or len(values) != 2:
        # a few short escaped values only: the file may be anything (even a key)
        found = sorted(map(str, values))
        shown = ", ".join(quote(v, 8) for v in found[:3])
        more = f" and {len(found) - 3} more" if len(found) > 3 else ""
        raise InputError(
            f"target column '{target}' in {source} is not binary: it must hold 0 and 1 "
            f"only, both present, no missing values (found [{shown}]{more})"
        )
    for column in protected:
        if column not in frame.columns:
            raise InputError(
                f"dataset {source} has no protected column '{column}'; fix --protected"
            )


def data_contract(artifact: bytes, train: pd.DataFrame, *, source: str) -> DataContract:
    """The data contract of a (checked) model and its training data; see
    :mod:`validation.contract`. Data that cannot feed the model is refused."""
    from validation.contract import derive

    return derive(artifact.decode("utf-8"), train, source=source)


def check_reason_texts(texts: Any, contract: DataContract) -> dict[str, Any]:
    """The reason texts in recorded form, checked against the model's features."""
    from validation import reasons

    return reasons.check(reasons.normalise(texts), contract)


MAX_LINEAGE_BYTES = 16 * 1024


def check_lineage(lineage: Any) -> dict[str, Any]:
    """Lineage a submitter supplies (a training pipeline, a source commit), before it
    is recorded: a JSON object of at most MAX_LINEAGE_BYTES canonical bytes, with no
    floats (the ledger's JSON has none) and without ``mlflow``, which govreg records
    itself from the MLflow run it reads (a submitter's copy would claim a run no one
    checked)."""
    from core.canonical import canonical_bytes

    if lineage is None:
        return {}
    if not isinstance(lineage, dict):
        raise InputError('lineage must be a JSON object, e.g. {"source_commit": "3f2a..."}')
    if "mlflow" in lineage:
        raise InputError(
            "lineage must not name 'mlflow': govreg records the MLflow run itself when the "
            "model is submitted as a runs:/ or models:/ URI"
        )
    try:
        size = len(canonical_bytes(lineage))
    except RecursionError:
        raise InputError("lineage is nested too deeply to be recorded") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"lineage is not JSON data without floats: {exc}") from None
    if size > MAX_LINEAGE_BYTES:
        raise InputError(f"lineage is {size} bytes as JSON; at most {MAX_LINEAGE_BYTES} are kept")
    return dict(lineage)


def check_schema_suite(suite: Any) -> None:
    """A supplied great-expectations suite, in its JSON form, before it is recorded."""
    if not isinstance(suite, dict):
        raise InputError("the expectation suite must be a JSON object with 'expectations'")
    expectations = suite.get("expectations")
    if not isinstance(expectations, list) or not expectations:
        raise InputError(
            "the expectation suite has no 'expectations' list; an empty suite proves nothing"
        )
    for number, item in enumerate(expectations, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise InputError(
                f"expectation {number} of the suite has no 'type' "
                "(e.g. expect_column_values_to_not_be_null)"
            )
        if not isinstance(item.get("kwargs", {}), dict):
            raise InputError(f"expectation {number} of the suite: 'kwargs' must be an object")


def read_suite(path: Path) -> Any:
    """The great-expectations suite in the JSON file ``path`` (``--expectations``);
    :func:`check_schema_suite` checks its shape."""
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"expectation suite {path} is not readable JSON: {exc}") from exc


def read_reasons(path: Path) -> dict[str, Any]:
    """The YAML or JSON file ``path`` mapping each feature to its adverse-action
    reason text (``--reasons``), as the ``reason_texts`` of a submission."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"reasons file {path} is unreadable: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise InputError(f"reasons file {path} must map feature names to reason texts")
    # A categorical feature's {default, categories} stays a mapping (the registry checks it).
    return {str(k): v if isinstance(v, dict) else str(v) for k, v in data.items()}
