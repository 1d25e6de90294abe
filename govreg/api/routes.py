"""The /v1 governance endpoints. Handlers parse, call one service function, return a
schema; each is registered with the action it needs (govreg.api.deps.Endpoints).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import BackgroundTasks, File, Form, Request, Response, UploadFile

from core.errors import InputError, NotFoundError, TooManyRequests
from core.files import ImportedPath, components
from govreg.api import schemas
from govreg.api.deps import AdoptRef, Caller, Ctx, Endpoints, Model, PolicyRef, VersionNo
from govreg.context import Context
from registry.roles import Action, Role
from registry.services import Principal

api = Endpoints()
endpoint = api


def _version_status(ctx: Context, caller: Principal, model: str, version: int) -> schemas.StatusOut:
    shown = ctx.registry.show_version(caller, model, version)
    return schemas.StatusOut(model=model, version=version, status=shown["status"])


# -- versions ---------------------------------------------------------------------
@endpoint("GET", "/versions", Action.READ)
def list_all_versions(ctx: Ctx, caller: Caller) -> list[dict[str, Any]]:
    """Every version of every model."""
    return ctx.registry.list_versions(caller)


@endpoint("GET", "/models/{model}/versions", Action.READ, errors=(404,))
def list_versions(model: Model, ctx: Ctx, caller: Caller) -> list[dict[str, Any]]:
    return ctx.registry.list_versions(caller, model)


async def _save_upload(upload: UploadFile, folder: Path, name: str, limit: int) -> Path:
    """Copy one uploaded file into ``folder``. The gate has already capped the whole
    body at ``limit``; the per-file check stays for an app run without the gate."""
    from fastapi import HTTPException

    suffix = Path(upload.filename or "").suffix.lower()
    path = folder / f"{name}{suffix}"
    size = 0
    with path.open("wb") as fh:
        while chunk := await upload.read(1024 * 1024):
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"{name} upload is larger than {limit} bytes")
            fh.write(chunk)
    return path


@endpoint(
    "POST",
    "/models/{model}/versions",
    Action.SUBMIT,
    errors=(413, 422),
    status_code=201,
    body_limit="max_upload_bytes",
)
async def submit_upload(
    model: Model,
    ctx: Ctx,
    caller: Caller,
    train: Annotated[UploadFile, File(description="CSV or Parquet (by file name suffix)")],
    validation: Annotated[UploadFile, File(description="CSV or Parquet")],
    target: Annotated[str, Form(min_length=1)],
    protected: Annotated[str, Form(min_length=1, description="comma-separated")],
    artifact: Annotated[UploadFile | None, File(description="LightGBM native text model")] = None,
    artifact_uri: Annotated[
        str | None,
        Form(
            description="instead of an upload: runs:/<run_id>/<path> or "
            "models:/<name>/<version> on the server's MLflow tracking server"
        ),
    ] = None,
    policy: Annotated[str | None, Form()] = None,
    cutoff: Annotated[str | None, Form(description=schemas.CUTOFF)] = None,
    reasons: Annotated[str | None, Form(description=schemas.REASONS)] = None,
    lineage: Annotated[
        str | None,
        Form(description="a JSON object recorded as the version's lineage (no 'mlflow' key)"),
    ] = None,
) -> schemas.VersionCreated:
    """Submit a candidate with uploaded files (the model uploaded or named by an MLflow URI)."""
    import json

    from starlette.concurrency import run_in_threadpool

    reason_texts: dict[str, Any] = {}
    if reasons:
        try:
            loaded = json.loads(reasons)
        except ValueError as exc:
            raise InputError(f"reasons is not JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise InputError("reasons must be a JSON object mapping feature to reason text")
        reason_texts = loaded  # the service checks the texts (one per feature or per category)
    given_lineage: Any = None
    if lineage:
        try:
            given_lineage = json.loads(lineage)
        except (ValueError, RecursionError) as exc:
            raise InputError(f"lineage is not JSON: {str(exc)[:120]}") from None
    if (artifact is None) == (artifact_uri is None):
        raise InputError("send the model as the 'artifact' file or as 'artifact_uri', not both")
    if artifact_uri is not None and not artifact_uri.startswith(("runs:/", "models:/")):
        raise InputError("artifact_uri must be runs:/<run_id>/<path> or models:/<name>/<version>")
    limit = ctx.settings.max_upload_bytes
    with tempfile.TemporaryDirectory(prefix="govreg-upload-") as tmp:
        folder = Path(tmp)
        uploads = [("train", train), ("validation", validation)]
        if artifact is not None:
            uploads.append(("artifact", artifact))
        saved = {name: await _save_upload(upload, folder, name, limit) for name, upload in uploads}
        # named relative to the upload folder: refusals say "train.csv", never the server's path
        paths = {name: ImportedPath(folder, path.name) for name, path in saved.items()}
        number = await run_in_threadpool(
            ctx.registry.submit,
            caller,
            model,
            artifact=artifact_uri or paths["artifact"],
            train=paths["train"],
            validation=paths["validation"],
            target=target,
            protected=[c.strip() for c in protected.split(",") if c.strip()],
            policy_id=policy,
            cutoff=cutoff,
            reason_texts=reason_texts,
            lineage=given_lineage,
        )
    return schemas.VersionCreated(model=model, version=number, status="submitted")


def _import_path(ctx: Context, relative: str, field: str) -> ImportedPath:
    """A file named inside the import folder; it is opened (once, relative to the
    folder, following no symbolic link) only when the submission reads it."""
    base = ctx.settings.import_dir
    if base is None:
        raise InputError("submission by reference is off: the server has no GOVREG_IMPORT_DIR")
    components(relative, what=field)  # refuse '..', absolute paths, NUL bytes now
    return ImportedPath(base.expanduser(), relative)


@endpoint(
    "POST", "/models/{model}/versions/by-reference", Action.SUBMIT, errors=(422,), status_code=201
)
def submit_reference(
    model: Model, body: schemas.VersionByReference, ctx: Ctx, caller: Caller
) -> schemas.VersionCreated:
    """Submit a candidate whose files the server reads from its import folder."""
    number = ctx.registry.submit(
        caller,
        model,
        artifact=body.artifact
        if body.artifact.startswith(("runs:/", "models:/"))
        else _import_path(ctx, body.artifact, "artifact"),
        train=_import_path(ctx, body.train, "train"),
        validation=_import_path(ctx, body.validation, "validation"),
        target=body.target,
        protected=body.protected,
        policy_id=body.policy,
        cutoff=body.cutoff,
        reason_texts={
            k: v if isinstance(v, str) else v.model_dump() for k, v in body.reasons.items()
        },
        lineage=body.lineage,
    )
    return schemas.VersionCreated(model=model, version=number, status="submitted")


@endpoint("GET", "/models/{model}/versions/{version:int}", Action.READ, errors=(404,))
def show_version(model: Model, version: VersionNo, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    """Everything recorded about a version: status, digests, gates, sign-offs."""
    return ctx.registry.show_version(caller, model, version)


@endpoint("GET", "/models/{model}/versions/{version:int}/gates", Action.READ, errors=(404,))
def gate_results(
    model: Model, version: VersionNo, ctx: Ctx, caller: Caller
) -> list[dict[str, Any]]:
    """The gate results of the current evaluation."""
    gates: list[dict[str, Any]] = ctx.registry.show_version(caller, model, version)["gates"]
    return gates


@endpoint(
    "POST",
    "/models/{model}/versions/{version:int}/evaluations",
    Action.EVALUATE,
    errors=(404, 409, 422),
    status_code=202,
)
def start_evaluation(
    model: Model,
    version: VersionNo,
    ctx: Ctx,
    caller: Caller,
    background: BackgroundTasks,
    body: schemas.EvaluationStart | None = None,
) -> schemas.EvaluationStatus:
    """Open an evaluation and run its gates in the background; poll its status."""
    number = ctx.registry.start_evaluation(
        caller, model, version, policy_id=body.policy if body else None
    )
    background.add_task(ctx.registry.run_evaluation, caller, model, version, number)
    return schemas.EvaluationStatus(
        model=model, version=version, evaluation=number, state="running", status="evaluating"
    )


@endpoint(
    "GET",
    "/models/{model}/versions/{version:int}/evaluations/{number:int}",
    Action.READ,
    errors=(404,),
)
def evaluation_status(
    model: Model, version: VersionNo, number: VersionNo, ctx: Ctx, caller: Caller
) -> schemas.EvaluationStatus:
    """State of an evaluation, read from the ledger (any worker can answer)."""
    shown = ctx.registry.show_version(caller, model, version)
    if number < 1 or number > shown["evaluation"]:
        raise NotFoundError(f"{model} v{version} has no evaluation {number}")
    running = number == shown["evaluation"] and shown["status"] == "evaluating"
    return schemas.EvaluationStatus(
        model=model,
        version=version,
        evaluation=number,
        state="running" if running else "completed",
        status=shown["status"],
    )


@endpoint(
    "POST",
    "/models/{model}/versions/{version:int}/signoffs",
    Action.SIGN,
    errors=(404, 409, 422),
    status_code=201,
)
def signoff(
    model: Model, version: VersionNo, body: schemas.SignoffCreate, ctx: Ctx, caller: Caller
) -> schemas.StatusOut:
    """Approve or reject; the last required approval approves the version."""
    status = ctx.registry.signoff(
        caller,
        model,
        version,
        role=body.role,
        approve=body.decision == "approve",
        comment=body.comment,
    )
    return schemas.StatusOut(model=model, version=version, status=status.value)


@endpoint(
    "POST", "/models/{model}/versions/{version:int}/promote", Action.PROMOTE, errors=(404, 409, 422)
)
def promote(
    model: Model, version: VersionNo, body: schemas.AliasSet, ctx: Ctx, caller: Caller
) -> schemas.StatusOut:
    ctx.registry.promote(caller, model, version, alias=body.alias)
    return _version_status(ctx, caller, model, version)


def _state_route(name: str) -> None:
    def handler(
        model: Model, version: VersionNo, body: schemas.Reason, ctx: Ctx, caller: Caller
    ) -> schemas.StatusOut:
        getattr(ctx.registry, name)(caller, model, version, reason=body.reason)
        return _version_status(ctx, caller, model, version)

    handler.__name__ = name
    handler.__doc__ = f"{name.capitalize()} a version, with a reason (recorded)."
    endpoint(
        "POST",
        f"/models/{{model}}/versions/{{version:int}}/{name}",
        Action(name),
        errors=(404, 409, 422),
    )(handler)


for _name in ("suspend", "reinstate", "retire"):
    _state_route(_name)


# -- reports and evidence (auditors and every reader) -----------------------------
def _download(data: bytes, media_type: str, filename: str, sha256: str) -> Response:
    return Response(
        content=data,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-SHA256": sha256,
        },
    )


# what a 429 for a busy worker asks a client to wait: about one report's rendering
EXPORT_RETRY_SECONDS = 15


@contextmanager
def export_slot(request: Request) -> Iterator[None]:
    """One of the worker's GOVREG_MAX_CONCURRENT_EXPORTS slots for rendering a report or
    an evidence bundle, held until it is done; none free: 429, nothing started."""
    slots: threading.BoundedSemaphore = request.app.state.exports
    if not slots.acquire(blocking=False):
        limit = request.app.state.context.settings.max_concurrent_exports
        raise TooManyRequests(
            f"this server worker is rendering {limit} reports or evidence bundles already "
            f"(GOVREG_MAX_CONCURRENT_EXPORTS); retry after {EXPORT_RETRY_SECONDS} s",
            retry_after=EXPORT_RETRY_SECONDS,
        )
    try:
        yield
    finally:
        slots.release()


PDF: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/pdf": {}}, "description": "the PDF/A-3b report"}
}
ZIP: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/zip": {}}, "description": "the evidence bundle"}
}


@endpoint(
    "GET", "/models/{model}/versions/{version:int}/report", Action.READ, errors=(404,), success=PDF
)
def download_report(
    model: Model, version: VersionNo, request: Request, ctx: Ctx, caller: Caller
) -> Response:
    """The version's PDF/A-3b compliance report; its SHA-256 is recorded in the ledger."""
    from audits.signing import load_public_key
    from reports.service import generate_report

    with export_slot(request):
        key = load_public_key(ctx.settings.public_key_path)
        rendered = generate_report(ctx.registry, caller, model, version, public_key=key)
    return _download(rendered.pdf, "application/pdf", f"{model}-v{version}.pdf", rendered.sha256)


