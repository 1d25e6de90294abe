"""The report and evidence use cases, in the service-layer style.

Both take the Registry and the acting Principal, check ``Action.READ``, read
the version's evidence, and record what they produced in the ledger
(``report.generated`` with the PDF's SHA-256, ``evidence.exported`` with the
bundle's) through ``registry.transaction()`` + ``registry.record()``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from audits.events import EventType, NewEvent
from audits.records import RecordNotProved, prove_record
from core.clock import isoformat, utcnow
from core.errors import GovregError, NotFoundError
from registry.roles import Action
from reports import bundle as bundles
from reports import evidence as collector
from reports import report as pages

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from registry.services import Principal, Registry
    from reports.curves import Curves
    from reports.evidence import Evidence


@dataclass(frozen=True)
class Rendered:
    pdf: bytes
    html: str
    evidence: Evidence

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.pdf).hexdigest()


def check_evidence(evidence: Evidence, public_key: Ed25519PublicKey | None) -> dict[str, Any]:
    """Recompute every leaf from its envelope, prove it into the checkpoint, check the
    checkpoint's signature. Never raises: the report states the result."""
    cp = evidence.checkpoint
    problems: list[str] = []
    for record in evidence.events:
        env = record["envelope"]
        seq = int(env["seq"])
        try:
            prove_record(env, evidence.proofs[seq], cp)
        except RecordNotProved as exc:
            problems.append(
                {
                    "leaf": f"seq {seq}: leaf hash does not match its envelope",
                    "inclusion": f"seq {seq}: inclusion proof does not verify against "
                    f"checkpoint {cp.size}",
                }.get(exc.reason, str(exc))
            )
    signed = "signature not checked (no public key given)"
    if public_key is not None:
        try:
            cp.verify(public_key)
            signed = f"signature verified with key {cp.key_fingerprint}"
        except GovregError as exc:
            problems.append(str(exc))
            signed = "signature does NOT verify"
    n = len(evidence.events)
    if problems:
        summary = f"VERIFICATION FAILED: {problems[0]}" + (
            f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        )
    else:
        summary = (
            f"Verified: all {n} events of this version recomputed from their stored envelopes "
            f"and proved included in signed checkpoint {cp.size}; {signed}."
        )
    return {"ok": not problems, "summary": summary, "problems": problems, "events": n}


def _curves(registry: Registry, data: dict[str, Any]) -> tuple[Curves | None, str]:
    """The curves of the version's performance gate, or None and what the report says in
    their place. Read from the gate result; a result recorded before the gate kept them
    has them computed with LightGBM from the stored artifact and validation set."""
    from reports import curves as drawn

    gate = next((g for g in data["gates"] if g.get("kind") == "performance"), None)
    if gate is None:
        return None, pages.CURVES_NOT_RECORDED
    try:
        found = drawn.recorded(gate)
    except GovregError as exc:
        return None, f"ROC curve and score histograms: the recorded curves cannot be read: {exc}"
    if found is not None:
        return found, ""
    try:
        return drawn.compute(registry.store, data["submission"]), ""
    except NotFoundError:
        missing = "the stored artifact or validation set is not in the store"
        return None, f"{pages.CURVES_NOT_RECORDED} ({missing})"
    except GovregError as exc:
        # the gate values still show; the report says why the charts are missing
        return (
            None,
            f"{pages.CURVES_NOT_RECORDED} (the stored validation set cannot be scored: {exc})",
        )


def render(
    registry: Registry,
    actor: Principal,
    model: str,
    version: int,
    *,
    public_key: Ed25519PublicKey | None,
    generated_at: str | None = None,
) -> Rendered:
    """Read, verify and render (records nothing)."""
    registry.authorize(actor, Action.READ, model=model, version=version)
    registry.ensure_covered(model, version)
    evidence = collector.collect(
        registry, actor, model, version, generated_at=generated_at or isoformat(utcnow())
    )
    verification = check_evidence(evidence, public_key)
    evidence.data["verification"] = verification
    curves, missing = _curves(registry, evidence.data)
    if curves is not None:
        evidence.data["curves"] = curves.public()
    context = pages.report_context(evidence.data, curves, verification, curves_missing=missing)
    html = pages.render_html(context)
    pdf = pages.render_pdf(html, pages.evidence_json(evidence.data))
    return Rendered(pdf=pdf, html=html, evidence=evidence)


def generate_report(
    registry: Registry,
    actor: Principal,
    model: str,
    version: int,
    *,
    public_key: Ed25519PublicKey | None,
) -> Rendered:
    """Render the report and record ``report.generated`` with the PDF's SHA-256."""
    rendered = render(registry, actor, model, version, public_key=public_key)
    with registry.transaction() as conn:
        registry.record(
            conn,
            [
                NewEvent(
                    type=EventType.REPORT_GENERATED,
                    actor=actor.name,
                    model=model,
                    version=version,
                    data={
                        "report_sha256": rendered.sha256,
                        "bytes": len(rendered.pdf),
                        "generated_at": rendered.evidence.data["generated_at"],
                        "checkpoint_size": rendered.evidence.checkpoint.size,
                        "verified": rendered.evidence.data["verification"]["ok"],
                    },
                    index={"report_sha256": rendered.sha256},
                )
            ],
        )
    return rendered


@dataclass(frozen=True)
class Exported:
    bundle: bytes
    report: Rendered
    evidence: Evidence

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.bundle).hexdigest()


def export_evidence(
    registry: Registry,
    actor: Principal,
    model: str,
    version: int,
    *,
    public_key: Ed25519PublicKey | None,
) -> Exported:
    """Report (recorded and checkpointed), then the bundle; records ``evidence.exported``."""
    rendered = generate_report(registry, actor, model, version, public_key=public_key)
    evidence = collector.collect(
        registry, actor, model, version, generated_at=rendered.evidence.data["generated_at"]
    )
    data = bundles.build_bundle(evidence, rendered.pdf)
    digest = hashlib.sha256(data).hexdigest()
    with registry.transaction() as conn:
        registry.record(
            conn,
            [
                NewEvent(
                    type=EventType.EVIDENCE_EXPORTED,
                    actor=actor.name,
                    model=model,
                    version=version,
                    data={
                        "bundle_sha256": digest,
                        "bytes": len(data),
                        "report_sha256": rendered.sha256,
                        "checkpoint_size": evidence.checkpoint.size,
                        "events": len(evidence.events),
                    },
                    index={"bundle_sha256": digest, "report_sha256": rendered.sha256},
                )
            ],
        )
    return Exported(bundle=data, report=rendered, evidence=evidence)
