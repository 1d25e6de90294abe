"""The fail-closed loader: a scorer only for what the ledger proves approved.

``load_approved(registry, name, alias="champion", config=...)`` runs, in
order, before a byte of the artifact is parsed (see :mod:`serving.errors`):

1-3. :func:`serving.approval.check_approval`: standing, gates and sign-offs,
     coverage by a checkpoint signed by the pinned key (never read from the
     database);
4.   :func:`read_artifact`: open the content-addressed blob without
     following symlinks, refuse anything but a regular file under the size
     cap, read it once and hash exactly those bytes;
5.   :func:`parse_model`: only a well-formed LightGBM native text model is
     parsed, from the bytes just hashed; pickles, archives and malformed
     text are refused unread (:mod:`core.model_text`).

Every load and every refusal is a ledger event (``serving.loaded``,
``serving.refused``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audits.events import EventType, NewEvent
from core.clock import utcnow
from core.errors import GovregError, InputError, IntegrityError, NotFoundError
from serving.approval import Approval, check_approval
from serving.errors import Check, LoadRefused
from serving.scoring import Scorer

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from registry.services import Registry

DEFAULT_MAX_ARTIFACT_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class ServingConfig:
    """Serving's own configuration; the public key is pinned here, not read from the ledger."""

    public_key: Ed25519PublicKey
    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES
    actor: str = "serving"


def read_artifact(path: Path, digest: str, *, max_bytes: int, subject: str) -> bytes:
    """Check 4: the exact bytes at ``path``, if they hash to ``digest``."""
    if Path(os.path.realpath(path)) != Path(os.path.abspath(path)):
        raise LoadRefused(Check.FILE, subject, f"the artifact path {path} goes through a symlink")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        raise LoadRefused(Check.FILE, subject, f"the artifact blob {digest} is missing") from exc
    except OSError as exc:  # ELOOP: the last component is a symlink
        raise LoadRefused(
            Check.FILE, subject, f"the artifact {path} cannot be opened safely ({exc.strerror})"
        ) from exc
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise LoadRefused(Check.FILE, subject, f"the artifact {path} is not a regular file")
        if info.st_size > max_bytes:
            raise LoadRefused(
                Check.FILE,
                subject,
                f"the artifact is {info.st_size} bytes, over the cap of {max_bytes}",
            )
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise LoadRefused(Check.FILE, subject, f"the artifact grew past the cap of {max_bytes}")
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise LoadRefused(
            Check.DIGEST,
            subject,
            f"the artifact's SHA-256 is {actual}, the approved digest is {digest}",
        )
    return data


def parse_model(data: bytes, *, subject: str) -> Any:
    """Check 5: a LightGBM booster from these bytes, if they are a native text model.

    The same structural check as submission (:mod:`core.model_text`, through
    :func:`registry.inputs.load_lightgbm_text`) runs before anything parses
    them. LightGBM then parses them in this process: their SHA-256 is the
    approved digest, so they are the bytes that LightGBM already read in a
    child process at submission (:mod:`registry.model_probe`).
    """
    from registry.inputs import load_lightgbm_text

    try:
        return load_lightgbm_text(data, source=subject)
    except InputError as exc:
        raise LoadRefused(Check.FORMAT, subject, str(exc)) from exc


def approved_bytes(
    registry: Registry,
    model: str,
    *,
    alias: str | None = "champion",
    version: int | None = None,
    config: ServingConfig,
    now: datetime | None = None,
) -> tuple[Approval, bytes]:
    """Checks 1 to 4: the approval and the approved bytes (not parsed)."""
    with registry.reading() as conn:
        approval = check_approval(
            conn,
            registry.ledger,
            config.public_key,
            model=model,
            version=version,
            alias=None if version is not None else alias,
            now=now or utcnow(),
        )
    data = read_artifact(
        registry.store.path_for(approval.artifact_digest),
        approval.artifact_digest,
        max_bytes=config.max_artifact_bytes,
        subject=approval.subject,
    )
    return approval, data


def record_serving(
    registry: Registry,
    kind: EventType,
    *,
    actor: str,
    model: str,
    version: int | None,
    data: dict[str, Any],
    index: dict[str, Any],
) -> None:
    with registry.transaction() as conn:
        registry.record(
            conn,
            [
                NewEvent(
                    type=kind, actor=actor, model=model, version=version, data=data, index=index
                )
            ],
        )


def record_refusal(
    registry: Registry,
    exc: GovregError,
    *,
    actor: str,
    model: str,
    version: int | None,
    alias: str | None,
) -> None:
    check = exc.check.value if isinstance(exc, LoadRefused) else "status"
    try:
        record_serving(
            registry,
            EventType.LOAD_REFUSED,
            actor=actor,
            model=model,
            version=version,
            data={"check": check, "detail": str(exc), "alias": alias},
            index={"check": check},
        )
    except IntegrityError as failed:
        # The ledger's signer refused (it logged why): the load is refused all the same.
        log.error("%s: refused to load, but the refusal could not be recorded: %s", model, failed)


def load_approved(
    registry: Registry,
    model: str,
    alias: str | None = "champion",
    *,
    version: int | None = None,
    config: ServingConfig,
    actor: str | None = None,
    now: datetime | None = None,
) -> Scorer:
    """A scorer for ``model@alias`` (or ``version``); raise LoadRefused naming the failed check."""
    who = actor or config.actor
    shown_alias = None if version is not None else alias
    try:
        approval, data = approved_bytes(
            registry, model, alias=alias, version=version, config=config, now=now
        )
        scorer = Scorer(approval, parse_model(data, subject=approval.subject))
    except (LoadRefused, NotFoundError) as exc:
        record_refusal(registry, exc, actor=who, model=model, version=version, alias=shown_alias)
        raise
    record_serving(
        registry,
        EventType.MODEL_LOADED,
        actor=who,
        model=model,
        version=approval.version,
        data={
            "alias": shown_alias,
            "approval_seq": approval.approval_seq,
            "artifact_digest": approval.artifact_digest,
            "checkpoint_size": approval.head,
        },
        index={"approval_seq": approval.approval_seq, "artifact_digest": approval.artifact_digest},
    )
    return scorer
