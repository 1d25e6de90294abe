"""Settings from the environment (prefix ``GOVREG_``), with safe defaults.

Only the composition root reads the environment; lower packages take what
they need as arguments.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError

# MLflow's own switches that govreg sets unless the user did: no usage
# telemetry (MLflow 3 sends it by default; it honours MLFLOW_DISABLE_TELEMETRY
# and DO_NOT_TRACK; govreg sets the first), and no download progress bars in govreg's output.
MLFLOW_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def apply_mlflow_defaults() -> None:
    """Set :data:`MLFLOW_DEFAULTS` in this process's environment where unset.

    Telemetry stays off unless the user turns it on with ``MLFLOW_DISABLE_TELEMETRY=false``.
    """
    for name, value in MLFLOW_DEFAULTS.items():
        os.environ.setdefault(name, value)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GOVREG_", extra="ignore")

    home: Path = Field(default=Path(".govreg"), description="where govreg keeps its state")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default a SQLite file in the home; "
        "postgresql+psycopg://user@host/db for PostgreSQL",
    )
    keys_dir: Path | None = Field(default=None, description="default: HOME/keys")
    anchor_dir: Path | None = Field(default=None, description="default: HOME/anchors")
    store_dir: Path | None = Field(default=None, description="default: HOME/store")
    public_key: Path | None = Field(default=None, description="default: KEYS_DIR/checkpoint.pub")
    api_key: SecretStr | None = Field(default=None, description="the acting principal's API key")
    url: str | None = Field(
        default=None,
        description="a govreg server (`govreg serve`) the CLI and the SDK use instead of a "
        "local home",
    )
    remote_wait_seconds: float = Field(
        default=3600,
        gt=0,
        description="through GOVREG_URL, how long `evaluate` waits for the server's "
        "evaluation to complete",
    )
    max_upload_bytes: int = Field(
        default=512 * 1024 * 1024,
        ge=1,
        description="largest submission upload: the whole multipart body, and each "
        "file read by reference",
    )
    max_json_bytes: int = Field(
        default=1024 * 1024, ge=1, description="largest JSON body of an endpoint but scoring"
    )
    max_score_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1,
        description="largest scoring body, and of a remote scorer's decisions "
        "(10,000 applicants of about 40 features)",
    )
    max_decoded_bytes: int = Field(
        default=2048 * 1024 * 1024,
        ge=1,
        description="largest size a submitted Parquet dataset may decode to (decompression bombs)",
    )
    max_decompression_ratio: int = Field(
        default=200, ge=1, description="largest decoded size of a Parquet dataset per file byte"
    )
    import_dir: Path | None = Field(
        default=None,
        description="folder the API may read submissions by reference from (off if unset)",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking (and model registry) URI for runs:/ and models:/ "
        "artifacts and the mirror; default: MLFLOW_TRACKING_URI",
    )
    mlflow_artifact_schemes: str | None = Field(
        default=None,
        description="comma-separated storage schemes MLflow artifacts may be downloaded "
        "from; default: mlflow-artifacts (through the tracking server), and file when the "
        "tracking URI is a local store",
    )
    mlflow_artifact_root: Path | None = Field(
        default=None,
        description="folder that file: MLflow artifact locations must resolve inside; "
        "default: the local tracking store's folder (a sqlite: database's folder)",
    )
    oidc_issuer: str | None = Field(default=None, description="accepted `iss` of bearer JWTs")
    oidc_audience: str | None = Field(default=None, description="required `aud` of bearer JWTs")
    oidc_jwks: str | None = Field(default=None, description="JWKS file path or https URL")
    oidc_role_claim: str = Field(default="govreg_role", description="claim holding the role")
    oidc_algorithms: str = Field(
        default="RS256,ES256,EdDSA", description="accepted JWT algorithms (never 'none')"
    )

    denial_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        description="refusals of one principal (or address) and action after the first "
        "in this many seconds are counted and recorded as one aggregated event",
    )
    denial_limit: int = Field(
        default=120,
        ge=1,
        description="refused requests per principal (or address) per interval; more are "
        "answered 429 with Retry-After",
    )
    max_concurrent_exports: int = Field(
        default=2,
        ge=1,
        description="PDF reports and evidence bundles rendered at once per server worker; "
        "more are answered 429",
    )

    serving_public_key: Path | None = Field(
        default=None,
        description="the pinned checkpoint public key serving trusts "
        "(default: PUBLIC_KEY); never read from the database",
    )
    serving_poll_seconds: float = Field(
        default=0.5, gt=0, le=1.0, description="how often a server checks the ledger head"
    )
    max_artifact_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1, description="largest artifact serving will read"
    )

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_home / 'govreg.db'}"

    @property
    def resolved_mlflow_tracking_uri(self) -> str | None:
        return self.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None

    @property
    def keys_path(self) -> Path:
        return (self.keys_dir or self.resolved_home / "keys").expanduser().resolve()

    @property
    def anchors_path(self) -> Path:
        return (self.anchor_dir or self.resolved_home / "anchors").expanduser().resolve()

    @property
    def store_path(self) -> Path:
        return (self.store_dir or self.resolved_home / "store").expanduser().resolve()

    @property
    def public_key_path(self) -> Path:
        return (self.public_key or self.keys_path / "checkpoint.pub").expanduser().resolve()

    @property
    def serving_public_key_path(self) -> Path:
        return (self.serving_public_key or self.public_key_path).expanduser().resolve()


def load_settings(**overrides: Any) -> Settings:
    """The settings from the environment (and ``overrides``); ConfigError naming each
    variable that does not parse and what it should be, never a secret's value."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else ""
            field = Settings.model_fields.get(name)
            secret = field is not None and field.annotation in (SecretStr, SecretStr | None)
            given = "" if secret else f"={str(error.get('input'))[:80]!r}"
            problems.append(f"GOVREG_{name.upper()}{given}: {error['msg']}")
        raise ConfigError("invalid settings: " + "; ".join(problems)) from None
