"""Policy changes: proposing a new policy version, its adoption by a compliance
officer who did not propose it, and reading the policies in force.

The policy files, their schema and digests are :mod:`policies`; which policy is
in force for a reference is :func:`registry.reads.adopted_policy`.
"""

from __future__ import annotations

import json
from typing import Any

from audits.events import EventType
from core.errors import InputError, NotFoundError, PermissionDenied
from policies.loader import all_policies
from policies.schema import Policy
from registry import reads
from registry.identity import Principal
from registry.projection import DatabaseView
from registry.recorder import Service, records_refusals
from registry.roles import Action

_LISTED = ("id", "version", "digest", "status", "proposed_by", "approved_by")


class PolicyChanges(Service):
    def propose_policy(self, actor: Principal, policy: Policy) -> None:
        """Record a new policy version; it takes effect only once approved."""
        self.recorder.authorize(actor, Action.PROPOSE_POLICY)
        with self.recorder.transaction() as conn:
            existing = DatabaseView(conn).get("policies", (policy.id, policy.version))
            shipped = any((p.id, p.version) == (policy.id, policy.version) for p in all_policies())
            if shipped:
                raise InputError(
                    f"policy {policy.ref} ships with govreg and is in force; "
                    "propose a new version instead"
                )
            if existing is not None:
                same = existing["digest"] == policy.digest
                raise InputError(
                    f"policy {policy.ref} was already proposed"
                    + (" (same text)" if same else " with other text; raise its version")
                )
            self.recorder.record_event(
                conn,
                tag=EventType.POLICY_PROPOSED,
                actor=actor.name,
                data={"policy": policy.canonical(), "digest": policy.digest},
                index={"policy": policy.ref, "digest": policy.digest},
            )

    @records_refusals(model=None, version=None)
    def approve_policy(self, actor: Principal, ref: str, *, comment: str) -> Policy:
        """Adopt a proposed policy version (compliance officer; not its proposer)."""
        self.recorder.authorize(actor, Action.APPROVE_POLICY)
        if not comment.strip():
            raise InputError("approving a policy needs a comment: pass --comment")
        wanted, _, number = ref.partition("@")
        if not number.isdigit():
            raise InputError(f"name the version to approve: {wanted}@VERSION")
        with self.recorder.transaction() as conn:
            row = DatabaseView(conn).get("policies", (wanted, int(number)))
            if row is None:
                raise NotFoundError(f"no policy {ref} was proposed; see `govreg policies list`")
            if row["status"] == "adopted":
                raise InputError(f"policy {ref} is already adopted")
            if row["proposed_by"] == actor.name:
                raise PermissionDenied(
                    f"'{actor.name}' proposed policy {ref} and may not approve it "
                    "(segregation of duties)"
                )
            policy = Policy.model_validate(json.loads(row["canonical"]))
            self.recorder.record_event(
                conn,
                tag=EventType.POLICY_APPROVED,
                actor=actor.name,
                data={
                    "id": policy.id,
                    "version": policy.version,
                    "digest": policy.digest,
                    "comment": comment.strip(),
                },
                index={"policy": policy.ref, "digest": policy.digest},
            )
        return policy

    def list_policies(self, actor: Principal) -> list[dict[str, Any]]:
        self.recorder.authorize(actor, Action.READ)
        with self.recorder.reading() as conn:
            rows = DatabaseView(conn).where("policies")
        shipped = [
            {
                "id": p.id,
                "version": p.version,
                "digest": p.digest,
                "status": "shipped",
                "proposed_by": None,
                "approved_by": None,
            }
            for p in all_policies()
        ]
        recorded = [{k: r[k] for k in _LISTED} for r in rows]
        return sorted(shipped + recorded, key=lambda r: (r["id"], r["version"]))

    def get_policy(self, actor: Principal, ref: str) -> Policy:
        """An adopted policy (``id`` or ``id@version``)."""
        self.recorder.authorize(actor, Action.READ)
        with self.recorder.reading() as conn:
            return reads.adopted_policy(conn, ref)
