"""The command line against hostile input: names with a trailing newline or that only
case tells apart, secret files left open to others, plain HTTP beyond loopback."""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from govreg_kit import submit_args

from core.errors import InputError

NAME_RULE = "use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"


def run(kit: Any, *args: str, who: str = "admin") -> Any:
    return kit.home.cli(*args, api_key=kit.key(who))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_name_with_a_trailing_newline_is_refused(kit: Any) -> None:
    """``re.match(r'...$')`` matched before a final newline: ``ds-1\\n`` was
    created and, being another name than ds-1, signed ds-1's own version."""
    kit.people("ds-1")
    before = kit.state()
    for name in ("ds-1\n", "ds-1\r", "ds-1 ", "ds\u20101", "ｄｓ-1", "ds-1\x1b[0m"):
        result = run(kit, "principals", "create", name, "--role", "validator", "--person", "ds-1")
        shown = name.encode("unicode_escape").decode()
        assert (result.exit_code, result.stderr) == (
            2,
            f"error: principal name '{shown}' is not allowed: {NAME_RULE}\n",
        ), name
    result = kit.home.cli(*submit_args(kit.files, model="pd\n"), api_key=kit.key("ds-1"))
    assert (result.exit_code, result.stderr) == (
        2,
        f"error: model name 'pd\\n' is not allowed: {NAME_RULE}\n",
    )
    assert kit.state() == before


def test_a_name_only_case_tells_from_another_is_refused(kit: Any) -> None:
    kit.people("ds-1")
    before = kit.state()
    for name, existing in (("DS-1", "ds-1"), ("Admin", "admin")):
        result = run(kit, "principals", "create", name, "--role", "validator", "--person", "ds-1")
        assert (result.exit_code, result.stderr) == (
            2,
            f"error: principal '{name}' is too like the existing principal '{existing}' "
            "(names may not differ only in case or Unicode form); choose another name\n",
        )
    assert kit.state() == before
    key = kit.key("ds-1")
    assert kit.home.cli(*submit_args(kit.files, model="pd"), api_key=key).exit_code == 0
    before = kit.state()
    result = kit.home.cli(*submit_args(kit.files, model="PD"), api_key=key)
    assert (result.exit_code, result.stderr) == (
        2,
        "error: model 'PD' is too like the existing model 'pd' (names may not differ only in "
        "case or Unicode form); choose another name\n",
    )
    assert kit.state() == before  # no blob left behind either
    # the same name again is the same model: a new version, not a look-alike
    assert kit.home.cli(*submit_args(kit.files, model="pd"), api_key=key).exit_code == 0


def test_an_expiry_without_a_time_zone_is_refused_by_the_service(kit: Any) -> None:
    """The SDK's path (the API's schema refuses it first; the CLI reads --expires as UTC)."""
    before = kit.state()
    with pytest.raises(InputError) as caught:
        kit.registry.create_principal(
            kit.admin, "later", "auditor", expires_at=datetime(2099, 1, 1)
        )
    assert str(caught.value) == ("expires_at has no time zone; give one, e.g. 2030-01-31T00:00:00Z")
    assert kit.state() == before


def test_audit_log_shows_key_hashes_to_admins_only(kit: Any) -> None:
    kit.people("auditor-1", "ds-1")
    admin = json.loads(run(kit, "audit", "log", "--json").stdout)
    auditor = json.loads(run(kit, "audit", "log", "--json", who="auditor-1").stdout)
    created = [e for e in admin if e["type"] == "principal.created"]
    assert [e["data"]["name"] for e in created] == ["admin", "auditor-1", "ds-1"]
    assert all(len(e["data"]["key_hash"]) == 64 for e in created)
    assert [e["seq"] for e in auditor] == [e["seq"] for e in admin]
    for theirs, mine in zip(admin, auditor, strict=True):
        assert mine["data"] == {k: v for k, v in theirs["data"].items() if k != "key_hash"}
    for e in created:
        assert e["data"]["key_hash"] not in json.dumps(auditor)


# -- secret files ---------------------------------------------------------------------
SECRETS = ("keys/kek.json", "keys/checkpoint.key", "admin.key")


def _init(home: Path) -> Any:
    from govreg.cli import cli

    env = {"GOVREG_HOME": str(home), "GOVREG_DATABASE_URL": None, "GOVREG_API_KEY": None}
    return CliRunner().invoke(cli, ["init"], env=env, catch_exceptions=False)


