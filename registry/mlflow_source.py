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

Where the artifact is fetched from is bounded (:class:`ArtifactRules`): the
URI's artifact path must stay inside the run's artifacts (checked before any
MLflow call), the resolved storage location must lie under the run's
``artifact_uri`` (or the logged model's ``artifact_location``), its scheme must
be one the operator allows, an ``http(s):`` or ``mlflow-artifacts:`` location
must be on the tracking server itself (MLflow sends its credentials with every
request to such a location), and a ``file:`` location must resolve inside the
artifact root and never reach govreg's keys, anchors or blob store. No text
made here carries a ``user:password@`` from a URI (:func:`redact`).
"""

from __future__ import annotations

import os
import posixpath
import re
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError, GovregError, InputError, NotFoundError, quote

if TYPE_CHECKING:
    from mlflow import MlflowClient

SCHEMES = ("runs:/", "models:/")
MLMODEL = "MLmodel"
LIGHTGBM_BOOSTER = "lightgbm.basic.Booster"
_TEXT_MODEL_START = b"tree\n"
_MODELS_RE = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)/?\Z")
_RUNS_RE = re.compile(r"^runs:/(?P<run_id>[A-Za-z0-9_\-]+)/(?P<path>[^?#]+?)/?\Z")
_USERINFO_RE = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/@\s]*@")
_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+.\-]*\Z")
_TRICKY_ESCAPE_RE = re.compile(r"(?i)%(2f|2e|5c|25|00)")
SCHEMES_SETTING = "GOVREG_MLFLOW_ARTIFACT_SCHEMES"
ROOT_SETTING = "GOVREG_MLFLOW_ARTIFACT_ROOT"
PATH_RULE = (
    "an artifact path is relative to the run's artifacts, in plain '/'-separated names "
    "(no '..' or '.', no leading or doubled '/', no backslash, no percent-encoding, "
    "no control characters)"
)


def is_mlflow_uri(value: object) -> bool:
    """True for ``runs:/...`` and ``models:/...`` (the sources this module reads)."""
    return isinstance(value, str) and value.startswith(SCHEMES)


def public_uri(uri: str) -> str:
    """A tracking URI without any user name or password in it (safe to record)."""
    parts = urllib.parse.urlsplit(uri)
    if "@" not in parts.netloc:
        return redact(uri)
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def redact(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL in it removed."""
    return _USERINFO_RE.sub(r"\1", text)


@dataclass(frozen=True)
class ArtifactRules:
    """Where MLflow artifacts may be downloaded from.

    ``schemes`` are the storage schemes allowed (``GOVREG_MLFLOW_ARTIFACT_SCHEMES``);
    a ``file:`` location must resolve inside ``file_root``
    (``GOVREG_MLFLOW_ARTIFACT_ROOT``) and neither inside nor around any of
    ``forbidden`` (govreg's keys, anchors and blob store).
    """

    schemes: frozenset[str]
    file_root: Path | None = None
    forbidden: tuple[Path, ...] = ()


def artifact_rules(
    tracking_uri: str | None,
    *,
    schemes: str | None = None,
    file_root: Path | None = None,
    forbidden: tuple[Path, ...] = (),
) -> ArtifactRules:
    """The rules for this tracking URI. By default only the tracking server's own
    artifact store: ``mlflow-artifacts:`` (proxied by the tracking server) and, when
    the tracking URI is a local store (a path, ``file:`` or ``sqlite:``), ``file:``
    inside that store's folder (the folder of a SQLite database)."""
    local = _local_store(tracking_uri)
    if schemes is None:
        allowed = {"mlflow-artifacts"} | ({"file"} if local is not None else set())
    else:
        allowed = {s.strip().lower().removesuffix(":") for s in schemes.split(",")} - {""}
        bad = sorted(s for s in allowed if not _SCHEME_RE.match(s))
        if bad or not allowed:
            raise ConfigError(
                f"{SCHEMES_SETTING} must be a comma-separated list of URI schemes such as "
                f"'mlflow-artifacts,file'; {quote(schemes)} is not"
            )
    root = file_root if file_root is not None else local
    return ArtifactRules(
        schemes=frozenset(allowed),
        file_root=root.expanduser().resolve() if root is not None else None,
        forbidden=tuple(p.expanduser().resolve() for p in forbidden),
    )


def _local_store(tracking_uri: str | None) -> Path | None:
    """The folder of a local tracking store (a path, file: or sqlite: URI), else None."""
    if not tracking_uri:
        return None
    import urllib.request

    parts = urllib.parse.urlsplit(tracking_uri)
    scheme = parts.scheme.lower()
    if scheme == "":
        return Path(tracking_uri)
    if scheme == "file":
        return Path(urllib.request.url2pathname(parts.path))
    if scheme == "sqlite" and tracking_uri.startswith("sqlite:///"):
        database = tracking_uri[len("sqlite:///") :].split("?", 1)[0]
        return Path(database).parent if database and database != ":memory:" else None
    return None


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
            return NotFoundError(
                redact(f"{what}: {message} (MLflow at {public_uri(tracking_uri)})")
            )
        if exc.error_code == "INVALID_PARAMETER_VALUE":
            return InputError(redact(f"{what}: {message}"))
        return ConfigError(
            redact(f"{what}: MLflow at {public_uri(tracking_uri)} failed: {message}")
        )
    return ConfigError(
        redact(
            f"{what}: MLflow at {public_uri(tracking_uri)} cannot be used: "
            f"{type(exc).__name__}: {exc}"
        )
    )


def fetch_model(
    uri: str, *, tracking_uri: str | None, max_bytes: int, rules: ArtifactRules | None = None
) -> FetchedModel:
    """Download ``uri`` (``runs:/<run_id>/<path>`` or ``models:/<name>/<version>``) and
    return its LightGBM native text model with the lineage to record.

    Refuses (without loading anything) an artifact whose only model is a pickle
    or code, naming what it found; and (before fetching anything) an artifact
    stored where ``rules`` (default: :func:`artifact_rules` of the tracking URI)
    do not allow.
    """
    # 1. the URI names a run path or a registered model version; a run path is
    # checked before any MLflow call
    runs = _RUNS_RE.match(uri)
    models = _MODELS_RE.match(uri)
    if not runs and not models:
        raise InputError(
            f"MLflow URI {quote(uri, 120)} is not supported: use runs:/<run_id>/<artifact path> "
            "or models:/<registered model name>/<version number>"
        )
    if runs:
        _check_artifact_path(runs["path"], uri=uri)
    client = client_for(tracking_uri)
    assert tracking_uri is not None  # client_for refused a missing one
    rules = rules or artifact_rules(tracking_uri)
    try:
        # 2. the run (and the registered model version) it comes from, the storage
        # location of the artifact and the artifact root it must lie under. The
        # location is resolved here with this client: MLflow 3.17 resolves runs:/
        # and models:/ URIs of logged models through the process-wide tracking
        # URI, not the one passed in.
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
            if location.startswith("runs:/"):  # a version registered from a run's path
                location = _run_location(location, run, uri=uri)
            if run is not None and not logged_model_id:
                logged_model_id = _logged_model_at(client, run, location)
            if logged_model_id:
                root = str(client.get_logged_model(logged_model_id).artifact_location)
            elif run is not None:
                root = str(run.info.artifact_uri)
            else:
                raise InputError(
                    f"MLflow URI {quote(uri, 120)} is refused: the model version names "
                    "neither a run nor a logged model, so govreg cannot tell whether its "
                    "files are a run's artifacts; register it from a run or a logged model"
                )
            _check_location(location, root, uri=uri, tracking_uri=tracking_uri, rules=rules)
        else:
            assert runs is not None
            what = f"run {runs['run_id']}"
            run = client.get_run(runs["run_id"])
            first, _, rest = runs["path"].partition("/")
            logged_model_id = _logged_model_id(client, run, first)
            if logged_model_id:
                root = str(client.get_logged_model(logged_model_id).artifact_location)
                location = f"{root.rstrip('/')}/{rest}" if rest else root
            else:
                root = str(run.info.artifact_uri)
                location = f"{root.rstrip('/')}/{runs['path']}"
            _check_location(location, root, uri=uri, tracking_uri=tracking_uri, rules=rules)
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
            except OSError as exc:  # its text names server paths: not shown
                raise NotFoundError(
                    f"{uri}: no such artifact path in MLflow ({type(exc).__name__})"
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


def _check_artifact_path(path: str, *, uri: str) -> None:
    """Refuse a run's artifact path that could leave the run's artifacts."""
    segments = path.split("/")
    if (
        "\\" in path
        or "%" in path
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path)
        or any(s in ("", ".", "..") for s in segments)
    ):
        raise InputError(f"MLflow URI {quote(uri, 120)} is refused: {PATH_RULE}")


def _run_location(location: str, run: Any, *, uri: str) -> str:
    """A version's ``runs:/<run_id>/<path>`` source as a location in its own run's artifacts."""
    source = _RUNS_RE.match(location)
    if source is None or run is None or source["run_id"] != run.info.run_id:
        raise InputError(
            f"MLflow URI {quote(uri, 120)} is refused: the model version's source is a path "
            "of another run than its own"
        )
    _check_artifact_path(source["path"], uri=uri)
    return f"{str(run.info.artifact_uri).rstrip('/')}/{source['path']}"


def _parts(uri: str) -> tuple[str, str, str] | None:
    """(scheme, host:port in lower case without user info, path) of a location, the
    path as MLflow's artifact repositories read it: unquoted once in a URI, as it is
    in a plain path (a ``file:`` location). None for a path whose escapes could name
    another path than they seem to (``%2f``, ``%2e``, ``%5c``, ``%25``; in a plain
    path any ``%``), or any ``%`` in a plain path."""
    parts = urllib.parse.urlsplit(uri)
    if not parts.scheme:
        return None if "%" in uri else ("file", "", uri)
    if _TRICKY_ESCAPE_RE.search(parts.path):
        return None
    netloc = parts.netloc.rpartition("@")[2].lower()
    return parts.scheme.lower(), netloc, urllib.parse.unquote(parts.path)


def _check_location(
    location: str, root: str, *, uri: str, tracking_uri: str, rules: ArtifactRules
) -> None:
    """Refuse, before anything is fetched, a storage location outside ``root``, of a
    scheme ``rules`` do not allow, on another host than the tracking server, or a
    ``file:`` location outside the artifact root or near govreg's own files."""
    refused = f"MLflow URI {quote(uri, 120)} is refused: "
    outside = InputError(
        f"{refused}its artifacts are stored outside the artifact root of its run or "
        "logged model; govreg fetches only a run's or logged model's own artifacts"
    )
    found, bounds = _parts(location), _parts(root)
    if found is None or bounds is None:
        raise outside
    scheme, netloc, path = found
    # 1. the scheme is one the operator allows
    if scheme not in rules.schemes:
        raise InputError(
            f"{refused}its artifacts are stored at a {quote(scheme, 24)} location, and govreg "
            f"fetches MLflow artifacts only from {', '.join(sorted(rules.schemes))} locations "
            f"(the setting {SCHEMES_SETTING})"
        )
    # 2. the location lies under the run's (or logged model's) artifact root
    root_scheme, root_netloc, root_path = bounds
    norm = posixpath.normpath(path) if path else "/"
    norm_root = posixpath.normpath(root_path) if root_path else "/"
    if (
        "\\" in path
        or ".." in path.split("/")
        or (scheme, netloc) != (root_scheme, root_netloc)
        or not (norm == norm_root or norm.startswith(norm_root.rstrip("/") + "/"))
    ):
        raise outside
    # 3. MLflow sends its credentials to every http(s) and mlflow-artifacts location:
    # those must be on the tracking server itself
    if scheme in ("http", "https", "mlflow-artifacts") and not _on_tracking_server(
        location, tracking_uri
    ):
        raise InputError(
            f"{refused}its artifacts are on another host than the MLflow tracking server, "
            "and govreg fetches over HTTP only from the tracking server (MLflow would send "
            "its credentials along)"
        )
    # 4. a local file: inside the artifact root, never govreg's keys, anchors or store
    if scheme == "file":
        _check_file(netloc, path, refused=refused, rules=rules)


def _on_tracking_server(location: str, tracking_uri: str) -> bool:
    loc = urllib.parse.urlsplit(location)
    track = urllib.parse.urlsplit(tracking_uri)
    if track.scheme.lower() not in ("http", "https"):
        return False
    if "@" in loc.netloc:
        return False
    if loc.scheme.lower() == "mlflow-artifacts" and not loc.netloc:
        return True  # resolved against the tracking URI by MLflow
    try:
        return (loc.hostname, _port(loc)) == (track.hostname, _port(track))
    except ValueError:  # a malformed port
        return False


def _port(parts: urllib.parse.SplitResult) -> int | None:
    scheme = parts.scheme.lower()
    default = 443 if scheme == "https" else 80 if scheme == "http" else None
    return parts.port or default


def _check_file(netloc: str, path: str, *, refused: str, rules: ArtifactRules) -> None:
    if netloc not in ("", "localhost"):
        raise InputError(f"{refused}its file: location names another host")
    if rules.file_root is None:
        raise InputError(
            f"{refused}its artifacts are local files, and no artifact root is configured "
            f"for them (the setting {ROOT_SETTING})"
        )
    resolved = Path(path).resolve()
    near = any(resolved.is_relative_to(p) or p.is_relative_to(resolved) for p in rules.forbidden)
    if near or not resolved.is_relative_to(rules.file_root):
        raise InputError(
            f"{refused}its artifacts are local files outside the MLflow artifact root "
            f"(the setting {ROOT_SETTING}); govreg reads local artifacts only inside it, "
            "and never its own keys, anchors or blob store"
        )
    if resolved.is_dir():
        for folder, dirs, files in os.walk(resolved):
            if any(os.path.islink(os.path.join(folder, n)) for n in (*dirs, *files)):
                raise InputError(
                    f"{refused}its artifact folder holds a symbolic link; govreg reads "
                    "local artifacts only as plain files"
                )


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
    """Refuse a run path that holds no artifact, naming what the folder does hold
    (inside the run's artifacts: :func:`_check_location` has checked ``location``)."""
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
    if "'" in name:  # not a logged model's name, and not to be put in a filter
        return None
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
