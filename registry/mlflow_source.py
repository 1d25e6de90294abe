"""MLflow as a source of candidate artifacts: ``runs:/`` and ``models:/`` URIs.

govreg downloads the artifact folder from the tracking server into a
temporary folder and takes out one file only: the LightGBM native text model.
The ``MLmodel`` file is read as YAML data to find it; pyfunc code is never
imported and pickles are never loaded. The run's parameters, metrics, source
commit and the registered model's name and version become the version's
lineage.

mlflow is imported inside the functions that need it (fast start-up), and
its errors are translated here, at the boundary:

    RESOURCE_DOES_NOT_EXIST (run, model, version, path)  -> NotFoundError
    a malformed URI or an artifact without a text model   -> InputError
    no tracking URI, an unreachable or failing server     -> ConfigError
"""

from __future__ import annotations

import posixpath
import re
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError, GovregError, InputError, NotFoundError

if TYPE_CHECKING:
    from mlflow import MlflowClient

SCHEMES = ("runs:/", "models:/")
MLMODEL = "MLmodel"
LIGHTGBM_BOOSTER = "lightgbm.basic.Booster"
_TEXT_MODEL_START = b"tree\n"
_MODELS_RE = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)/?$")
_RUNS_RE = re.compile(r"^runs:/(?P<run_id>[A-Za-z0-9_\-]+)/(?P<path>[^?#]+?)/?$")


def is_mlflow_uri(value: object) -> bool:
    """True for ``runs:/...`` and ``models:/...`` (the sources this module reads)."""
    return isinstance(value, str) and value.startswith(SCHEMES)


def public_uri(uri: str) -> str:
    """A tracking URI without any user name or password in it (safe to record)."""
    parts = urllib.parse.urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


@dataclass(frozen=True)
class FetchedModel:
    """The LightGBM text model taken out of an MLflow artifact, and where it came from."""

    data: bytes
    source: str
    lineage: dict[str, Any]