def test_stale_world_writable_temporary_files_do_not_make_keys_readable(tmp_path: Path) -> None:
    """A ``.tmp`` beside each secret, created 0666 beforehand (the old writer reused
    it: O_TRUNC without O_EXCL keeps a file's mode): the keys still come out 0600."""
    home = tmp_path / "home"
    (home / "keys").mkdir(parents=True)
    planted = [home / f"{name}.tmp" for name in SECRETS]
    for path in planted:
        path.write_bytes(b"planted")
        os.chmod(path, 0o666)
    old = os.umask(0)  # and the most permissive umask
    try:
        result = _init(home)
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    for name in SECRETS:
        assert mode(home / name) == 0o600, name
    assert mode(home / "keys") == 0o700
    assert f"{home / 'keys' / 'kek.json'} (0600)" in result.stdout
    for path in planted:  # never opened: the writer uses fresh, exclusive names
        assert path.read_bytes() == b"planted"
    assert sorted(p.name for p in (home / "keys").iterdir()) == [
        "checkpoint.key",
        "checkpoint.key.tmp",
        "checkpoint.pub",
        "kek.json",
        "kek.json.tmp",
    ]


def test_a_planted_link_at_a_temporary_name_is_not_followed(tmp_path: Path) -> None:
    from audits.keyring import write_secret_file

    target = tmp_path / "victim"
    target.write_bytes(b"untouched")
    (tmp_path / "admin.key.tmp").symlink_to(target)
    write_secret_file(tmp_path / "admin.key", b"secret\n")
    assert target.read_bytes() == b"untouched"
    assert (tmp_path / "admin.key").read_bytes() == b"secret\n"
    assert mode(tmp_path / "admin.key") == 0o600


@pytest.mark.parametrize("name", SECRETS)
def test_init_and_serve_refuse_a_secret_open_to_others(tmp_path: Path, name: str) -> None:
    from govreg.cli import cli

    home = tmp_path / "home"
    assert _init(home).exit_code == 0
    path = home / name
    os.chmod(path, 0o644)
    expected = (
        f"error: secret file {path} is open to group or others (mode 0644); run "
        f"`chmod 600 {path}`, and treat the key as exposed if anyone else could read it\n"
    )
    result = _init(home)
    assert (result.exit_code, result.stdout, result.stderr) == (3, "", expected)
    env = {"GOVREG_HOME": str(home), "GOVREG_DATABASE_URL": None, "GOVREG_API_KEY": None}
    served = CliRunner().invoke(cli, ["serve", "--port", "1"], env=env, catch_exceptions=False)
    assert (served.exit_code, served.stderr) == (3, expected)
    os.chmod(path, 0o600)
    assert _init(home).exit_code == 0


# -- binding beyond loopback ----------------------------------------------------------
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.0.2.10", "example.invalid"])
def test_serve_refuses_plain_http_beyond_loopback(sqlite_kit: Any, host: str) -> None:
    """Refused before anything binds (port 1 would need privileges: never reached)."""
    from govreg.cli import cli

    result = CliRunner().invoke(
        cli, ["serve", "--host", host, "--port", "1"], env=sqlite_kit.home.env
    )
    shown = host or "every address"
    assert (result.exit_code, result.stderr) == (
        3,
        f"error: refusing to serve plain HTTP on {shown}: API keys and applicants' data would "
        "cross the network in clear text; give --tls-cert and --tls-key, or bind 127.0.0.1 "
        "behind a TLS proxy, or pass --insecure-bind if a proxy on a trusted network "
        "terminates TLS\n",
    )


def test_serve_wants_a_certificate_and_its_key_together(sqlite_kit: Any) -> None:
    from govreg.cli import cli

    cert = sqlite_kit.home.path / "cert.pem"
    cert.write_text("x")
    result = CliRunner().invoke(
        cli, ["serve", "--host", "0.0.0.0", "--tls-cert", str(cert)], env=sqlite_kit.home.env
    )
    assert (result.exit_code, result.stderr) == (
        3,
        "error: give --tls-cert and --tls-key together (certificate and its key)\n",
    )


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.1", False),
        ("example.invalid", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    from govreg.cli.serve import is_loopback

    assert is_loopback(host) is loopback
