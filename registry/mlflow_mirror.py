"""Mirror govreg's decisions into the MLflow model registry.

People who look at MLflow should see the truth that the ledger holds. For
every govreg version that came from MLflow, the mirror writes, on the MLflow
model version:

- tags ``govreg.model``, ``govreg.version``, ``govreg.status``,
  ``govreg.artifact_digest`` and, once evaluated and approved,
  ``govreg.evidence_digest`` and ``govreg.approval_seq``;
- the aliases govreg manages for the model (every alias ever set by
  ``govreg promote``), pointing at the version govreg promoted, and only
  while that version is promoted: an alias whose version is suspended,
  retired or past revalidation is removed from MLflow.

Which MLflow model version mirrors a govreg version:

- submitted from ``models:/<name>/<version>``: that registered version;
- submitted from ``runs:/<run_id>/<path>``: at approval, govreg registers the
  run's model in MLflow under the govreg model name (tagged with the govreg
  model and version, so re-running finds it instead of registering twice).
  Before approval such a version is not in the MLflow registry at all.

The ledger is the truth and the mirror only follows it: it runs after the
use case's transaction committed, its failures are logged by the registry and
never undo governance, and :meth:`MlflowMirror.sync` re-mirrors a model's
whole current state (``govreg mlflow sync MODEL``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from audits.events import EventType
from core.errors import GovregError
from registry.lifecycle import Status, effective_status
from registry.mlflow_source import client_for, translate
from registry.projection import DatabaseView

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from registry.recorder import Recorder
    from registry.services import Registry

TAG_PREFIX = "govreg."


@dataclass(frozen=True)
class Mirrored:
    """One govreg version as it now stands in MLflow."""

    version: int
    mlflow_name: str
    mlflow_version: str
    status: str
    tags: dict[str, str]

    def line(self, model: str) -> str:
        return (
            f"{model} v{self.version} -> MLflow {self.mlflow_name} v{self.mlflow_version}: "
            f"{self.status}"
        )


@dataclass(frozen=True)
class SyncResult:
    model: str
    versions: list[Mirrored]
    aliases: dict[str, tuple[str, str] | None]  # alias -> (mlflow name, version) or removed

    def lines(self) -> list[str]:
        out = [m.line(self.model) for m in self.versions]
        for alias, target in sorted(self.aliases.items()):
            if target is None:
                out.append(f"alias {alias}: removed from MLflow")
            else:
                out.append(f"alias {alias}: MLflow {target[0]} v{target[1]}")
        if not self.versions:
            out.append(f"{self.model}: no version came from MLflow; nothing to mirror")
        return out


class MlflowMirror:
    """A :class:`registry.recorder.VersionObserver` writing to one MLflow registry."""

    def __init__(self, tracking_uri: str | None) -> None:
        self.tracking_uri = tracking_uri

    def version_changed(self, recorder: Recorder, model: str, version: int) -> None:
        self.sync(recorder, model)

    def sync(self, registry: Registry | Recorder, model: str) -> SyncResult:
        """Mirror the current state of every version of ``model`` that came from MLflow."""
        state = _read_state(registry, model)
        if not state["sources"]:
            return SyncResult(model, [], {})
        client = client_for(self.tracking_uri)
        assert self.tracking_uri is not None  # client_for refused a missing one
        try:
            return self._sync(client, model, state)
        except GovregError:
            raise
        except Exception as exc:  # mlflow and transport errors, translated
            raise translate(
                exc, what=f"mirroring {model} into MLflow", tracking_uri=self.tracking_uri
            ) from exc

    def _sync(self, client: MlflowClient, model: str, state: dict[str, Any]) -> SyncResult:
        mirrored: dict[int, Mirrored] = {}
        for row in state["rows"]:
            number = int(row["version"])
            lineage = state["sources"].get(number)
            if lineage is None:
                continue
            status = state["status"][number]
            approved = row["approval_seq"] is not None
            registered = lineage.get("registered_model")
            if registered:
                name, mlflow_version = str(registered["name"]), str(registered["version"])
            elif approved:
                name, mlflow_version = _register(client, model, number, lineage)
            else:
                continue  # a runs:/ version enters the MLflow registry only once approved
            tags = {
                "govreg.model": model,
                "govreg.version": str(number),
                "govreg.status": status,
                "govreg.artifact_digest": str(row["artifact_digest"]),
            }
            if row["evidence_digest"]:
                tags["govreg.evidence_digest"] = str(row["evidence_digest"])
            if approved:
                tags["govreg.approval_seq"] = str(row["approval_seq"])
            for key, value in tags.items():
                client.set_model_version_tag(name, mlflow_version, key, value)
            mirrored[number] = Mirrored(number, name, mlflow_version, status, tags)

        names = sorted({m.mlflow_name for m in mirrored.values()})
        current = {name: dict(client.get_registered_model(name).aliases) for name in names}
        aliases: dict[str, tuple[str, str] | None] = {}
        for alias in state["managed_aliases"]:
            number = state["aliases"].get(alias)
            target = None
            if number is not None and state["status"].get(number) == Status.PROMOTED:
                found = mirrored.get(number)
                target = (found.mlflow_name, found.mlflow_version) if found else None
            for name in names:
                if target is not None and target[0] == name:
                    if str(current[name].get(alias)) != target[1]:
                        client.set_registered_model_alias(name, alias, target[1])
                elif alias in current[name]:
                    client.delete_registered_model_alias(name, alias)
            aliases[alias] = target
        return SyncResult(model, [mirrored[n] for n in sorted(mirrored)], aliases)


def _read_state(registry: Registry | Recorder, model: str) -> dict[str, Any]:
    """What the mirror needs, read from the registry tables and the ledger in one
    read transaction."""
    now = registry.clock()
    with registry.reading() as conn:
        view = DatabaseView(conn)
        rows = sorted(view.where("versions", model=model), key=lambda r: r["version"])
        aliases = {r["alias"]: int(r["version"]) for r in view.where("aliases", model=model)}
        managed: set[str] = set()
        sources: dict[int, dict[str, Any]] = {}
        for event in registry.ledger.events(
            conn, model=model, types=[EventType.VERSION_SUBMITTED, EventType.ALIAS_SET]
        ):
            if event.type == EventType.ALIAS_SET:
                managed.add(str(event.data["alias"]))
            elif event.version is not None:
                lineage = event.data.get("lineage") or {}
                if isinstance(lineage.get("mlflow"), dict):
                    sources[int(event.version)] = lineage["mlflow"]
    status = {
        int(r["version"]): effective_status(r["status"], r["revalidate_by"], now).value
        for r in rows
    }
    return {
        "rows": rows,
        "aliases": aliases,
        "managed_aliases": sorted(managed),
        "sources": sources,
        "status": status,
    }


def _register(
    client: MlflowClient, model: str, version: int, lineage: dict[str, Any]
) -> tuple[str, str]:
    """The MLflow version registered for a ``runs:/`` submission (created once)."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(model)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    for found in client.search_model_versions(f"name = '{model}'"):
        tags = found.tags or {}
        if tags.get("govreg.model") == model and tags.get("govreg.version") == str(version):
            return model, str(found.version)
    model_id = lineage.get("logged_model_id")
    if model_id:
        # the logged model's storage location rather than "models:/<model_id>", which
        # MLflow's SQL registry store resolves through the process-wide tracking URI
        # instead of this client's
        source = str(client.get_logged_model(model_id).artifact_location)
    else:
        path = str(lineage["source_uri"]).split("/", 2)[2]  # runs:/<run_id>/<path>
        source = f"{client.get_run(lineage['run_id']).info.artifact_uri}/{path}"
    created = client.create_model_version(
        model,
        source,
        run_id=lineage.get("run_id"),
        tags={"govreg.model": model, "govreg.version": str(version)},
        model_id=model_id,
    )
    return model, str(created.version)
