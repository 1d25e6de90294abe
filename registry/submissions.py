"""Submissions: checking a candidate against the submission contract, storing its
blobs content-addressed, and recording the version; reading a version's
submission and the policy it is judged by.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audits.events import EventType, NewEvent
from core.errors import InputError
from core.files import ImportedPath
from policies.loader import DEFAULT_POLICY
from policies.schema import Policy
from registry import inputs, reads
from registry.identity import Principal, check_name, refuse_lookalike
from registry.lifecycle import Status
from registry.projection import DatabaseView
from registry.recorder import Service
from registry.roles import Action
from registry.rules import check_cutoff


class Submissions(Service):
    def submit(
        self,
        actor: Principal,
        model: str,
        *,
        artifact: Path | ImportedPath | str,
        train: Path | ImportedPath,
        validation: Path | ImportedPath,
        target: str,
        protected: list[str],
        policy_id: str | None = None,
        cutoff: str | None = None,
        reason_texts: dict[str, Any] | None = None,
        schema_suite: dict[str, Any] | None = None,
        lineage: dict[str, Any] | None = None,
    ) -> int:
        """Check the submission contract, store the blobs, record the version.

        ``artifact`` is a file, or an MLflow ``runs:/<run_id>/<path>`` or
        ``models:/<name>/<version>`` URI read from the configured tracking
        server; then only its LightGBM text model is taken, and the run's
        lineage is recorded under ``lineage["mlflow"]``. A file is an
        :class:`~core.files.ImportedPath` when named under the server's import
        folder. Each file is read once; its bytes are hashed and parsed from that read.
        """
        rec = self.recorder
        rec.authorize(actor, Action.SUBMIT, model=model)
        check_name(model, "model name")
        if not protected:
            raise InputError("declare at least one protected attribute with --protected")
        if schema_suite is not None:
            inputs.check_schema_suite(schema_suite)
        with rec.reading() as conn:
            policy = reads.adopted_policy(conn, policy_id or DEFAULT_POLICY)
            if cutoff is not None:  # only the policy's own cutoff (another is a policy change)
                check_cutoff(policy, cutoff, next_version=reads.next_policy_version(conn, policy))
        cut = policy.decision_cutoff
        lineage = inputs.check_lineage(lineage)
        if isinstance(artifact, str) and artifact.startswith(("runs:/", "models:/")):
            from registry.mlflow_source import fetch_model

            fetched = fetch_model(
                artifact,
                tracking_uri=rec.mlflow_tracking_uri,
                max_bytes=rec.max_upload_bytes,
                rules=rec.mlflow_artifact_rules,
            )
            artifact_bytes = fetched.data
            lineage["mlflow"] = fetched.lineage
        else:
            artifact = Path(artifact) if isinstance(artifact, str) else artifact
            artifact_bytes = inputs.read_input_file(
                artifact, "artifact", max_bytes=rec.max_upload_bytes
            )
        info = inputs.inspect_artifact(artifact_bytes, source=str(artifact))
        datasets = {}
        contract = None
        for role, path in (("train", train), ("validation", validation)):
            fmt = inputs.dataset_format(path)
            data = inputs.read_input_file(path, f"{role} dataset", max_bytes=rec.max_upload_bytes)
            frame = inputs.load_frame(data, fmt, source=str(path), limits=rec.decode_limits)
            inputs.check_dataset(frame, source=str(path), target=target, protected=protected)
            # The training data defines the contract; the validation data must feed it too.
            if contract is None:
                contract = inputs.data_contract(artifact_bytes, frame, source=str(path))
            else:
                contract.check_frame(frame, source=str(path))
            datasets[role] = (data, inputs.describe_frame(frame, fmt))
        if contract is None:  # unreachable: the loop ran for the training data
            raise InputError("no training data")
        reasons = inputs.check_reason_texts(reason_texts, contract)
        written: list[str] = []
        try:
            digest, new = rec.store.put(artifact_bytes)
            if new:
                written.append(digest)
            blobs: dict[str, dict[str, Any]] = {
                "artifact": {"digest": digest, "size": len(artifact_bytes), "format": info.format}
            }
            for role, (data, desc) in datasets.items():
                d_digest, d_new = rec.store.put(data)
                if d_new:
                    written.append(d_digest)
                blobs[role] = {"digest": d_digest, "size": len(data), **desc.public()}
            with rec.transaction() as conn:
                view = DatabaseView(conn)
                events: list[NewEvent] = []
                if view.get("models", (model,)) is None:
                    refuse_lookalike(view.where("models"), model, "model")
                    events.append(
                        NewEvent(
                            type=EventType.MODEL_REGISTERED,
                            actor=actor.name,
                            model=model,
                            data={"name": model},
                            index={"name": model},
                        )
                    )
                existing = view.where("versions", model=model)
                number = max((r["version"] for r in existing), default=0) + 1
                seat = reads.seat(conn, actor)
                events.append(
                    NewEvent(
                        type=EventType.VERSION_SUBMITTED,
                        actor=actor.name,
                        model=model,
                        version=number,
                        data={
                            "artifact": blobs["artifact"],
                            "train": blobs["train"],
                            "validation": blobs["validation"],
                            "target": target,
                            "protected": list(protected),
                            "features": info.features,
                            "contract": contract.canonical(),
                            "num_trees": info.num_trees,
                            "cutoff": str(cut),
                            "policy": policy.canonical(),
                            "policy_digest": policy.digest,
                            "reason_texts": reasons,
                            "schema_suite": schema_suite,
                            "lineage": lineage,
                            "person": seat.person,
                            "creators": sorted(seat.creators),
                        },
                        index={
                            "status": Status.SUBMITTED.value,
                            "artifact_digest": blobs["artifact"]["digest"],
                            "train_digest": blobs["train"]["digest"],
                            "validation_digest": blobs["validation"]["digest"],
                            "policy_digest": policy.digest,
                        },
                    )
                )
                rec.record(conn, events)
        except BaseException:
            for digest in written:
                rec.store.remove(digest)
            raise
        return number

    def submission(self, model: str, version: int) -> dict[str, Any]:
        """The decrypted payload of the version's ``version.submitted`` event."""
        with self.recorder.reading() as conn:
            return reads.submission(conn, self.recorder.ledger, model, version)

    def policy_of(self, model: str, version: int) -> Policy:
        """The policy the version is judged by now (submission or re-evaluation)."""
        with self.recorder.reading() as conn:
            reads.version_row(conn, model, version)
            return reads.recorded_policy(conn, self.recorder.ledger, model, version)
