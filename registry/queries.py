"""Queries: listing and showing versions, the decrypted audit trail, and the
verification of the ledger with the proof that the registry tables equal its
replay (:func:`compare_projection`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audits.events import Event, EventType
from audits.verify import VerificationFailed, VerifyReport, Workers, verify_ledger
from core.db import read_only
from core.errors import NotFoundError
from policies.schema import Policy
from registry import reads
from registry.identity import Principal
from registry.lifecycle import Status
from registry.projection import PROJECTED_EVENTS, DatabaseView, MemoryView, apply
from registry.recorder import Service
from registry.roles import Action, Role
from registry.rules import missing_signoffs, signers_by_role

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class Queries(Service):
    def list_versions(self, actor: Principal, model: str | None = None) -> list[dict[str, Any]]:
        rec = self.recorder
        rec.authorize(actor, Action.READ, model=model)
        with rec.reading() as conn:
            view = DatabaseView(conn)
            if model is not None and view.get("models", (model,)) is None:
                raise NotFoundError(f"no model '{model}'; see `govreg versions list`")
            rows = view.where("versions", **({"model": model} if model else {}))
        return [
            {
                "model": r["model"],
                "version": r["version"],
                "status": reads.status_of(r, rec.clock()).value,
                "policy": f"{r['policy_id']}@{r['policy_version']}",
                "submitted_by": r["submitted_by"],
                "submitted_at": r["submitted_at"],
                "artifact_digest": r["artifact_digest"],
            }
            for r in sorted(rows, key=lambda r: (r["model"], r["version"]))
        ]

    def show_version(self, actor: Principal, model: str, version: int) -> dict[str, Any]:
        rec = self.recorder
        rec.authorize(actor, Action.READ, model=model, version=version)
        with rec.reading() as conn:
            row = reads.version_row(conn, model, version)
            view = DatabaseView(conn)
            aliases = sorted(
                a["alias"] for a in view.where("aliases", model=model, version=version)
            )
            signoffs = sorted(
                view.where("signoffs", model=model, version=version), key=lambda s: s["seq"]
            )
            # One pass over the version's events: its policy and the current gate results.
            policy_doc: dict[str, Any] | None = None
            contract: dict[str, Any] | None = None
            lineage: dict[str, Any] = {}
            gates = []
            for event in rec.ledger.events(
                conn,
                model=model,
                version=version,
                types=[
                    EventType.VERSION_SUBMITTED,
                    EventType.EVALUATION_STARTED,
                    EventType.GATE_EVALUATED,
                ],
            ):
                if event.type == EventType.GATE_EVALUATED:
                    if event.data["evaluation"] == row["evaluation"]:
                        gates.append({"seq": event.seq, **event.data["result"]})
                elif "policy" in event.data:
                    policy_doc = event.data["policy"]
                if event.type == EventType.VERSION_SUBMITTED:
                    contract = event.data.get("contract")
                    lineage = event.data.get("lineage") or {}
            if policy_doc is None:
                raise NotFoundError(f"{model} v{version} has no submission event")
            policy = Policy.model_validate(policy_doc)
            submitter, signed = reads.path(conn, rec.ledger, model, version)
        counted = signers_by_role(signed, evidence=row["evidence_digest"], submitter=submitter)
        missing = [
            {"role": m["role"], "missing": m["missing"]} for m in missing_signoffs(policy, counted)
        ]
        return {
            "model": model,
            "version": version,
            "status": reads.status_of(row, rec.clock()).value,
            "stored_status": row["status"],
            "status_reason": row["status_reason"],
            "policy": {"id": policy.id, "version": policy.version, "digest": row["policy_digest"]},
            "artifact_digest": row["artifact_digest"],
            "train_digest": row["train_digest"],
            "validation_digest": row["validation_digest"],
            "target": row["target"],
            "protected": json.loads(row["protected"]),
            "features": json.loads(row["features"]),
            "contract": contract,
            "lineage": lineage,
            "cutoff": row["cutoff"],
            "submitted_by": row["submitted_by"],
            "submitted_by_person": submitter.person,
            "submitted_at": row["submitted_at"],
            "evaluation": row["evaluation"],
            "evidence_digest": row["evidence_digest"],
            "approved_at": row["approved_at"],
            "approval_seq": row["approval_seq"],
            "revalidate_by": row["revalidate_by"],
            "aliases": aliases,
            "gates": gates,
            "signoffs": [
                {
                    "seq": s["seq"],
                    "role": s["role"],
                    "principal": s["principal"],
                    "person": s["person"],
                    "decision": s["decision"],
                    "signed_at": s["signed_at"],
                    "evidence_digest": s["evidence_digest"],
                    "current": s["evidence_digest"] == row["evidence_digest"],
                }
                for s in signoffs
            ],
            "signoffs_missing": missing if row["status"] == Status.AWAITING_SIGNOFF else [],
        }

    def audit_log(self, actor: Principal, *, model: str | None = None) -> Iterator[Event]:
        """The decrypted trail, oldest first. Only an admin sees the API-key hashes
        of ``principal.created`` events (the chain hashes the stored envelopes, so
        what is left out here changes nothing a verifier checks)."""
        rec = self.recorder
        rec.authorize(actor, Action.READ, model=model)
        admin = actor.role == Role.ADMIN
        with rec.reading() as conn:
            for event in rec.ledger.events(conn, model=model):
                if admin or "key_hash" not in event.data:
                    yield event
                else:
                    data = {k: v for k, v in event.data.items() if k != "key_hash"}
                    yield dataclasses.replace(event, data=data)

    def verify(
        self,
        actor: Principal | None,
        public_key: Ed25519PublicKey,
        *,
        anchor_dir: Path | None,
        authenticators: bool = True,
        workers: Workers = 1,
        chunk_level: int | None = None,
    ) -> VerifyReport:
        """Verify the ledger and prove the registry tables equal its replay; with
        ``authenticators``, also recompute every event's authenticator if this
        process can read the signing key of ``public_key``. ``workers`` and
        ``chunk_level`` as :func:`audits.verify.verify_ledger` takes them."""
        rec = self.recorder
        if actor is not None:
            rec.authorize(actor, Action.VERIFY)
        replay = MemoryView()
        conn = read_only(rec.engine)
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            with conn.begin():
                report = verify_ledger(
                    conn,
                    rec.ledger,
                    public_key,
                    anchor_dir=anchor_dir,
                    on_event=lambda e: apply(replay, e),
                    replay_types=PROJECTED_EVENTS,
                    authenticator_key=(
                        rec.ledger.authenticator_key_for(public_key) if authenticators else None
                    ),
                    workers=workers,
                    chunk_level=chunk_level,
                )
                compare_projection(DatabaseView(conn), replay)
        finally:
            conn.close()
        return report


def compare_projection(db: DatabaseView, replay: MemoryView) -> None:
    seen: set[tuple[str, tuple[Any, ...]]] = set()
    for table, key, row in db.dump():
        seen.add((table, key))
        expected = replay.tables[table].get(key)
        if expected is None:
            raise VerificationFailed(
                f"registry table '{table}' has row {key} that no ledger event created"
            )
        for column, value in row.items():
            if expected.get(column) != value:
                raise VerificationFailed(
                    f"registry table '{table}' row {key}: {column} is {value!r} but the "
                    f"ledger replay gives {expected.get(column)!r}"
                )
    for table, rows in replay.tables.items():
        for key in rows:
            if (table, key) not in seen:
                raise VerificationFailed(
                    f"registry table '{table}' lacks row {key} that the ledger created"
                )
