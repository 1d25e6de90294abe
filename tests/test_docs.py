"""The role guides in docs/ are run, so their commands cannot go stale.

How it works (and what a guide writer must follow):

- Every fenced block of a guide is either run or shown. ```bash and ```sh
  blocks are run by ``bash -euo pipefail``, ```python blocks by this
  interpreter (``python -``, the same virtual environment), all blocks of one
  guide in order, in one script, in one temporary working folder, so a later
  block sees what an earlier one did. A block must therefore be valid in
  sequence: an alternative that conflicts with it (a rejection right after an
  approval) goes in prose or in a ```text block.
- ```text and ```json blocks are shown, never run (output, illustrations). A
  shown block that looks like a command must say why it is not run, in the
  paragraph just before it ("Not run here: ..."). Any other language fails
  :func:`test_every_block_is_run_or_shown_with_a_reason`.
- Each person's API key is a named variable the test sets: ``$ADMIN_KEY``,
  ``$DS_KEY``, ``$VALIDATOR_KEY``, ``$COMPLIANCE_KEY``, ``$OWNER_KEY``,
  ``$AUDITOR_KEY``, ``$SERVICE_KEY`` (principals ds-1, validator-1,
  compliance-1, owner-1, auditor-1, service-1). ``GOVREG_HOME`` is set,
  ``GOVREG_API_KEY`` is not (a guide exports it, as its reader would).
  ``$GOVREG_SERVER`` is the address of a running ``govreg serve`` where a
  guide needs one (not ``GOVREG_URL``, which would switch the CLI to remote
  mode). ``$RUN_ID`` is an MLflow run that logged the candidate model, also
  registered as MLflow model ``credit-pd`` version 1; ``MLFLOW_TRACKING_URI``
  points at that SQLite tracking store.
- The working folder holds the candidate files of
  :func:`govreg.synthetic.write_candidate` (``model.txt``, ``train.csv``,
  ``validation.csv``, ``reasons.json``). Models are ``credit-pd``; the state
  each guide starts from is written in :data:`STARTS_FROM` and in the guide.
- Text a guide shows for a real installation (``/srv/govreg``, a PostgreSQL
  URL, ``/mnt/anchors``) is replaced by :data:`SUBSTITUTIONS`, and only
  there; each replaced text must occur in its guide.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
GUIDES = (
    "operator.md",
    "data-scientist.md",
    "validator-and-compliance.md",
    "auditor.md",
    "service-owner.md",
)
RUN = {"bash", "sh", "python"}
SHOWN = {"text", "json"}
COMMAND_LIKE = re.compile(r"^\s*(\$ )?(govreg|curl|python|export|pip)\b", re.MULTILINE)
FENCE = re.compile(r"^```(?P<lang>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
MODEL = "credit-pd"
# principal name, role, and the variable a guide reads its key from
PEOPLE = (
    ("ds-1", "data_scientist", "DS_KEY"),
    ("validator-1", "validator", "VALIDATOR_KEY"),
    ("compliance-1", "compliance_officer", "COMPLIANCE_KEY"),
    ("owner-1", "business_owner", "OWNER_KEY"),
    ("auditor-1", "auditor", "AUDITOR_KEY"),
    ("service-1", "service", "SERVICE_KEY"),
)
STARTS_FROM = {
    "operator.md": "nothing: no home, no principals",
    "data-scientist.md": "an empty registry, the principals, an MLflow run and registered model",
    "validator-and-compliance.md": "credit-pd v1 submitted by ds-1, evaluated, awaiting sign-off",
    "auditor.md": "credit-pd v1 approved and promoted to champion",
    "service-owner.md": "credit-pd v1 approved and promoted to champion; a server running",
}
# guide -> (text in the guide, key of the replacement in the run's values)
SUBSTITUTIONS = {
    "operator.md": (
        ("/srv/govreg", "home"),
        ("postgresql+psycopg://govreg@db:5432/govreg", "database_url"),
    ),
    "auditor.md": (("/mnt/anchors", "anchors"),),
}


@dataclass(frozen=True)
class Block:
    guide: str
    line: int
    lang: str
    body: str
    before: str  # the paragraph just before the fence

    @property
    def where(self) -> str:
        return f"docs/{self.guide}:{self.line}"


def blocks(guide: str) -> list[Block]:
    text = (DOCS / guide).read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        prose = text[: match.start()].rstrip().split("\n\n")[-1]
        found.append(
            Block(
                guide=guide,
                line=text.count("\n", 0, match.start()) + 1,
                lang=match["lang"].strip(),
                body=match["body"],
                before=prose,
            )
        )
    return found


def script(guide: str, values: dict[str, str]) -> str:
    """The run blocks of ``guide`` as one bash script, substitutions applied."""
    parts = ["set -euo pipefail"]
    for block in blocks(guide):
        body = block.body
        for text, key in SUBSTITUTIONS.get(guide, ()):
            body = body.replace(text, values[key])
        parts.append(f'echo "### {block.where} at $(date +%s.%N)" >&2')
        if block.lang in ("bash", "sh"):
            parts.append(body)
        elif block.lang == "python":
            parts.append(f"\"$PYTHON\" - <<'GOVREG_DOCS_PY'\n{body}GOVREG_DOCS_PY")
    return "\n".join(parts) + "\n"


def run_guide(guide: str, cwd: Path, env: dict[str, str], values: dict[str, str]) -> str:
    started = time.monotonic()
    result = subprocess.run(
        ["bash", "-c", script(guide, values)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        # a hang, not a slow machine: the eight guide tests took 4.5 minutes together
        # beside one other test run; one guide ran past 10 minutes beside three
        timeout=1800,
        check=False,
    )
    output = f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode == 0, f"{guide} failed (exit {result.returncode})\n{output}"
    print(f"{guide}: {time.monotonic() - started:.1f} s")
    print("\n".join(line for line in result.stderr.splitlines() if line.startswith("### ")))
    return result.stdout


def base_env(**extra: str) -> dict[str, str]:
    """This process's environment without any govreg or MLflow setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVREG_", "MLFLOW_"))}
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHON"] = sys.executable
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"  # as govreg itself sets it
    env.update(extra)
    return env


