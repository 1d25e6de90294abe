"""The ``govreg`` command line.

Start-up stays fast: nothing heavy is imported at module level; each command
imports what it needs. Every command acts as an authenticated principal (the
API key from ``--api-key`` or ``GOVREG_API_KEY``), and every error a user can
cause is a :class:`core.errors.GovregError`, turned in :class:`GovregGroup`
into one line on stderr (with ``--json``, a JSON object on stdout) and its
exit code. A command that ran but whose outcome is a refusal of the version
(``evaluate`` ending ``gates_failed``, ``signoff --reject``) exits
:data:`REFUSED`. The README's "Exit codes" lists every code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from registry.roles import SIGNING_ROLES, Role

# registry.roles is a light module (two enums); the CLI's choices come from it.
ROLES = tuple(role.value for role in Role)
SIGNING = tuple(sorted(role.value for role in SIGNING_ROLES))

if TYPE_CHECKING:
    from audits.verify import Workers
    from govreg.context import Context
    from govreg.settings import Settings
    from registry.interfaces import Session

# Exit codes. 1-8 and 11 are the errors' own (core.errors: ``exit_code``; 2 also for a
# command line click cannot parse); REFUSED is an outcome, not an error: the
# command ran and recorded its result, and that result refuses the version.
# 9 (DeadlineExceeded) is a wait that ran out of time: `evaluate` through GOVREG_URL.
REFUSED = 10
_JSON = "govreg.json"  # ctx.meta key: the command was given --json
_ARGS = "govreg.args"  # ctx.meta key: the whole command line


def _settings(api_key: str | None = None) -> Settings:
    from govreg.settings import load_settings

    if api_key:
        from pydantic import SecretStr

        return load_settings(api_key=SecretStr(api_key))
    return load_settings()


@contextmanager
def _context(obj: dict[str, Any]) -> Iterator[Session]:
    """The local home, or with GOVREG_URL set a client of that server (same rules,
    enforced by the server's service layer)."""
    from govreg.context import open_session

    session = open_session(_settings(obj.get("api_key")))
    try:
        yield session
    finally:
        session.close()


def _local_only(session: Session, what: str) -> Context:
    """The local context; ConfigError through GOVREG_URL."""
    from core.errors import ConfigError
    from govreg.context import Context

    if not isinstance(session, Context):
        raise ConfigError(f"{what} runs on the server's host, not through GOVREG_URL")
    return session


def _emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        human()


def _remember_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[_JSON] = True  # shared by every context of this run
    return value


# eager, so that --json is known before any other option can fail to parse
json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    is_eager=True,
    callback=_remember_json,
    help='print JSON (an error too, as {"error": {...}} on stdout)',
)


def _error_type(exit_code: int, fallback: str) -> str:
    """The name an error has in JSON: the core.errors class of its exit code, so
    that a command gives the same type locally and through GOVREG_URL."""
    from core import errors

    # the core.errors classes that declare an exit code (one per code)
    declaring = {
        cls.exit_code: cls.__name__
        for cls in errors.error_classes()
        if cls.__module__ == errors.__name__ and "exit_code" in vars(cls)
    }
    return declaring.get(exit_code, fallback)


def _fail(ctx: click.Context, message: str, exit_code: int, kind: str) -> None:
    """One error: a JSON object on stdout with --json, else one line on stderr."""
    if ctx.meta.get(_JSON):
        error = {"type": _error_type(exit_code, kind), "message": message, "exit_code": exit_code}
        click.echo(json.dumps({"error": error}, indent=2, sort_keys=True))
    else:
        click.echo(f"error: {message}", err=True)
    ctx.exit(exit_code)


def _refused_if(status: Any, *refusing: str) -> None:
    """Exit REFUSED when the command's outcome ``status`` refuses the version."""
    if str(getattr(status, "value", status)) in refusing:
        click.get_current_context().exit(REFUSED)


class _WarningLine(logging.Handler):
    """govreg's own warnings (e.g. a failed MLflow mirror) as ``warning: ...`` on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"warning: {record.getMessage()}", err=True)


class GovregGroup(click.Group):
    """Turns any GovregError into its exit code and one line on stderr, or with
    --json a JSON object on stdout; with --json a usage error is JSON too."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_ARGS] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        from core.errors import GovregError

        registry_log = logging.getLogger("registry")
        if not any(isinstance(h, _WarningLine) for h in registry_log.handlers):
            registry_log.addHandler(_WarningLine(logging.WARNING))
        try:
            return super().invoke(ctx)
        except GovregError as exc:
            _fail(ctx, exc.diagnostics(), exc.exit_code, type(exc).__name__)
        except click.UsageError as exc:
            # a command line click could not parse; without --json click prints
            # its usage text as always
            if not (ctx.meta.get(_JSON) or _json_asked(ctx, exc)):
                raise
            ctx.meta[_JSON] = True
            _fail(ctx, exc.format_message(), exc.exit_code, "InputError")


