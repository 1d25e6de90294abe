"""govreg serve: the HTTP API under uvicorn, plain HTTP only on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from govreg.cli.core import cli, read_settings


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
    settings = read_settings()
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