# -- the meta-test ---------------------------------------------------------------------
def test_every_block_is_run_or_shown_with_a_reason() -> None:
    problems = []
    for guide in GUIDES:
        found = blocks(guide)
        assert found, f"no fenced blocks found in {guide}"
        for block in found:
            if block.lang in RUN:
                continue
            if block.lang not in SHOWN:
                problems.append(f"{block.where}: ```{block.lang} is neither run nor shown")
            elif COMMAND_LIKE.search(block.body) and "not run" not in block.before.lower():
                problems.append(
                    f"{block.where}: a shown block with commands needs a reason "
                    "('Not run here: ...') in the paragraph before it"
                )
        for text, _ in SUBSTITUTIONS.get(guide, ()):
            if text not in (DOCS / guide).read_text(encoding="utf-8"):
                problems.append(f"docs/{guide}: substituted text {text!r} no longer occurs")
    assert problems == []


def test_the_parser_sees_runs_and_substitutions() -> None:
    one = blocks("operator.md")[0]
    assert one.lang == "bash"
    assert "govreg init" in one.body
    body = script("operator.md", {"home": "/var/lib/govreg-a", "database_url": "sqlite:///x.db"})
    assert "/srv/govreg" not in body
    assert "export GOVREG_HOME=/var/lib/govreg-a" in body


# -- shared state ------------------------------------------------------------------------
@dataclass
class Template:
    """A govreg home (SQLite inside the home) with principals and the candidate files."""

    home: Path
    files: Path
    keys: dict[str, str]
    run_id: str
    tracking_uri: str


def settings(home: Path, database_url: str | None = None) -> Any:
    from govreg.settings import Settings

    return Settings(home=home, database_url=database_url)


def context(home: Path, database_url: str | None = None) -> Any:
    from govreg.context import build

    return build(settings(home, database_url))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """Candidate trained once; a home with credit-pd v1 evaluated, awaiting sign-off."""
    from govreg.context import init_home
    from govreg.synthetic import log_to_mlflow, write_candidate

    root = tmp_path_factory.mktemp("docs-template")
    files = root / "files"
    paths = write_candidate(files)
    home = root / "home"
    init_home(settings(home))
    keys = {"ADMIN_KEY": (home / "admin.key").read_text(encoding="utf-8").strip()}
    ctx = context(home)
    try:
        registry = ctx.registry
        admin = registry.authenticate(keys["ADMIN_KEY"])
        for name, role, variable in PEOPLE:
            _, keys[variable] = registry.create_principal(admin, name, role)
        ds = registry.authenticate(keys["DS_KEY"])
        registry.submit(
            ds,
            MODEL,
            artifact=paths["artifact"],
            train=paths["train"],
            validation=paths["validation"],
            target="default",
            protected=["sex", "age_band"],
            reason_texts=json.loads(paths["reasons"].read_text(encoding="utf-8")),
        )
        assert registry.evaluate(ds, MODEL, 1).value == "awaiting_signoff"
    finally:
        ctx.close()
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    # MLflow puts a new SQLite store's artifacts in ./mlruns: next to the database,
    # as a data scientist who keeps both in one folder has them (govreg reads file:
    # artifacts only inside the store's folder by default)
    here = Path.cwd()
    os.chdir(root)
    try:
        logged = log_to_mlflow(
            paths["artifact"].read_text(encoding="utf-8"),
            tracking_uri=tracking_uri,
            params={"num_leaves": "15"},
            metrics={"auc": 0.85},
            register_as=MODEL,
        )
    finally:
        os.chdir(here)
    assert logged["models_uri"] == f"models:/{MODEL}/1"
    return Template(
        home=home, files=files, keys=keys, run_id=logged["run_id"], tracking_uri=tracking_uri
    )