def _json_asked(ctx: click.Context, exc: click.UsageError) -> bool:
    """--json on the command line of a command that takes it (before ``--``),
    when parsing failed before the option was read."""
    args = ctx.meta.get(_ARGS, [])
    args = args[: args.index("--")] if "--" in args else args
    command = exc.ctx.command if exc.ctx is not None else None
    takes = command is not None and any(p.name == "as_json" for p in command.params)
    return takes and "--json" in args


@click.group(cls=GovregGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--api-key",
    envvar="GOVREG_API_KEY",
    metavar="KEY",
    help="the acting principal's API key (or GOVREG_API_KEY)",
)
@click.version_option(package_name="govreg")
@click.pass_context
def cli(click_ctx: click.Context, api_key: str | None) -> None:
    """govreg: no model reaches production without proof.

    Policy gates, human sign-offs and an encrypted, tamper-evident audit
    ledger for credit-risk models. Settings come from GOVREG_* variables
    (GOVREG_HOME, GOVREG_DATABASE_URL, ...); see the README.
    """
    click_ctx.obj = {"api_key": api_key}


@cli.command()
@json_option
def init(as_json: bool) -> None:
    """Create the home, keys, schema and the bootstrap admin (idempotent)."""
    from govreg.context import init_home

    result = init_home(_settings())

    def human() -> None:
        for line in result.messages:
            click.echo(line)
        click.echo(f"checkpoint public key fingerprint: {result.fingerprint}")

    _emit(as_json, result.__dict__, human)


# -- persons --------------------------------------------------------------------
@cli.group()
def persons() -> None:
    """Create and list persons, the people principals belong to (admin only)."""


@persons.command("create")
@click.argument("person_id", metavar="ID")
@click.option("--display", required=True, help="how the person is shown, e.g. a job title")
@json_option
@click.pass_obj
def persons_create(obj: dict[str, Any], person_id: str, display: str, as_json: bool) -> None:
    """Record person ID; sign-offs count persons, so give each human one person."""
    with _context(obj) as ctx:
        person = ctx.registry.create_person(ctx.principal(), person_id, display=display)
    _emit(
        as_json,
        person,
        lambda: click.echo(f"created person {person['id']} ({person['display']})"),
    )


@persons.command("list")
@json_option
@click.pass_obj
def persons_list(obj: dict[str, Any], as_json: bool) -> None:
    """List persons, with who created each."""
    with _context(obj) as ctx:
        found = ctx.registry.list_persons(ctx.principal())

    def human() -> None:
        for p in found:
            click.echo(f"{p['id']:24} {p['display']:32} created by {p['created_by']}")

    _emit(as_json, found, human)


# -- principals -----------------------------------------------------------------
@cli.group()
def principals() -> None:
    """Create, list and revoke principals (admin only)."""


@principals.command("create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--person", required=True, help="the person it belongs to (govreg persons create)")
@click.option(
    "--models",
    metavar="NAME,...",
    help="the models a service principal may score and fetch (required for --role service)",
)
@click.option("--expires", "expires", metavar="ISO-8601", help="optional expiry, UTC")
@json_option
@click.pass_obj
def principals_create(
    obj: dict[str, Any],
    name: str,
    role: str,
    person: str,
    models: str | None,
    expires: str | None,
    as_json: bool,
) -> None:
    """Create NAME with ROLE for PERSON; prints its API key once."""
    from datetime import UTC, datetime

    from core.errors import InputError

    scope = None
    if models is not None:
        scope = [m.strip() for m in models.split(",") if m.strip()]
    elif role == "service":
        raise InputError("--role service needs --models: the models it may score and fetch")

    expiry = None
    if expires:
        try:
            expiry = datetime.fromisoformat(expires)
        except ValueError as exc:
            raise InputError(f"--expires {expires!r} is not an ISO-8601 time") from exc
        expiry = expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC)
    with _context(obj) as ctx:
        principal, api_key = ctx.registry.create_principal(
            ctx.principal(), name, role, person=person, models=scope, expires_at=expiry
        )
    _emit(
        as_json,
        {**principal.public(), "api_key": api_key},
        lambda: click.echo(
            f"created {principal.name} ({principal.role}) for person {principal.person_id}\n"
            f"API key (shown once, keep it secret): {api_key}"
        ),
    )