@endpoint(
    "GET",
    "/models/{model}/versions/{version:int}/evidence",
    Action.READ,
    errors=(404,),
    success=ZIP,
)
def download_evidence(
    model: Model, version: VersionNo, request: Request, ctx: Ctx, caller: Caller
) -> Response:
    """The evidence bundle (events, inclusion proofs, signed checkpoint, report), verifiable
    offline with `govreg evidence verify bundle.zip --public-key KEY`."""
    from audits.signing import load_public_key
    from reports.service import export_evidence

    with export_slot(request):
        key = load_public_key(ctx.settings.public_key_path)
        exported = export_evidence(ctx.registry, caller, model, version, public_key=key)
    return _download(
        exported.bundle, "application/zip", f"{model}-v{version}-evidence.zip", exported.sha256
    )


# -- policies, audit, principals -------------------------------------------------
@endpoint("GET", "/policies", Action.READ)
def list_policies(ctx: Ctx, caller: Caller) -> list[dict[str, Any]]:
    """Every policy version in the ledger: proposed or adopted."""
    return ctx.registry.list_policies(caller)


@endpoint("GET", "/policies/{policy_ref}", Action.READ, errors=(404, 422))
def get_policy(policy_ref: PolicyRef, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    """An adopted policy (``id`` or ``id@version``) in canonical form, with its digest."""
    from policies.schema import PolicyError

    try:
        policy = ctx.registry.get_policy(caller, policy_ref)
    except PolicyError as exc:  # none adopted under that reference: nothing to show
        raise NotFoundError(str(exc)) from exc
    return {"digest": policy.digest, "policy": policy.canonical()}


@endpoint("POST", "/policies", Action.PROPOSE_POLICY, errors=(422,), status_code=201)
def propose_policy(body: schemas.PolicyProposal, ctx: Ctx, caller: Caller) -> dict[str, Any]:
    """Propose a policy version; it takes effect only after a compliance officer approves."""
    from pydantic import ValidationError

    from policies.schema import Policy

    try:
        policy = Policy.model_validate(body.policy)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise InputError(f"policy key '{key}': {first['msg']}") from exc
    ctx.registry.propose_policy(caller, policy)
    return {"policy": policy.ref, "digest": policy.digest, "status": "proposed"}


@endpoint(
    "POST",
    "/policies/{policy_ref}/approve",
    Action.APPROVE_POLICY,
    errors=(404, 422),
)
def approve_policy(
    policy_ref: AdoptRef, body: schemas.PolicyApproval, ctx: Ctx, caller: Caller
) -> dict[str, Any]:
    """Adopt a proposed policy version (a compliance officer other than its proposer)."""
    policy = ctx.registry.approve_policy(caller, policy_ref, comment=body.comment)
    return {"policy": policy.ref, "digest": policy.digest, "status": "adopted"}


@endpoint("GET", "/audit/events", Action.READ)
def audit_events(
    ctx: Ctx, caller: Caller, model: Model | None = None, limit: int = 1000, after: int = 0
) -> list[schemas.EventOut]:
    """The decrypted trail, oldest first (page with ``after`` = last seq seen)."""
    out: list[schemas.EventOut] = []
    for event in ctx.registry.audit_log(caller, model=model):
        if event.seq <= after:
            continue
        out.append(schemas.EventOut(**event.public()))
        if len(out) >= min(limit, 10000):
            break
    return out


@endpoint("POST", "/audit/verify", Action.VERIFY, errors=(409,))
def audit_verify(ctx: Ctx, caller: Caller) -> schemas.VerifyOut:
    """Verify the ledger with the server's configured public key and anchors."""
    from audits.signing import load_public_key

    report = ctx.registry.verify(
        caller,
        load_public_key(ctx.settings.public_key_path),
        anchor_dir=ctx.settings.anchors_path,
    )
    return schemas.VerifyOut(
        ok=True,
        size=report.size,
        root=report.root.hex(),
        checkpoints=report.checkpoints,
        anchors=report.anchors,
        key_fingerprint=report.key_fingerprint,
        warnings=report.warnings,
    )


@endpoint("GET", "/persons", Action.MANAGE_PRINCIPALS)
def list_persons(ctx: Ctx, caller: Caller) -> list[schemas.PersonOut]:
    """Every person, with who created it."""
    return [schemas.PersonOut(**p) for p in ctx.registry.list_persons(caller)]


@endpoint("POST", "/persons", Action.MANAGE_PRINCIPALS, errors=(422,), status_code=201)
def create_person(body: schemas.PersonCreate, ctx: Ctx, caller: Caller) -> schemas.PersonOut:
    """Record a person; principals belong to persons, and sign-offs count persons."""
    return schemas.PersonOut(**ctx.registry.create_person(caller, body.id, display=body.display))


@endpoint("GET", "/principals", Action.MANAGE_PRINCIPALS)
def list_principals(ctx: Ctx, caller: Caller) -> list[schemas.PrincipalPublic]:
    return [schemas.PrincipalPublic(**p.public()) for p in ctx.registry.list_principals(caller)]


@endpoint("POST", "/principals", Action.MANAGE_PRINCIPALS, errors=(404, 422), status_code=201)
def create_principal(
    body: schemas.PrincipalCreate, ctx: Ctx, caller: Caller
) -> schemas.PrincipalCreated:
    """Create a principal with one role; its API key is in this response only."""
    if body.role == Role.SERVICE and body.models is None:
        raise InputError("a service principal needs models: the models it may score and fetch")
    principal, key = ctx.registry.create_principal(
        caller,
        body.name,
        body.role,
        person=body.person,
        models=body.models,
        expires_at=body.expires_at,
    )
    return schemas.PrincipalCreated(**principal.public(), api_key=key)


@endpoint(
    "DELETE",
    "/principals/{name}",
    Action.MANAGE_PRINCIPALS,
    errors=(404, 409, 422),
    status_code=204,
)
def revoke_principal(name: str, ctx: Ctx, caller: Caller) -> None:
    ctx.registry.revoke_principal(caller, name)
