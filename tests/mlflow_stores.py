"""Real MLflow for the tests (importable as ``mlflow_stores``): a SQLite tracking
store with a logged LightGBM model, an ``mlflow server`` process, and a plain
HTTP server that counts the requests it gets.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

PARAMS = {"learning_rate": "0.1", "num_leaves": "15"}
METRICS = {"auc": 0.871, "ks": 0.58}
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Store:
    """A real MLflow tracking store with one logged LightGBM model."""

    uri: str
    root: Path
    run_id: str
    experiment_id: str
    runs_uri: str
    models_uri: str
    model_lgb: bytes
    logged_model_id: str
    model_location: str
    pickle_uri: str
    sentinel: Path
    pickle_bytes: bytes

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def register(self) -> tuple[str, str]:
        """A new registered model (unique name) whose version 1 is the logged model."""
        name = f"credit-{uuid.uuid4().hex[:8]}"
        client = self.client()
        client.create_registered_model(name)
        version = client.create_model_version(
            name, self.model_location, run_id=self.run_id, model_id=self.logged_model_id
        )
        return name, str(version.version)


class RunsCode:
    """Unpickling this creates the sentinel file: proof that a pickle ran."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.sentinel,))


@contextmanager
def process_wide(uri: str) -> Iterator[None]:
    """Point MLFLOW_TRACKING_URI at the test's store: some MLflow 3.17 code paths
    resolve through the process-wide URI, whose default is ./mlflow.db."""
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous


def make_store(root: Path, model_text: str) -> Store:
    """A SQLite tracking store in ``root`` (artifacts in ``root/artifacts``) with the
    model logged and registered as ``credit-pd``, and a pickle-only run. Call it
    inside :func:`process_wide` of its URI."""
    from mlflow import MlflowClient

    from govreg.synthetic import log_to_mlflow

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_experiment("credit", artifact_location=(root / "artifacts").as_uri())
    logged = log_to_mlflow(
        model_text,
        tracking_uri=uri,
        experiment="credit",
        params=PARAMS,
        metrics=METRICS,
        source_commit=COMMIT,
        register_as="credit-pd",
    )
    logged_model_id = next(
        m.model_id
        for m in client.search_logged_models(experiment_ids=[logged["experiment_id"]])
        if m.source_run_id == logged["run_id"]
    )
    location = client.get_logged_model(logged_model_id).artifact_location
    # what MLflow holds: model.lgb, the Booster's native text, in the local artifact root
    model_lgb = (Path(urllib.parse.urlparse(location).path) / "model.lgb").read_bytes()
    assert model_lgb.decode() == model_text

    # a pickle-only artifact, as mlflow.sklearn writes it, whose pickle would run code
    sentinel = root / "pickle-ran"
    folder = root / "sklearn-model"
    folder.mkdir()
    pickled = pickle.dumps(RunsCode(sentinel), protocol=4)
    (folder / "model.pkl").write_bytes(pickled)
    (folder / "MLmodel").write_text(
        "flavors:\n"
        "  python_function:\n"
        "    loader_module: mlflow.sklearn\n"
        "    model_path: model.pkl\n"
        "  sklearn:\n"
        "    pickled_model: model.pkl\n"
        "    serialization_format: cloudpickle\n",
        encoding="utf-8",
    )
    run = client.create_run(logged["experiment_id"])
    client.log_artifacts(run.info.run_id, str(folder), "model")
    client.set_terminated(run.info.run_id)
    return Store(
        uri=uri,
        root=root,
        run_id=logged["run_id"],
        experiment_id=logged["experiment_id"],
        runs_uri=logged["runs_uri"],
        models_uri=logged["models_uri"],
        model_lgb=model_lgb,
        logged_model_id=logged_model_id,
        model_location=location,
        pickle_uri=f"runs:/{run.info.run_id}/model",
        sentinel=sentinel,
        pickle_bytes=pickled,
    )


@dataclass
class Counter:
    """A real HTTP server on 127.0.0.1 that answers 404 and records every request
    as (method, path, Authorization header or None)."""

    server: ThreadingHTTPServer
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def counting_server() -> Iterator[Counter]:
    seen: list[tuple[str, str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append((self.command, self.path, self.headers.get("Authorization")))
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = do_HEAD = _answer

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads ``requests``."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Counter(server, seen)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def tracking_server(root: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """``mlflow server`` on a free loopback port, proxying artifacts to ``root/artifacts``
    (locations ``mlflow-artifacts:/...``), with ``env`` added to its environment;
    yields its URL once ``/health`` answers."""
    from api_server import _free_port

    port = _free_port()
    log = root / "mlflow-server.log"
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    full_env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                mlflow_bin, "server",
                "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
                "--artifacts-destination", str(root / "artifacts"),
                "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            ],
            env=full_env, stdout=sink, stderr=sink, cwd=root,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a loaded 2-core machine takes about 30 s
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start:\n{log.read_text()}")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