@principals.command("list")
@json_option
@click.pass_obj
def principals_list(obj: dict[str, Any], as_json: bool) -> None:
    """List principals."""
    with _context(obj) as ctx:
        found = ctx.registry.list_principals(ctx.principal())

    def human() -> None:
        for p in found:
            state = f"revoked {p.revoked_at}" if p.revoked_at else "active"
            scope = f" models {','.join(p.models)}" if p.models is not None else ""
            click.echo(f"{p.name:24} {p.role:20} {p.person_id:24} {state}{scope}")

    _emit(as_json, [p.public() for p in found], human)


@principals.command("revoke")
@click.argument("name")
@json_option
@click.pass_obj
def principals_revoke(obj: dict[str, Any], name: str, as_json: bool) -> None:
    """Revoke NAME's API key."""
    with _context(obj) as ctx:
        ctx.registry.revoke_principal(ctx.principal(), name)
    _emit(as_json, {"name": name, "revoked": True}, lambda: click.echo(f"revoked {name}"))


# -- policies -------------------------------------------------------------------
@cli.group()
def policies() -> None:
    """Propose and adopt policy versions (a compliance officer approves)."""


@policies.command("list")
@json_option
@click.pass_obj
def policies_list(obj: dict[str, Any], as_json: bool) -> None:
    """Every policy version in the ledger, proposed or adopted."""
    with _context(obj) as ctx:
        rows = ctx.registry.list_policies(ctx.principal())

    def human() -> None:
        for r in rows:
            click.echo(
                f"{r['id']}@{r['version']:<4} {r['status']:9} {r['digest'][:16]} "
                f"proposed by {r['proposed_by']}, approved by {r['approved_by'] or '-'}"
            )

    _emit(as_json, rows, human)


@policies.command("propose")
@click.argument("path", type=click.Path(path_type=Path))
@json_option
@click.pass_obj
def policies_propose(obj: dict[str, Any], path: Path, as_json: bool) -> None:
    """Propose the policy in the YAML file PATH (takes effect once approved)."""
    from policies.loader import load_policy_file

    policy = load_policy_file(path)
    with _context(obj) as ctx:
        ctx.registry.propose_policy(ctx.principal(), policy)
    _emit(
        as_json,
        {"policy": policy.ref, "digest": policy.digest, "status": "proposed"},
        lambda: click.echo(f"proposed {policy.ref} (digest {policy.digest[:16]})"),
    )


@policies.command("approve")
@click.argument("ref", metavar="ID@VERSION")
@click.option("--comment", required=True)
@json_option
@click.pass_obj
def policies_approve(obj: dict[str, Any], ref: str, comment: str, as_json: bool) -> None:
    """Adopt a proposed policy version (compliance officer, not its proposer)."""
    with _context(obj) as ctx:
        policy = ctx.registry.approve_policy(ctx.principal(), ref, comment=comment)
    _emit(
        as_json,
        {"policy": policy.ref, "digest": policy.digest, "status": "adopted"},
        lambda: click.echo(f"adopted {policy.ref}"),
    )


# -- versions -------------------------------------------------------------------
@cli.command()
@click.argument("model")
@click.option(
    "--artifact",
    required=True,
    help="LightGBM text model file, or an MLflow URI: runs:/<run_id>/<path> or "
    "models:/<name>/<version> (tracking URI from GOVREG_MLFLOW_TRACKING_URI)",
)
@click.option("--train", required=True, type=click.Path(path_type=Path), help="CSV or Parquet")
@click.option("--validation", required=True, type=click.Path(path_type=Path), help="CSV or Parquet")
@click.option("--target", required=True, help="binary target column (1 = default)")
@click.option("--protected", required=True, help="protected columns, comma-separated")
@click.option("--policy", "policy_id", help="policy id (default credit-risk)")
@click.option(
    "--cutoff",
    help="the policy's decision cutoff, if you pass it (another cutoff is refused: "
    "propose a policy version with that decision_cutoff)",
)
@click.option(
    "--reasons",
    type=click.Path(path_type=Path),
    help="YAML or JSON file mapping each feature to its adverse-action reason text",
)
@click.option(
    "--expectations",
    type=click.Path(path_type=Path),
    help="great-expectations suite (JSON) the validation data must pass "
    "(default: one derived from the training data)",
)
@json_option
@click.pass_obj
def submit(
    obj: dict[str, Any],
    model: str,
    artifact: str,
    train: Path,
    validation: Path,
    target: str,
    protected: str,
    policy_id: str | None,
    cutoff: str | None,
    reasons: Path | None,
    expectations: Path | None,
    as_json: bool,
) -> None:
    """Submit a candidate version of MODEL; prints the new version number."""
    columns = [c.strip() for c in protected.split(",") if c.strip()]
    reason_texts = _read_reasons(reasons) if reasons else None
    suite = _read_suite(expectations) if expectations else None
    with _context(obj) as ctx:
        number = ctx.registry.submit(
            ctx.principal(),
            model,
            artifact=artifact if artifact.startswith(("runs:/", "models:/")) else Path(artifact),
            train=train,
            validation=validation,
            target=target,
            protected=columns,
            policy_id=policy_id,
            cutoff=cutoff,
            reason_texts=reason_texts,
            schema_suite=suite,
        )
    _emit(
        as_json,
        {"model": model, "version": number, "status": "submitted"},
        lambda: click.echo(f"submitted {model} v{number}"),
    )


