"""Wire the parts together from settings: engine, keyring, ledger, registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.engine import Engine

    from audits.ledger import Ledger
    from audits.verify import VerifyReport, Workers
    from govreg.settings import Settings
    from registry.interfaces import Download, Session
    from registry.mlflow_mirror import MlflowMirror, SyncResult
    from registry.services import Principal, Registry
    from serving.retention import DecisionAudit


@dataclass
class Context:
    settings: Settings
    engine: Engine
    ledger: Ledger
    registry: Registry

    @property
    def remote(self) -> bool:
        return False

    def principal(self) -> Principal:
        key = self.settings.api_key.get_secret_value() if self.settings.api_key else None
        return self.registry.authenticate(key)

    @property
    def mirror(self) -> MlflowMirror:
        """The MLflow registry mirror, for ``govreg mlflow sync``."""
        from registry.mlflow_mirror import MlflowMirror

        return MlflowMirror(self.settings.resolved_mlflow_tracking_uri)

    def verify(
        self,
        public_key: Path | None = None,
        *,
        anchors: Path | None = None,
        workers: Workers | None = None,
    ) -> VerifyReport:
        """Verify the ledger against ``public_key`` and ``anchors`` (default: the
        home's), with ``workers`` processes (default 1)."""
        from audits.signing import load_public_key

        actor = self.principal()
        key = load_public_key(public_key or self.settings.public_key_path)
        return self.registry.verify(
            actor,
            key,
            anchor_dir=anchors or self.settings.anchors_path,
            workers=1 if workers is None else workers,
        )

    def report(self, model: str, version: int) -> Download:
        """The version's PDF report, rendered here."""
        from audits.signing import load_public_key
        from registry.interfaces import Download
        from reports.service import generate_report

        key = load_public_key(self.settings.public_key_path)
        rendered = generate_report(self.registry, self.principal(), model, version, public_key=key)
        return Download(rendered.pdf, rendered.sha256)

    def evidence(self, model: str, version: int) -> Download:
        """The version's evidence bundle, made here: with what it proves."""
        from audits.signing import load_public_key
        from registry.interfaces import Download
        from reports.service import export_evidence

        key = load_public_key(self.settings.public_key_path)
        exported = export_evidence(self.registry, self.principal(), model, version, public_key=key)
        proved = exported.evidence
        return Download(
            exported.bundle,
            exported.sha256,
            events=len(proved.events),
            checkpoint=proved.checkpoint.size,
        )

    def sync_mirror(self, model: str) -> SyncResult:
        """Re-mirror ``model``'s current state into MLflow (a reader of the model may)."""
        from registry.roles import Action

        actor = self.principal()
        self.registry.authorize(actor, Action.READ, model=model)
        self.registry.list_versions(actor, model)  # an unknown model is refused here
        return self.mirror.sync(self.registry, model)

    def audit_decisions(self, public_key: Path | None, *, model: str | None) -> DecisionAudit:
        """Verify the decision log against ``public_key`` (default: the home's) and
        its anchors; with ``model``, list its decisions."""
        from audits.signing import load_public_key
        from serving.decisions import ANCHOR_FOLDER
        from serving.retention import audit_decisions

        return audit_decisions(
            self.registry,
            self.principal(),
            load_public_key(public_key or self.settings.public_key_path),
            anchor_dir=self.settings.anchors_path / ANCHOR_FOLDER,
            model=model,
        )

    def close(self) -> None:
        self.engine.dispose()


def open_session(settings: Settings) -> Session:
    """The CLI's and the SDK's session: a client of the server ``settings.url`` names
    (``GOVREG_URL``: the same calls, every rule enforced by the server's service
    layer), else the local home."""
    if settings.url:
        from govreg.client import RemoteContext, RemoteRegistry

        key = settings.api_key.get_secret_value() if settings.api_key else None
        registry = RemoteRegistry(settings.url, key, wait_seconds=settings.remote_wait_seconds)
        return RemoteContext(url=settings.url, registry=registry)
    return build(settings)


def open_local(settings: Settings, what: str) -> Context:
    """The local home, for ``what``: a command that works on the home itself (its
    keys, decision log, MLflow mirror). ConfigError when ``settings.url`` names a
    server: such a command runs on the server's host."""
    if settings.url:
        raise ConfigError(f"{what} runs on the server's host, not through GOVREG_URL")
    return build(settings)


def build(settings: Settings, *, require_home: bool = True) -> Context:
    from audits.keyring import Keyring
    from audits.ledger import Ledger, LedgerConfig
    from audits.signing import SIGNING_KEY_FILE
    from core.db import make_engine
    from govreg.settings import apply_mlflow_defaults
    from registry.decoding import DecodeLimits
    from registry.denials import DenialLimits
    from registry.mlflow_mirror import MlflowMirror
    from registry.mlflow_source import artifact_rules
    from registry.services import Registry
    from registry.store import BlobStore

    if require_home and not (settings.keys_path / "kek.json").exists():
        raise ConfigError(
            f"no govreg home at {settings.resolved_home} (no keys in {settings.keys_path}); "
            "run `govreg init` or set GOVREG_HOME"
        )
    apply_mlflow_defaults()
    engine = make_engine(settings.db_url)
    ledger = Ledger(
        Keyring(settings.keys_path),
        LedgerConfig(
            signing_key_path=settings.keys_path / SIGNING_KEY_FILE,
            anchor_dir=settings.anchors_path,
        ),
    )
    tracking_uri = settings.resolved_mlflow_tracking_uri
    rules = artifact_rules(
        tracking_uri,
        schemes=settings.mlflow_artifact_schemes,
        file_root=settings.mlflow_artifact_root,
        # never fetched from, whatever the artifact root
        forbidden=(settings.keys_path, settings.anchors_path, settings.store_path),
    )
    registry = Registry(
        engine,
        ledger,
        BlobStore(settings.store_path),
        max_upload_bytes=settings.max_upload_bytes,
        decode_limits=DecodeLimits(
            max_bytes=settings.max_decoded_bytes, max_ratio=settings.max_decompression_ratio
        ),
        mlflow_tracking_uri=tracking_uri,
        mlflow_artifact_rules=rules,
        # after each approval, promotion, suspension, reinstatement or retirement
        # commits, versions that came from MLflow are mirrored into its registry
        observers=[MlflowMirror(tracking_uri)],
        denial_limits=DenialLimits(
            interval=settings.denial_interval_seconds, limit=settings.denial_limit
        ),
    )
    return Context(settings, engine, ledger, registry)


def secret_files(settings: Settings) -> list[Path]:
    """The files whose bytes are secrets: the KEK (and a pending one), the checkpoint
    signing key, the bootstrap admin's API key. Each must be 0600."""
    from audits.keyring import KEK_FILE, KEK_NEXT_FILE
    from audits.signing import SIGNING_KEY_FILE

    keys = settings.keys_path
    return [
        keys / KEK_FILE,
        keys / KEK_NEXT_FILE,
        keys / SIGNING_KEY_FILE,
        settings.resolved_home / "admin.key",
    ]


def check_secrets(settings: Settings) -> None:
    """ConfigError naming a secret file that group or others may read, and the fix."""
    from audits.keyring import check_secret_modes

    check_secret_modes(secret_files(settings))


@dataclass(frozen=True)
class InitResult:
    created: bool
    fingerprint: str
    admin_key_path: str | None
    messages: list[str]


def init_home(settings: Settings) -> InitResult:
    """Create the home, keys and schema; bootstrap the admin. Idempotent."""
    import os

    from audits.keyring import Keyring, write_secret_file
    from audits.signing import PUBLIC_KEY_FILE, create_signing_key, fingerprint, load_public_key
    from migrations import runner

    home = settings.resolved_home
    keys = settings.keys_path
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        keys.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(keys, 0o700)  # mkdir's mode applies only to a folder it creates
    except OSError as exc:
        raise ConfigError(
            f"cannot create the govreg home {home}: {exc.strerror}; set GOVREG_HOME to a "
            "folder you may write"
        ) from exc
    messages: list[str] = []
    if Keyring.create_kek(keys):
        messages.append(f"created the key-encryption key {keys / 'kek.json'} (0600)")
    if create_signing_key(keys):
        messages.append(f"created the checkpoint signing key {keys / 'checkpoint.key'} (0600)")
    check_secrets(settings)  # keys made now are 0600; an earlier one may not be
    settings.anchors_path.mkdir(parents=True, exist_ok=True)
    ctx = build(settings)
    try:
        before = runner.current(ctx.engine)
        authenticated = runner.upgrade(ctx.engine, authenticator_key=ctx.ledger.authenticator_key())
        after = runner.current(ctx.engine)
        if before != after:
            messages.append(
                f"database schema at revision {after} ({settings.db_url.split('://')[0]})"
            )
        fpr = fingerprint(load_public_key(keys / PUBLIC_KEY_FILE))
        if authenticated:
            ctx.registry.record_upgrade(authenticated=authenticated, key_fingerprint=fpr)
            messages.append(
                f"gave the {authenticated} events already in the ledger their authenticators "
                "and recorded it (ledger.upgraded)"
            )
        admin_key = ctx.registry.bootstrap(key_fingerprint=fpr)
    finally:
        ctx.close()
    admin_path = home / "admin.key"
    if admin_key is not None:
        write_secret_file(admin_path, (admin_key + "\n").encode())
        messages.append(f"created principal 'admin' (admin); its API key is in {admin_path} (0600)")
    created = bool(messages)
    if not created:
        messages.append(f"govreg home {home} is already initialised; nothing changed")
    os.chmod(home, 0o700)
    check_secrets(settings)
    return InitResult(created, fpr, str(admin_path) if admin_path.exists() else None, messages)