@dataclass
class Workspace:
    cwd: Path
    home: Path
    env: dict[str, str]


def workspace(template: Template, tmp_path: Path, *, fresh_home: bool = False) -> Workspace:
    """A working folder with the candidate files and a copy of the template's home."""
    cwd = tmp_path / "work"
    shutil.copytree(template.files, cwd)
    home = tmp_path / "home"
    if fresh_home:
        from govreg.context import init_home

        init_home(settings(home))
        keys = {"ADMIN_KEY": (home / "admin.key").read_text(encoding="utf-8").strip()}
        ctx = context(home)
        try:
            admin = ctx.registry.authenticate(keys["ADMIN_KEY"])
            for name, role, variable in PEOPLE:
                _, keys[variable] = ctx.registry.create_principal(admin, name, role)
        finally:
            ctx.close()
    else:
        shutil.copytree(template.home, home)
        keys = template.keys
    env = base_env(
        GOVREG_HOME=str(home),
        MLFLOW_TRACKING_URI=template.tracking_uri,
        RUN_ID=template.run_id,
        **keys,
    )
    return Workspace(cwd=cwd, home=home, env=env)


def approve_and_promote(home: Path, keys: dict[str, str]) -> None:
    ctx = context(home)
    try:
        registry = ctx.registry
        for variable, role in (
            ("VALIDATOR_KEY", "validator"),
            ("COMPLIANCE_KEY", "compliance_officer"),
            ("OWNER_KEY", "business_owner"),
        ):
            registry.signoff(
                registry.authenticate(keys[variable]),
                MODEL,
                1,
                role=role,
                approve=True,
                comment="reviewed",
            )
        registry.promote(registry.authenticate(keys["OWNER_KEY"]), MODEL, 1, alias="champion")
    finally:
        ctx.close()


def statuses(home: Path, keys: dict[str, str], database_url: str | None = None) -> dict[Any, Any]:
    """{(model, version): status} and every principal's state, read in process."""
    ctx = context(home, database_url)
    try:
        admin = ctx.registry.authenticate(keys["ADMIN_KEY"])
        return {
            (row["model"], row["version"]): row["status"]
            for row in ctx.registry.list_versions(admin)
        }
    finally:
        ctx.close()


def verified(home: Path, database_url: str | None = None) -> Any:
    from audits.signing import load_public_key

    ctx = context(home, database_url)
    try:
        return ctx.registry.verify(
            None,
            load_public_key(ctx.settings.public_key_path),
            anchor_dir=ctx.settings.anchors_path,
        )
    finally:
        ctx.close()


def event_types(home: Path) -> list[str]:
    ctx = context(home)
    try:
        with ctx.engine.connect() as conn:
            return [event.type for event in ctx.ledger.events(conn)]
    finally:
        ctx.close()


# -- the guides --------------------------------------------------------------------------
def test_operator_guide(tmp_path: Path, database_url: str) -> None:
    home = tmp_path / "srv-govreg"
    cwd = tmp_path / "work"
    cwd.mkdir()
    run_guide(
        "operator.md",
        cwd,
        base_env(),
        {"home": str(home), "database_url": database_url},
    )
    admin_key = (home / "admin.key").read_text(encoding="utf-8").strip()
    ctx = context(home, database_url)
    try:
        admin = ctx.registry.authenticate(admin_key)
        people = {
            p.name: (p.role, p.revoked_at is not None) for p in ctx.registry.list_principals(admin)
        }
    finally:
        ctx.close()
    assert people == {
        "admin": ("admin", False),
        "ds-1": ("data_scientist", False),
        "validator-1": ("validator", False),
        "compliance-1": ("compliance_officer", False),
        "owner-1": ("business_owner", False),
        "auditor-1": ("auditor", False),
        "service-1": ("service", False),
        "leaver-1": ("validator", True),
    }
    assert not (home / "keys" / "kek.next.json").exists()
    verified(home, database_url)