def _read_suite(path: Path) -> Any:
    from core.errors import InputError

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"expectation suite {path} is not readable JSON: {exc}") from exc


def _read_reasons(path: Path) -> dict[str, Any]:
    import yaml

    from core.errors import InputError

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"reasons file {path} is unreadable: {exc}") from exc
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise InputError(f"reasons file {path} must map feature names to reason texts")
    # A categorical feature's {default, categories} stays a mapping (the registry checks it).
    return {str(k): v if isinstance(v, dict) else str(v) for k, v in data.items()}


@cli.command()
@click.argument("model")
@click.argument("version", type=int)
@click.option(
    "--policy",
    "policy_id",
    help="re-evaluate under this policy (id or id@version); recorded as an explicit act",
)
@json_option
@click.pass_obj
def evaluate(
    obj: dict[str, Any], model: str, version: int, policy_id: str | None, as_json: bool
) -> None:
    """Run every gate of the version's policy and record the results.

    Exits 10 when the version ends gates_failed (the results are still printed)."""
    with _context(obj) as ctx:
        actor = ctx.principal()
        status = ctx.registry.evaluate(
            actor, model, version, policy_id=policy_id, progress=None if as_json else _progress
        )
        shown = ctx.registry.show_version(actor, model, version)
    _emit(as_json, shown, lambda: _print_gates(shown, status))
    _refused_if(status, "gates_failed")


def _progress(message: str) -> None:
    click.echo(f"  ... {message}", err=True)


def _print_gates(shown: dict[str, Any], status: str) -> None:
    for gate in shown["gates"]:
        click.echo(f"  {gate['gate_id']:16} {gate['verdict']:18} {gate.get('message', '')}")
    click.echo(f"{shown['model']} v{shown['version']}: {status}")


@cli.command()
@click.argument("model")
@click.argument("version", type=int)
@click.option(
    "--role",
    required=True,
    type=click.Choice(SIGNING),
)
@click.option("--approve/--reject", "approve", required=True)
@click.option("--comment", required=True, help="why; a rejection needs a reason")
@json_option
@click.pass_obj
def signoff(
    obj: dict[str, Any],
    model: str,
    version: int,
    role: str,
    approve: bool,
    comment: str,
    as_json: bool,
) -> None:
    """Sign (approve or reject) a version awaiting sign-off; a rejection exits 10."""
    with _context(obj) as ctx:
        status = ctx.registry.signoff(
            ctx.principal(), model, version, role=role, approve=approve, comment=comment
        )
    _emit(
        as_json,
        {"model": model, "version": version, "status": status.value},
        lambda: click.echo(f"signed {model} v{version} as {role}; status {status.value}"),
    )
    _refused_if(status, "rejected")


@cli.group()
def versions() -> None:
    """List and show model versions."""


@versions.command("list")
@click.argument("model", required=False)
@json_option
@click.pass_obj
def versions_list(obj: dict[str, Any], model: str | None, as_json: bool) -> None:
    """List versions (of MODEL, or of all models)."""
    with _context(obj) as ctx:
        rows = ctx.registry.list_versions(ctx.principal(), model)

    def human() -> None:
        for r in rows:
            click.echo(
                f"{r['model']:20} v{r['version']:<4} {r['status']:18} {r['policy']:20} "
                f"{r['submitted_by']}"
            )

    _emit(as_json, rows, human)


