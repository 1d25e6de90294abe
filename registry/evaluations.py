"""Evaluations: opening evaluation N+1 of a version (optionally under another
adopted policy), measuring its policy's gates with :func:`validation.runner.run_policy`,
and recording the results with the evidence digest that sign-offs sign.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from audits.events import EventType, NewEvent
from core.canonical import canonical_bytes
from core.errors import GovregError, InputError, PermissionDenied
from registry import inputs, reads
from registry.identity import Principal
from registry.lifecycle import Move, Status, require
from registry.recorder import Service, records_refusals
from registry.roles import Action, Role
from registry.rules import blocks, failing_gates


def evidence_digest(version: dict[str, Any], gate_digests: dict[str, str]) -> str:
    """What a sign-off signs: artifact, datasets, policy and gate results."""
    return hashlib.sha256(
        canonical_bytes(
            {
                "artifact": version["artifact_digest"],
                "train": version["train_digest"],
                "validation": version["validation_digest"],
                "policy": version["policy_digest"],
                "gates": gate_digests,
            }
        )
    ).hexdigest()


def _require_own(actor: Principal, row: dict[str, Any], model: str, version: int) -> None:
    """A data scientist evaluates only the versions they submitted."""
    if actor.role == Role.DATA_SCIENTIST and row["submitted_by"] != actor.name:
        raise PermissionDenied(
            f"'{actor.name}' may evaluate only their own versions; "
            f"{model} v{version} was submitted by '{row['submitted_by']}'"
        )


class Evaluations(Service):
    @records_refusals()
    def start_evaluation(
        self, actor: Principal, model: str, version: int, *, policy_id: str | None = None
    ) -> int:
        """Open evaluation N+1. ``policy_id`` (``id`` or ``id@version``) re-evaluates
        under another policy: an explicit act, recorded with the new policy;
        results under the old policy stay in the trail. A policy with another
        ``decision_cutoff`` is refused: the cutoff is fixed at submission."""
        rec = self.recorder
        rec.authorize(actor, Action.EVALUATE, model=model, version=version)
        with rec.transaction() as conn:
            new_policy = reads.adopted_policy(conn, policy_id) if policy_id else None
            row = reads.version_row(conn, model, version)
            _require_own(actor, row, model, version)
            require(Move.EVALUATE, reads.status_of(row, rec.clock()), subject=f"{model} v{version}")
            if new_policy is not None and new_policy.decision_cutoff != Decimal(row["cutoff"]):
                # the gates measure, and serving decides, at the cutoff recorded at submission
                raise InputError(
                    f"policy {new_policy.ref} decides at {new_policy.decision_cutoff}, but "
                    f"{model} v{version} was submitted at cutoff {row['cutoff']}; a version "
                    f"keeps its cutoff: submit the model again with --policy {new_policy.ref}"
                )
            number = int(row["evaluation"]) + 1
            data: dict[str, Any] = {"evaluation": number}
            index: dict[str, Any] = {"evaluation": number, "status": Status.EVALUATING.value}
            if new_policy is not None and new_policy.digest != row["policy_digest"]:
                data["policy"] = new_policy.canonical()
                data["policy_digest"] = index["policy_digest"] = new_policy.digest
            rec.record_event(
                conn,
                tag=EventType.EVALUATION_STARTED,
                actor=actor.name,
                model=model,
                version=version,
                data=data,
                index=index,
            )
        return number

    def evaluate(
        self,
        actor: Principal,
        model: str,
        version: int,
        *,
        policy_id: str | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> Status:
        """Run every gate of the version's recorded policy and record the results.

        Fail closed: inputs that cannot be loaded, or a gate that raises, give
        "error" verdicts, and a blocking gate that did not pass fails the
        version.
        """
        number = self.start_evaluation(actor, model, version, policy_id=policy_id)
        return self.run_evaluation(actor, model, version, number, progress=progress)

    def run_evaluation(
        self,
        actor: Principal,
        model: str,
        version: int,
        number: int,
        *,
        progress: Callable[[str], None] | None = None,
    ) -> Status:
        """Measure every gate for an evaluation opened by :meth:`start_evaluation`."""
        from validation.contract import DataContract
        from validation.inputs import GateInputs
        from validation.runner import error_result, run_policy

        rec = self.recorder
        rec.authorize(actor, Action.EVALUATE, model=model, version=version)
        with rec.reading() as conn:
            sub = reads.submission(conn, rec.ledger, model, version)
            policy = reads.recorded_policy(conn, rec.ledger, model, version)
        say = progress or (lambda _message: None)
        try:
            say("loading the artifact and datasets")
            model_text = rec.store.get(sub["artifact"]["digest"]).decode("utf-8")
            frames = {
                role: inputs.load_frame(
                    rec.store.get(sub[role]["digest"]),
                    sub[role]["format"],
                    source=role,
                    limits=rec.decode_limits,
                )
                for role in ("train", "validation")
            }
            gate_inputs = GateInputs(
                model_text=model_text,
                train=frames["train"],
                validation=frames["validation"],
                target=sub["target"],
                protected=list(sub["protected"]),
                cutoff=Decimal(sub["cutoff"]),
                reason_texts=dict(sub.get("reason_texts", {})),
                schema_suite=sub.get("schema_suite"),
                recorded_contract=(
                    DataContract.from_canonical(sub["contract"]) if "contract" in sub else None
                ),
            )
        except GovregError as exc:
            measured = [
                error_result(spec, f"inputs could not be loaded: {exc}") for spec in policy.gates
            ]
        else:
            measured = run_policy(
                policy, gate_inputs, before_gate=lambda spec: say(f"gate {spec.id} ({spec.kind})")
            )
        results = [result.canonical() for result in measured]
        return self.record_evaluation(actor, model, version, number, results)

    @records_refusals()
    def record_evaluation(
        self,
        actor: Principal,
        model: str,
        version: int,
        evaluation: int,
        results: list[dict[str, Any]],
    ) -> Status:
        """Record one ``gate.evaluated`` per result of evaluation ``evaluation`` and
        its outcome: the seam for gate results measured elsewhere
        (:meth:`run_evaluation` records what it measured through it; tests record
        constructed results to reach a state without running gates). The CLI and
        the HTTP API offer no such call.

        Guarded as every evaluation is: the role may evaluate, a data scientist
        only their own version, the version is evaluating, on this evaluation.
        Each result is canonical gate-result data with at least ``gate_id``,
        ``kind``, ``verdict`` and ``blocking``; the version's recorded policy,
        not the result, decides which gates block. Fail closed: no results, or a
        blocking gate that did not pass, means ``gates_failed``.
        """
        rec = self.recorder
        rec.authorize(actor, Action.EVALUATE, model=model, version=version)
        with rec.transaction() as conn:
            row = reads.version_row(conn, model, version)
            _require_own(actor, row, model, version)
            require(
                Move.COMPLETE_EVALUATION,
                reads.status_of(row, rec.clock()),
                subject=f"{model} v{version}",
            )
            if int(row["evaluation"]) != evaluation:
                raise InputError(
                    f"{model} v{version} is on evaluation {row['evaluation']}, not {evaluation}"
                )
            events: list[NewEvent] = []
            digests: dict[str, str] = {}
            inputs_digests = {
                "artifact": row["artifact_digest"],
                "train": row["train_digest"],
                "validation": row["validation_digest"],
                "policy": row["policy_digest"],
            }
            # The recorded policy decides which gates block, not the caller's results.
            policy = reads.recorded_policy(conn, rec.ledger, model, version)
            failed = failing_gates(policy, results)
            for result in results:
                digest = hashlib.sha256(canonical_bytes(result)).hexdigest()
                digests[result["gate_id"]] = digest
                events.append(
                    NewEvent(
                        type=EventType.GATE_EVALUATED,
                        actor=actor.name,
                        model=model,
                        version=version,
                        data={
                            "evaluation": evaluation,
                            "gate_id": result["gate_id"],
                            "kind": result["kind"],
                            "verdict": result["verdict"],
                            "blocking": blocks(policy, result),
                            "policy_digest": row["policy_digest"],
                            "result_digest": digest,
                            "inputs": inputs_digests,
                            "result": result,
                        },
                        index={
                            "evaluation": evaluation,
                            "gate_id": result["gate_id"],
                            "verdict": result["verdict"],
                            "result_digest": digest,
                            "inputs": inputs_digests,
                            "values": result.get("values", {}),
                        },
                    )
                )
            status = Status.GATES_FAILED if failed else Status.AWAITING_SIGNOFF
            evidence = evidence_digest(row, digests)
            events.append(
                NewEvent(
                    type=EventType.EVALUATION_COMPLETED,
                    actor=actor.name,
                    model=model,
                    version=version,
                    data={
                        "evaluation": evaluation,
                        "status": status.value,
                        "evidence_digest": evidence,
                        "reason": "; ".join(failed) or None,
                        "gates": digests,
                    },
                    index={
                        "evaluation": evaluation,
                        "status": status.value,
                        "evidence_digest": evidence,
                    },
                )
            )
            rec.record(conn, events)
        return status