def test_data_scientist_guide(template: Template, tmp_path: Path) -> None:
    import pandas as pd

    space = workspace(template, tmp_path, fresh_home=True)
    run_guide("data-scientist.md", space.cwd, space.env, {})
    assert statuses(space.home, {**template.keys, **_keys(space)}) == {
        (MODEL, 1): "awaiting_signoff",  # files, evaluated with the CLI
        (MODEL, 2): "submitted",  # runs:/$RUN_ID/model
        (MODEL, 3): "submitted",  # models:/credit-pd/1
        (MODEL, 4): "awaiting_signoff",  # the SDK
        ("card-pd", 1): "gates_failed",  # own data, explainability under credit-risk@1
        ("loan-pd", 1): "awaiting_signoff",  # categories and missing values, after a refusal
    }
    assert (space.cwd / "applications_train.csv").exists()
    assert (space.cwd / "applications_validation.parquet").exists()
    assert list(pd.read_csv(space.cwd / "loans_train.csv").columns)[:6] == LOAN_FEATURES
    ctx = context(space.home)
    try:
        submitted = ctx.registry.submission("loan-pd", 1)
    finally:
        ctx.close()
    contract = {f["name"]: f for f in submitted["contract"]["features"]}
    assert list(contract) == LOAN_FEATURES
    assert contract["housing"]["categories"] == ["mortgage", "own", "rent"]
    assert contract["loan_purpose"]["kind"] == "categorical"
    assert float(contract["income"]["null_rate"]) > 0.02
    assert submitted["reason_texts"]["housing"] == {
        "default": "Housing status",
        "categories": {"rent": "Renting rather than owning or buying a home"},
    }
    verified(space.home)


LOAN_FEATURES = [
    "income",
    "debt_to_income",
    "credit_utilisation",
    "delinquencies_2y",
    "housing",
    "loan_purpose",
]


def _keys(space: Workspace) -> dict[str, str]:
    return {k: v for k, v in space.env.items() if k.endswith("_KEY")}


def test_validator_and_compliance_guide(template: Template, tmp_path: Path) -> None:
    space = workspace(template, tmp_path)
    run_guide("validator-and-compliance.md", space.cwd, space.env, {})
    assert statuses(space.home, template.keys) == {
        (MODEL, 1): "retired",
        (MODEL, 2): "submitted",  # under credit-risk@3, the other cutoff
    }
    ctx = context(space.home)
    try:
        compliance = ctx.registry.authenticate(template.keys["COMPLIANCE_KEY"])
        policies = {
            (p["id"], p["version"]): p["status"] for p in ctx.registry.list_policies(compliance)
        }
    finally:
        ctx.close()
    assert policies[("credit-risk", 2)] == policies[("credit-risk", 3)] == "adopted"
    assert row_cutoff(space.home, MODEL, 2) == "0.45"
    verified(space.home)


def row_cutoff(home: Path, model: str, version: int) -> str:
    from registry.projection import DatabaseView

    ctx = context(home)
    try:
        with ctx.engine.connect() as conn:
            row = DatabaseView(conn).get("versions", (model, version))
    finally:
        ctx.close()
    assert row is not None
    return str(row["cutoff"])


def test_auditor_guide(template: Template, tmp_path: Path) -> None:
    space = workspace(template, tmp_path)
    approve_and_promote(space.home, template.keys)
    shutil.copy(space.home / "keys" / "checkpoint.pub", space.cwd / "checkpoint.pub")
    out = run_guide("auditor.md", space.cwd, space.env, {"anchors": str(space.home / "anchors")})
    assert (space.cwd / "credit-pd-v1.pdf").read_bytes().startswith(b"%PDF-")
    assert (space.cwd / "credit-pd-v1.zip").stat().st_size > 0
    assert re.search(r"^ledger intact: ", out, re.MULTILINE)
    assert re.search(r"^bundle intact: credit-pd v1, ", out, re.MULTILINE)
    assert statuses(space.home, template.keys) == {(MODEL, 1): "promoted"}
    types = event_types(space.home)
    assert types.count("report.generated") == 2  # the PDF, and the bundle's report
    verified(space.home)


@pytest.fixture
def served(template: Template, tmp_path: Path) -> Iterator[Workspace]:
    from api_server import start_server, stop
    from govreg_homes import Home

    space = workspace(template, tmp_path)
    approve_and_promote(space.home, template.keys)
    pinned = space.cwd / "pinned"
    pinned.mkdir()
    shutil.copy(space.home / "keys" / "checkpoint.pub", pinned / "checkpoint.pub")
    home = Home(
        path=space.home,
        database_url=settings(space.home).db_url,
        admin_key=template.keys["ADMIN_KEY"],
        env={"GOVREG_HOME": str(space.home)},
    )
    server = start_server(home)
    space.env["GOVREG_SERVER"] = server.url
    try:
        yield space
    finally:
        stop(server)


def test_service_owner_guide(template: Template, served: Workspace) -> None:
    out = run_guide("service-owner.md", served.cwd, served.env, {})
    assert statuses(served.home, template.keys) == {(MODEL, 1): "promoted"}
    types = event_types(served.home)
    assert "serving.refused" not in types
    assert types.count("serving.loaded") == 2  # by the HTTP server's worker, by load_approved
    assert types.count("serving.fetched") == 1  # by fetch_approved
    assert '"decision":"decline"' in out
    assert '"decision":"approve"' in out
    verified(served.home)