@versions.command("show")
@click.argument("model")
@click.argument("version", type=int)
@json_option
@click.pass_obj
def versions_show(obj: dict[str, Any], model: str, version: int, as_json: bool) -> None:
    """Everything recorded about one version."""
    with _context(obj) as ctx:
        shown = ctx.registry.show_version(ctx.principal(), model, version)

    def human() -> None:
        click.echo(f"{model} v{version}: {shown['status']}")
        for key in (
            "policy",
            "artifact_digest",
            "submitted_by",
            "submitted_at",
            "approved_at",
            "revalidate_by",
            "aliases",
            "status_reason",
        ):
            click.echo(f"  {key:16} {shown[key]}")
        for gate in shown["gates"]:
            click.echo(f"  gate {gate['gate_id']:16} {gate['verdict']}  {gate.get('message', '')}")
        for s in shown["signoffs"]:
            click.echo(f"  signed by {s['principal']} ({s['role']}): {s['decision']}")
        for m in shown["signoffs_missing"]:
            click.echo(f"  missing sign-off: {m['missing']} x {m['role']}")

    _emit(as_json, shown, human)


@cli.command()
@click.argument("model")
@click.argument("version", type=int)
@click.option("--alias", required=True, help="e.g. champion")
@json_option
@click.pass_obj
def promote(obj: dict[str, Any], model: str, version: int, alias: str, as_json: bool) -> None:
    """Point MODEL@ALIAS at an approved VERSION."""
    with _context(obj) as ctx:
        ctx.registry.promote(ctx.principal(), model, version, alias=alias)
    _emit(
        as_json,
        {"model": model, "version": version, "alias": alias, "status": "promoted"},
        lambda: click.echo(f"{model}@{alias} -> v{version}"),
    )


def _state_command(name: str, verb: str) -> None:
    @cli.command(name, help=f"{verb.capitalize()} a version (recorded with the reason).")
    @click.argument("model")
    @click.argument("version", type=int)
    @click.option("--reason", required=True)
    @json_option
    @click.pass_obj
    def command(obj: dict[str, Any], model: str, version: int, reason: str, as_json: bool) -> None:
        with _context(obj) as ctx:
            actor = ctx.principal()
            getattr(ctx.registry, name)(actor, model, version, reason=reason)
            status = ctx.registry.show_version(actor, model, version)["status"]
        _emit(
            as_json,
            {"model": model, "version": version, "status": status},
            lambda: click.echo(f"{verb} {model} v{version}"),
        )


_state_command("suspend", "suspended")
_state_command("reinstate", "reinstated")
_state_command("retire", "retired")


# -- MLflow ---------------------------------------------------------------------
@cli.group("mlflow")
def mlflow_group() -> None:
    """The MLflow model registry mirror (tags and aliases set by govreg)."""


@mlflow_group.command("sync")
@click.argument("model")
@json_option
@click.pass_obj
def mlflow_sync(obj: dict[str, Any], model: str, as_json: bool) -> None:
    """Re-mirror MODEL's current state from the ledger into MLflow (re-runnable)."""
    from registry.roles import Action

    with _context(obj) as session:
        ctx = _local_only(session, "mlflow sync")
        actor = ctx.principal()
        ctx.registry.authorize(actor, Action.READ, model=model)
        ctx.registry.list_versions(actor, model)  # an unknown model is refused here
        result = ctx.mirror.sync(ctx.registry, model)
    _emit(
        as_json,
        {
            "model": model,
            "versions": [m.__dict__ for m in result.versions],
            "aliases": {
                a: (None if t is None else {"name": t[0], "version": t[1]})
                for a, t in result.aliases.items()
            },
        },
        lambda: click.echo("\n".join(result.lines())),
    )


# -- audit ----------------------------------------------------------------------
@cli.group()
def audit() -> None:
    """Verify the ledger and read the audit trail."""