def client_for(tracking_uri: str | None) -> MlflowClient:
    """An MLflow client for this tracking URI (also used as the registry URI)."""
    if not tracking_uri:
        raise ConfigError(
            "no MLflow tracking URI is configured: set GOVREG_MLFLOW_TRACKING_URI "
            "(or MLFLOW_TRACKING_URI)"
        )
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def translate(exc: Exception, *, what: str, tracking_uri: str) -> GovregError:
    """An mlflow (or transport) error as govreg's own error type."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        message = str(exc.message).splitlines()[0] if exc.message else type(exc).__name__
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return NotFoundError(f"{what}: {message} (MLflow at {public_uri(tracking_uri)})")
        if exc.error_code == "INVALID_PARAMETER_VALUE":
            return InputError(f"{what}: {message}")
        return ConfigError(f"{what}: MLflow at {public_uri(tracking_uri)} failed: {message}")
    return ConfigError(
        f"{what}: MLflow at {public_uri(tracking_uri)} cannot be used: {type(exc).__name__}: {exc}"
    )


def fetch_model(uri: str, *, tracking_uri: str | None, max_bytes: int) -> FetchedModel:
    """Download ``uri`` (``runs:/<run_id>/<path>`` or ``models:/<name>/<version>``) and
    return its LightGBM native text model with the lineage to record.

    Refuses (without loading anything) an artifact whose only model is a pickle
    or code, naming what it found.
    """
    # 1. the URI names a run path or a registered model version
    runs = _RUNS_RE.match(uri)
    models = _MODELS_RE.match(uri)
    if not runs and not models:
        raise InputError(
            f"MLflow URI {uri!r} is not supported: use runs:/<run_id>/<artifact path> "
            "or models:/<registered model name>/<version number>"
        )
    client = client_for(tracking_uri)
    assert tracking_uri is not None  # client_for refused a missing one
    try:
        # 2. the run (and the registered model version) it comes from, and the
        # storage location of the artifact. The location is resolved here with
        # this client: MLflow 3.17 resolves runs:/ and models:/ URIs of logged
        # models through the process-wide tracking URI, not the one passed in.
        registered: dict[str, str] | None = None
        if models:
            name, number = models["name"], models["version"]
            what = f"registered model {name!r}"
            client.get_registered_model(name)
            what = f"registered model {name!r} version {number}"
            version = client.get_model_version(name, number)
            registered = {"name": name, "version": str(version.version)}
            run_id = version.run_id or None
            logged_model_id = getattr(version, "model_id", None) or None
            location = str(client.get_model_version_download_uri(name, number))
            run = client.get_run(run_id) if run_id else None
            if run is not None and not logged_model_id:
                logged_model_id = _logged_model_at(client, run, location)
        else:
            assert runs is not None
            what = f"run {runs['run_id']}"
            run = client.get_run(runs["run_id"])
            first, _, rest = runs["path"].partition("/")
            logged_model_id = _logged_model_id(client, run, first)
            if logged_model_id:
                base = str(client.get_logged_model(logged_model_id).artifact_location)
                location = f"{base.rstrip('/')}/{rest}" if rest else base
            else:
                location = f"{str(run.info.artifact_uri).rstrip('/')}/{runs['path']}"
            if not logged_model_id or rest:  # a logged model's own root always exists
                _require_path(location, uri=uri, tracking_uri=tracking_uri)
        # 3. the artifact folder, downloaded into a temporary folder
        what = uri
        with tempfile.TemporaryDirectory(prefix="govreg-mlflow-") as tmp:
            from mlflow.artifacts import download_artifacts

            try:
                local = Path(
                    download_artifacts(
                        artifact_uri=location, dst_path=tmp, tracking_uri=tracking_uri
                    )
                )
            except OSError as exc:
                raise NotFoundError(
                    f"{uri}: no such artifact path in MLflow ({type(exc).__name__}: {exc})"
                ) from exc
            # 4. only the LightGBM native text model is taken out of it
            found = _text_model(local, uri=uri)
            size = found.stat().st_size
            if size > max_bytes:
                raise InputError(
                    f"the model file in {uri} is {size} bytes, over the {max_bytes}-byte limit"
                )
            data = found.read_bytes()
            model_file = found.relative_to(local).as_posix() if local.is_dir() else found.name
    except GovregError:
        raise
    except Exception as exc:  # mlflow and transport errors, translated
        raise translate(exc, what=what, tracking_uri=tracking_uri) from exc
    lineage: dict[str, Any] = {
        "source_uri": uri,
        "tracking_uri": public_uri(tracking_uri),
        "registered_model": registered,
        "logged_model_id": logged_model_id,
        "model_file": model_file,
        "run_id": run.info.run_id if run else None,
        "experiment_id": run.info.experiment_id if run else None,
        # parameters are strings in MLflow; metrics are written as decimal strings
        # (floats never enter hashed data)
        "params": dict(sorted(run.data.params.items())) if run else {},
        "metrics": {k: repr(float(v)) for k, v in sorted(run.data.metrics.items())} if run else {},
        "source_commit": run.data.tags.get("mlflow.source.git.commit") if run else None,
    }
    return FetchedModel(data=data, source=uri, lineage=lineage)


def _logged_model_at(client: MlflowClient, run: Any, location: str) -> str | None:
    """The logged model of ``run`` stored at ``location`` (a registered version made
    from it may not name it: MLflow 3.17's SQL store leaves ``model_id`` empty)."""
    for model in client.search_logged_models(experiment_ids=[run.info.experiment_id]):
        if model.source_run_id == run.info.run_id and str(model.artifact_location).rstrip(
            "/"
        ) == location.rstrip("/"):
            return str(model.model_id)
    return None


def _require_path(location: str, *, uri: str, tracking_uri: str) -> None:
    """Refuse a run path that holds no artifact, naming what the folder does hold."""
    from mlflow.artifacts import list_artifacts

    parent, _, leaf = location.rstrip("/").rpartition("/")
    listed = sorted(
        posixpath.basename(f.path) for f in list_artifacts(parent, tracking_uri=tracking_uri)
    )
    if leaf not in listed:
        raise NotFoundError(
            f"{uri}: the run has no artifact at that path "
            f"(next to it: {', '.join(listed[:12]) or 'nothing'})"
        )


def _logged_model_id(client: MlflowClient, run: Any, path: str) -> str | None:
    """The MLflow 3 logged model named ``path`` that ``run`` produced, if any."""
    name = path.split("/", 1)[0]
    for model in client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"name = '{name}'"
    ):
        if model.source_run_id == run.info.run_id:
            return str(model.model_id)
    return None


