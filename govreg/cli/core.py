"""The core of the ``govreg`` command line: the click group, ``--json``, sessions,
and the one place errors become output and exit codes.

Every command acts as an authenticated principal (the API key from ``--api-key``
or ``GOVREG_API_KEY``), and every error a user can cause is a
:class:`core.errors.GovregError`, turned in :class:`GovregGroup` into one line on
stderr (with ``--json``, a JSON object on stdout) and its exit code. A command
that ran but whose outcome is a refusal of the version (``evaluate`` ending
``gates_failed``, ``signoff --reject``) exits :data:`REFUSED`. The README's
"Exit codes" lists every code.

Module level imports: click and the standard library only (start-up stays fast).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
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
_WARNINGS = "govreg.cli.warnings"  # the name of the handler that prints warnings


def read_settings(api_key: str | None = None) -> Settings:
    """The GOVREG_* settings, with ``--api-key`` if it was given."""
    from govreg.settings import load_settings

    if api_key:
        from pydantic import SecretStr

        return load_settings(api_key=SecretStr(api_key))
    return load_settings()


@contextmanager
def open_context(obj: dict[str, Any]) -> Iterator[Session]:
    """The local home, or with GOVREG_URL set a client of that server (same rules,
    enforced by the server's service layer)."""
    from govreg.context import open_session

    session = open_session(read_settings(obj.get("api_key")))
    try:
        yield session
    finally:
        session.close()


@contextmanager
def open_home(obj: dict[str, Any]) -> Iterator[Context]:
    """The local home, for a command that runs only on the server's host (its keys,
    decision log, MLflow mirror); through GOVREG_URL the session refuses it, naming
    the command."""
    from govreg.context import open_local

    command = click.get_current_context().command_path.split(" ", 1)[-1]
    home = open_local(read_settings(obj.get("api_key")), command)
    try:
        yield home
    finally:
        home.close()


def emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    """``data`` as JSON with ``--json``, else what ``human`` prints."""
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


def error_type(exit_code: int, fallback: str) -> str:
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
        error = {"type": error_type(exit_code, kind), "message": message, "exit_code": exit_code}
        click.echo(json.dumps({"error": error}, indent=2, sort_keys=True))
    else:
        click.echo(f"error: {message}", err=True)
    ctx.exit(exit_code)


def refused_if(status: Any, *refusing: str) -> None:
    """Exit REFUSED when the command's outcome ``status`` refuses the version."""
    if str(getattr(status, "value", status)) in refusing:
        click.get_current_context().exit(REFUSED)


def _warnings_to_stderr() -> None:
    """govreg's own warnings (e.g. a failed MLflow mirror) as ``warning: ...`` on
    stderr, one handler per process (logging is imported here: ``--help`` never
    gets this far)."""
    import logging

    registry_log = logging.getLogger("registry")
    if any(h.get_name() == _WARNINGS for h in registry_log.handlers):
        return

    class WarningLine(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            click.echo(f"warning: {record.getMessage()}", err=True)

    handler = WarningLine(logging.WARNING)
    handler.set_name(_WARNINGS)
    registry_log.addHandler(handler)


class GovregGroup(click.Group):
    """Turns any GovregError into its exit code and one line on stderr, or with
    --json a JSON object on stdout; with --json a usage error is JSON too."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_ARGS] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        from core.errors import GovregError

        _warnings_to_stderr()
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


def main() -> None:
    cli(prog_name="govreg")