def _workers(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    """--workers: a whole number 1..64 or auto (audits.parallel.parse_workers)."""
    if value is None:
        return None
    from audits.parallel import WorkersError, parse_workers

    try:
        return parse_workers(value)
    except WorkersError as exc:
        raise click.BadParameter(str(exc)) from exc


@audit.command("verify")
@click.option(
    "--public-key", type=click.Path(path_type=Path), help="default: the home's checkpoint.pub"
)
@click.option(
    "--anchors", type=click.Path(path_type=Path), help="default: the home's anchor folder"
)
@click.option(
    "--workers",
    metavar="N|auto",
    callback=_workers,
    help=(
        "processes that verify the events: 1 to 64, or auto (one per free CPU from "
        "200,000 events on, else 1); default 1. Any problem is reported as 1 reports it. "
        "Local homes only: through GOVREG_URL the server verifies with 1."
    ),
)
@json_option
@click.pass_obj
def audit_verify(
    obj: dict[str, Any],
    public_key: Path | None,
    anchors: Path | None,
    workers: Workers | None,
    as_json: bool,
) -> None:
    """Recompute every hash, check every checkpoint, replay the registry."""
    from audits.signing import load_public_key
    from govreg.client import RemoteContext
    from govreg.context import Context

    with _context(obj) as session:
        if isinstance(session, RemoteContext):
            if workers is not None:
                raise click.UsageError(
                    "--workers applies to a local home: through GOVREG_URL the server "
                    "verifies its ledger itself, with one process"
                )
            # the server verifies with its key and anchors; a pinned key must be it
            pinned = load_public_key(public_key) if public_key else None
            report = session.registry.verify_remote(pinned, anchors=anchors)
        else:
            assert isinstance(session, Context)
            actor = session.principal()
            key = load_public_key(public_key or session.settings.public_key_path)
            report = session.registry.verify(
                actor,
                key,
                anchor_dir=anchors or session.settings.anchors_path,
                workers=1 if workers is None else workers,
            )
    data = {
        "ok": True,
        "size": report.size,
        "root": report.root.hex(),
        "checkpoints": report.checkpoints,
        "anchors": report.anchors,
        "key_fingerprint": report.key_fingerprint,
        "warnings": report.warnings,
    }

    def human() -> None:
        click.echo(report.summary())
        for warning in report.warnings:
            click.echo(f"warning: {warning}", err=True)

    _emit(as_json, data, human)


@audit.command("decisions")
@click.option(
    "--public-key",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="pinned checkpoint public key (default: the home's)",
)
@click.option("--model", help="also list this model's decisions")
@json_option
@click.pass_obj
def audit_decisions(
    obj: dict[str, Any], public_key: Path | None, model: str | None, as_json: bool
) -> None:
    """Verify the serving decision log; with --model, list its decisions (decrypted;
    the inputs of decisions past retention are erased by `decisions purge`)."""
    from audits.signing import load_public_key
    from serving.decisions import ANCHOR_FOLDER
    from serving.retention import audit_decisions

    with _context(obj) as session:
        ctx = _local_only(session, "audit decisions")
        audited = audit_decisions(
            ctx.registry,
            ctx.principal(),
            load_public_key(public_key or ctx.settings.public_key_path),
            anchor_dir=ctx.settings.anchors_path / ANCHOR_FOLDER,
            model=model,
        )
    report, warnings = audited.report, list(audited.warnings)
    rows: list[dict[str, Any]] = [
        {
            "seq": d.seq,
            "recorded_at": d.recorded_at,
            "model": d.model,
            "version": d.version,
            "approval_seq": d.approval_seq,
            "input_digest": d.input_digest,
            "score": d.score,
            "decision": d.decision,
            "reasons": d.reasons,
            "retain_until": d.retain_until,
            "erased": d.erased,
        }
        for d in audited.listed
    ]
    data = {
        "ok": True,
        "decisions": report.decisions,
        "erased": report.erased,
        "erased_keys": list(report.erased_keys),
        "batches": report.batches,
        "anchors": report.anchors,
        "key_fingerprint": report.key_fingerprint,
        "listed": rows,
        "warnings": warnings,
    }

    def human() -> None:
        click.echo(report.summary())
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)
        for row in rows:
            reasons = "; ".join(str(r) for r in row["reasons"])
            click.echo(
                f"{row['seq']:>6}  {row['recorded_at']}  {row['model']} v{row['version']}  "
                f"{row['decision']:<7} pd={row['score']}  {reasons}"
                + ("  [inputs erased: past retention]" if row["erased"] else "")
            )

    _emit(as_json, data, human)


# -- decisions ------------------------------------------------------------------
@cli.group()
def decisions() -> None:
    """The serving decision log's retention (admin)."""


@decisions.command("purge")
@json_option
@click.pass_obj
def decisions_purge(obj: dict[str, Any], as_json: bool) -> None:
    """Erase the inputs of decisions past retention (destroy their month's key).

    The decisions stay, with their score, outcome, reasons and input digest,
    and the log still verifies; the purge is recorded in the ledger. Re-running
    it purges nothing more.
    """
    from serving.retention import purge_decisions

    with _context(obj) as session:
        ctx = _local_only(session, "decisions purge")
        report = purge_decisions(ctx.registry, ctx.principal())
    _emit(as_json, report.data(), lambda: click.echo(report.summary()))