def _text_model(local: Path, *, uri: str) -> Path:
    """The one LightGBM native text model file in a downloaded artifact."""
    if local.is_file():
        if _starts_as_text_model(local):
            return local
        raise InputError(
            f"artifact {uri} is the file {local.name}, which is not a LightGBM native text "
            "model; govreg accepts only booster.save_model(...) text files"
        )
    mlmodel = local / MLMODEL
    if mlmodel.is_file():
        return _from_mlmodel(local, mlmodel, uri=uri)
    files = sorted(p for p in local.rglob("*") if p.is_file() and not p.is_symlink())
    candidates = [p for p in files if _starts_as_text_model(p)]
    if len(candidates) == 1:
        return candidates[0]
    names = [p.relative_to(local).as_posix() for p in files]
    if not candidates:
        raise InputError(
            f"artifact {uri} has no MLmodel file and no LightGBM native text model "
            f"(found: {', '.join(names[:12]) or 'nothing'})"
        )
    raise InputError(
        f"artifact {uri} holds several LightGBM text models "
        f"({', '.join(p.relative_to(local).as_posix() for p in candidates[:6])}); "
        "point the URI at one of them"
    )


def _from_mlmodel(folder: Path, mlmodel: Path, *, uri: str) -> Path:
    """Read MLmodel as data: the ``lightgbm`` flavor's ``data`` file, when it is a Booster."""
    import yaml

    try:
        spec = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"the MLmodel file of {uri} is not readable YAML: {exc}") from exc
    flavors = spec.get("flavors") if isinstance(spec, dict) else None
    if not isinstance(flavors, dict) or not flavors:
        raise InputError(f"the MLmodel file of {uri} lists no flavors")
    lgb = flavors.get("lightgbm")
    if isinstance(lgb, dict):
        model_class = str(lgb.get("model_class", LIGHTGBM_BOOSTER))
        data = lgb.get("data")
        if model_class == LIGHTGBM_BOOSTER and isinstance(data, str):
            path = _inside(folder, data, uri=uri)
            if _starts_as_text_model(path):
                return path
        raise InputError(
            f"artifact {uri} has a lightgbm flavor holding {model_class} in {data!r} "
            f"(serialization {lgb.get('serialization_format', 'unknown')}), not a native "
            "text model; govreg never loads pickles: log the Booster instead, "
            "mlflow.lightgbm.log_model(model.booster_, ...)"
        )
    found = ", ".join(f"{name} ({_describe(conf)})" for name, conf in sorted(flavors.items()))
    raise InputError(
        f"artifact {uri} has no LightGBM native text model: its MLmodel lists the flavors "
        f"{found}; govreg never loads pickles or pyfunc code: log a LightGBM Booster with "
        "mlflow.lightgbm.log_model(booster, ...)"
    )


def _describe(conf: object) -> str:
    if not isinstance(conf, dict):
        return "no details"
    keys = ("loader_module", "pickled_model", "data", "model_class", "serialization_format")
    shown = [f"{k} {conf[k]}" for k in keys if isinstance(conf.get(k), str)]
    return ", ".join(shown) or "no details"


def _inside(folder: Path, relative: str, *, uri: str) -> Path:
    named = folder / relative
    path = named.resolve()
    if named.is_symlink() or not path.is_relative_to(folder.resolve()) or not path.is_file():
        raise InputError(
            f"the MLmodel file of {uri} names the model file {relative!r}, which is not a "
            "file inside the artifact"
        )
    return path


def _starts_as_text_model(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(len(_TEXT_MODEL_START)) == _TEXT_MODEL_START