@audit.command("flush-denials")
@json_option
@click.pass_obj
def audit_flush_denials(obj: dict[str, Any], as_json: bool) -> None:
    """Append every counted refusal now, as access.denied.aggregated events (admin).

    Servers do this when an interval ends and at shutdown; run it before reading
    the trail when every refusal so far must be in it.
    """
    with _context(obj) as session:
        ctx = _local_only(session, "audit flush-denials")
        events = ctx.registry.flush_denials(ctx.principal(), every=True)
    data = {
        "events": len(events),
        "refusals": sum(int(e.data["count"]) for e in events),
        "seqs": [e.seq for e in events],
    }
    _emit(
        as_json,
        data,
        lambda: click.echo(
            f"appended {data['events']} access.denied.aggregated events "
            f"counting {data['refusals']} refusals"
        ),
    )


@audit.command("log")
@click.option("--model", help="only this model's events")
@json_option
@click.pass_obj
def audit_log(obj: dict[str, Any], model: str | None, as_json: bool) -> None:
    """The decrypted trail, oldest first."""
    with _context(obj) as ctx:
        events = list(ctx.registry.audit_log(ctx.principal(), model=model))
    if as_json:
        click.echo(json.dumps([e.public() for e in events], indent=2, sort_keys=True))
        return
    for e in events:
        subject = f"{e.model} v{e.version}" if e.version else (e.model or "-")
        detail = " ".join(f"{k}={v}" for k, v in sorted(e.index.items()) if not isinstance(v, dict))
        click.echo(f"{e.seq:>6} {e.recorded_at} {e.type:22} {e.actor:18} {subject:20} {detail}")


# -- keys -----------------------------------------------------------------------
@cli.group()
def keys() -> None:
    """Rotate the data key or the key-encryption key (admin)."""


@keys.command("rotate")
@json_option
@click.pass_obj
def keys_rotate(obj: dict[str, Any], as_json: bool) -> None:
    """Start a new data key; earlier events stay readable."""
    with _context(obj) as session:
        ctx = _local_only(session, "keys rotate")
        key_id = ctx.registry.rotate_data_key(ctx.principal())
    _emit(as_json, {"data_key": key_id}, lambda: click.echo(f"new data key {key_id}"))


@keys.command("rotate-kek")
@json_option
@click.pass_obj
def keys_rotate_kek(obj: dict[str, Any], as_json: bool) -> None:
    """Re-wrap every data key under a new key-encryption key (re-runnable)."""
    with _context(obj) as session:
        ctx = _local_only(session, "keys rotate-kek")
        kek_id, count = ctx.registry.rotate_kek(ctx.principal())
    _emit(
        as_json,
        {"kek_id": kek_id, "rewrapped": count},
        lambda: click.echo(f"key-encryption key is now {kek_id}; re-wrapped {count} data keys"),
    )


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="worker processes")
@click.option(
    "--access-log/--no-access-log",
    default=False,
    show_default=True,
    help="uvicorn's per-request log (decisions and changes are in the ledger either way)",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM certificate (chain): serve HTTPS",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM private key of --tls-cert",
)
@click.option(
    "--insecure-bind",
    is_flag=True,
    help="allow plain HTTP on an address beyond loopback (API keys cross the network "
    "in clear text; only behind a TLS-terminating proxy on a trusted network)",
)
def serve(
    host: str,
    port: int,
    workers: int,
    access_log: bool,
    tls_cert: Path | None,
    tls_key: Path | None,
    insecure_bind: bool,
) -> None:
    """Run the HTTP API (uvicorn; several workers share one database).

    Plain HTTP only on loopback: another address needs --tls-cert and --tls-key,
    or --insecure-bind (with a warning).
    """
    import uvicorn

    from core.errors import ConfigError
    from govreg.context import build, check_secrets

    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("give --tls-cert and --tls-key together (certificate and its key)")
    warning = bind_warning(host, tls=tls_cert is not None, insecure=insecure_bind)
    settings = _settings()
    check_secrets(settings)
    build(settings).close()  # fail fast, with a clear message, on a missing home
    if warning:
        click.echo(warning, err=True)
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "log_level": "info",
        "access_log": access_log,
    }
    if tls_cert is not None and tls_key is not None:
        options.update(ssl_certfile=str(tls_cert), ssl_keyfile=str(tls_key))
    if workers <= 1:
        uvicorn.run("govreg.api.app:app_from_env", **options)
        return
    _serve_workers(uvicorn.Config("govreg.api.app:app_from_env", workers=workers, **options))


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback address (127/8, ::1)."""
    import ipaddress
    import socket

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        found = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return False
    return bool(found) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in found)


def bind_warning(host: str, *, tls: bool, insecure: bool) -> str | None:
    """None if serving on ``host`` is safe as asked; the warning to print if it is
    allowed by --insecure-bind; ConfigError if it is refused."""
    from core.errors import ConfigError

    if tls or is_loopback(host):
        return None
    shown = host or "every address"
    if not insecure:
        raise ConfigError(
            f"refusing to serve plain HTTP on {shown}: API keys and applicants' data would "
            "cross the network in clear text; give --tls-cert and --tls-key, or bind "
            "127.0.0.1 behind a TLS proxy, or pass --insecure-bind if a proxy on a trusted "
            "network terminates TLS"
        )
    return (
        f"WARNING: serving plain HTTP on {shown} (--insecure-bind): API keys and "
        "applicants' data cross the network in clear text unless a TLS proxy terminates "
        "every connection before it leaves this host's trusted network"
    )


def _serve_workers(config: Any) -> None:
    """uvicorn's multi-worker path, with the listening socket marked as TCP.

    uvicorn binds the socket with ``proto`` 0; accepted connections inherit
    it and asyncio then leaves Nagle's algorithm on, so every keep-alive
    request after the first waits ~40 ms for the client's delayed ACK
    (uvicorn issue 3149). Re-wrapping the bound descriptor as IPPROTO_TCP
    lets each worker's event loop set TCP_NODELAY as it does with one worker.
    """
    from uvicorn.supervisors import Multiprocess

    Multiprocess(config, sockets=[bind_tcp_socket(config)]).run()


def bind_tcp_socket(config: Any) -> Any:
    """uvicorn's bound listening socket, re-wrapped with ``proto`` IPPROTO_TCP."""
    import socket

    bound = config.bind_socket()
    if bound.family in (socket.AF_INET, socket.AF_INET6):
        bound = socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, bound.detach())
        bound.set_inheritable(True)
    return bound


@cli.command()
@click.option("--rows", default=10000, show_default=True, help="rows of synthetic credit data")
def demo(rows: int) -> None:
    """The main job: an end-to-end walk through govreg in a demo home."""
    from govreg.demo import run_demo

    run_demo(rows=rows)


def main() -> None:
    cli(prog_name="govreg")


# -- reports and evidence bundles ---------------------------------------------------
@cli.command()
@click.argument("model")
@click.argument("version", type=int)
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="PDF file")
@click.pass_obj
def report(obj: dict[str, Any], model: str, version: int, output: Path) -> None:
    """Write the PDF/A-3b compliance report of a version (evidence JSON embedded)."""
    from audits.signing import load_public_key
    from govreg.client import RemoteContext
    from govreg.context import Context
    from reports.service import generate_report

    with _context(obj) as session:
        if isinstance(session, RemoteContext):
            pdf, sha256 = session.registry.download(model, version, "report")
        else:
            assert isinstance(session, Context)
            key = load_public_key(session.settings.public_key_path)
            rendered = generate_report(
                session.registry, session.principal(), model, version, public_key=key
            )
            pdf, sha256 = rendered.pdf, rendered.sha256
    output.write_bytes(pdf)
    click.echo(f"wrote {output} ({len(pdf)} bytes, sha256 {sha256})")


@cli.group()
def evidence() -> None:
    """Export evidence bundles and verify them offline."""


@evidence.command("export")
@click.argument("model")
@click.argument("version", type=int)
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="zip file")
@click.pass_obj
def evidence_export(obj: dict[str, Any], model: str, version: int, output: Path) -> None:
    """Write the version's evidence bundle (events, proofs, checkpoint, report)."""
    from audits.signing import load_public_key
    from govreg.client import RemoteContext
    from govreg.context import Context
    from reports.service import export_evidence

    with _context(obj) as session:
        if isinstance(session, RemoteContext):
            data, sha256 = session.registry.download(model, version, "evidence")
            output.write_bytes(data)
            click.echo(f"wrote {output}: sha256 {sha256}")
            return
        assert isinstance(session, Context)
        key = load_public_key(session.settings.public_key_path)
        exported = export_evidence(
            session.registry, session.principal(), model, version, public_key=key
        )
    output.write_bytes(exported.bundle)
    click.echo(
        f"wrote {output}: {len(exported.evidence.events)} events proved against checkpoint "
        f"{exported.evidence.checkpoint.size}, sha256 {exported.sha256}"
    )


@evidence.command("verify")
@click.argument("bundle", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--public-key",
    required=True,
    type=click.Path(path_type=Path),
    help="the checkpoint public key you were given out of band",
)
def evidence_verify(bundle: Path, public_key: Path) -> None:
    """Verify a bundle offline: no database, no network, no govreg home."""
    from audits.signing import load_public_key
    from reports.bundle import verify_bundle

    result = verify_bundle(bundle.read_bytes(), load_public_key(public_key))
    click.echo(result.summary())
