"""Shared test kit for the registry and CLI tests.

Importable as ``govreg_kit`` (tests/ is on the path); the conftests of
tests/registry and tests/cli expose its fixtures:

- ``inputs``: small synthetic datasets and a LightGBM text model, built once
  per session, plus files a submission must refuse;
- ``kit``: an initialised home (SQLite or PostgreSQL), its context,
  principals created on first use (one or two per role, see PEOPLE), and
  shortcuts to drive and inspect a version; at teardown the ledger and the
  registry's projection must still verify.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

MODEL = "pd"
TARGET = "default"
PROTECTED = ("sex", "age_band")
SIGNERS = ("validator", "compliance_officer", "business_owner")
# The gates of policies/credit-risk.yaml, in policy order.
GATES = (
    ("performance", "performance"),
    ("fairness", "fairness"),
    ("data-schema", "data_schema"),
    ("explainability", "explainability"),
    ("stability", "stability"),
    ("latency", "latency"),
)
# The events of one version's whole life under credit-risk@1, in order.
LIFECYCLE_EVENTS = [
    "model.registered",
    "version.submitted",
    "evaluation.started",
    *["gate.evaluated"] * 6,
    "evaluation.completed",
    "signoff.recorded",
    "signoff.recorded",
    "signoff.recorded",
    "version.approved",
    "alias.set",
    "version.suspended",
    "version.reinstated",
    "version.retired",
]
PEOPLE = {
    "ds-1": "data_scientist",
    "ds-2": "data_scientist",
    "validator-1": "validator",
    "validator-2": "validator",
    "compliance-1": "compliance_officer",
    "compliance-2": "compliance_officer",
    "owner-1": "business_owner",
    "auditor-1": "auditor",
    "service-1": "service",
}


@dataclass(frozen=True)
class Inputs:
    """Files on disk for submissions (built once per session)."""

    root: Path
    model: Path
    model_text: str
    features: list[str]
    train_csv: Path
    validation_csv: Path
    train_parquet: Path
    validation_parquet: Path
    pickle: Path
    garbage_binary: Path
    garbage_text: Path
    empty_artifact: Path
    bad: dict[str, Path]


_inputs_cache: dict[str, Inputs] = {}


def build_inputs(root: Path) -> Inputs:
    from govreg.synthetic import feature_names, make_credit_data, train_lightgbm

    root.mkdir(parents=True, exist_ok=True)
    data = make_credit_data(1200, seed=1)
    train = data.iloc[:800].reset_index(drop=True)
    validation = data.iloc[800:].reset_index(drop=True)
    model_text = train_lightgbm(train, num_boost_round=20)
    model = root / "model.txt"
    model.write_text(model_text, encoding="utf-8")
    paths = {
        "train_csv": root / "train.csv",
        "validation_csv": root / "validation.csv",
        "train_parquet": root / "train.parquet",
        "validation_parquet": root / "validation.parquet",
    }
    train.to_csv(paths["train_csv"], index=False)
    validation.to_csv(paths["validation_csv"], index=False)
    train.to_parquet(paths["train_parquet"], index=False)
    validation.to_parquet(paths["validation_parquet"], index=False)

    pickled = root / "model.pkl"
    pickled.write_bytes(pickle.dumps({"model": model_text}, protocol=4))
    garbage_binary = root / "garbage.bin"
    garbage_binary.write_bytes(bytes(range(256)) * 8)
    garbage_text = root / "garbage.txt"
    garbage_text.write_text("this is not a model\n", encoding="utf-8")
    empty_artifact = root / "empty.txt"
    empty_artifact.write_bytes(b"")

    bad: dict[str, Path] = {}

    def write(name: str, frame: Any) -> None:
        bad[name] = root / f"{name}.csv"
        frame.to_csv(bad[name], index=False)

    write("header_only", validation.iloc[:0])
    write("no_target", validation.drop(columns=[TARGET]))
    three = validation.copy()
    three.loc[three.index[:5], TARGET] = 2
    write("three_classes", three)
    one = validation.copy()
    one[TARGET] = 0
    write("one_class", one)
    write("no_protected", validation.drop(columns=["sex"]))
    write("no_feature", validation.drop(columns=["income"]))
    bad["zero_bytes"] = root / "zero_bytes.csv"
    bad["zero_bytes"].write_bytes(b"")
    bad["wrong_suffix"] = root / "validation.json"
    bad["wrong_suffix"].write_text("{}", encoding="utf-8")
    return Inputs(
        root=root,
        model=model,
        model_text=model_text,
        features=feature_names(),
        pickle=pickled,
        garbage_binary=garbage_binary,
        garbage_text=garbage_text,
        empty_artifact=empty_artifact,
        bad=bad,
        **paths,
    )


def submit_args(files: Any, model: str = MODEL, **overrides: Any) -> list[str]:
    """``govreg submit`` arguments for the kit's good files with ``overrides``
    (``policy_id`` is the ``--policy`` option)."""
    values: dict[str, Any] = {
        "artifact": files.model,
        "train": files.train_csv,
        "validation": files.validation_parquet,
        "target": TARGET,
        "protected": ",".join(PROTECTED),
    }
    values.update(overrides)
    args = ["submit", model]
    for key, value in values.items():
        text = ",".join(value) if isinstance(value, list) else str(value)
        args += [f"--{key.replace('_id', '')}", text]
    return args


def submit_candidate(
    registry: Any, actor: Any, model: str, files: dict[str, Path], **extra: Any
) -> int:
    """Submit the files of ``govreg.synthetic.write_candidate`` (reason texts included)."""
    import json

    version: int = registry.submit(
        actor,
        model,
        artifact=files["artifact"],
        train=files["train"],
        validation=files["validation"],
        target=TARGET,
        protected=list(PROTECTED),
        reason_texts=json.loads(files["reasons"].read_text()),
        **extra,
    )
    return version


def passing_results(**verdicts: str) -> list[dict[str, Any]]:
    """Constructed gate results for the credit-risk policy; all pass unless overridden.

    ``verdicts`` maps a gate id (``-`` written as ``_``) to its verdict.
    """
    out = []
    for gate_id, kind in GATES:
        verdict = verdicts.get(gate_id.replace("-", "_"), "passed")
        out.append(
            {
                "gate_id": gate_id,
                "kind": kind,
                "verdict": verdict,
                "blocking": True,
                "values": {"measured": "0.9"},
                "thresholds": {"minimum": "0.8"},
                "message": f"{gate_id} {verdict} (constructed)",
            }
        )
    return out


@dataclass
class Kit:
    """An initialised home with one principal per role and shortcuts."""

    home: Any
    ctx: Any
    files: Inputs
    principals: dict[str, Any] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)

    # -- actors ------------------------------------------------------------------
    @property
    def registry(self) -> Any:
        return self.ctx.registry

    @property
    def settings(self) -> Any:
        return self.ctx.settings

    @property
    def admin(self) -> Any:
        return self.registry.authenticate(self.home.admin_key)

    def _ensure(self, name: str) -> None:
        """Create the principal ``name`` (role from PEOPLE) on first use."""
        if name not in self.principals:
            principal, key = self.registry.create_principal(self.admin, name, PEOPLE[name])
            self.principals[name] = principal
            self.keys[name] = key

    def __getitem__(self, name: str) -> Any:
        self._ensure(name)
        return self.principals[name]

    def people(self, *names: str) -> None:
        """Create these principals now (before a snapshot of the state)."""
        for name in names:
            self._ensure(name)

    def key(self, name: str) -> str:
        """The API key of ``name`` (created on first use)."""
        self._ensure(name)
        return self.keys[name]

    def principal(self, name: str, role: str) -> Any:
        """A Principal object that is not (necessarily) in the database."""
        from registry.services import Principal

        return Principal(name, role)

    def registry_at(self, clock: Callable[[], datetime]) -> Any:
        from registry.services import Registry

        return Registry(
            self.ctx.engine,
            self.ctx.ledger,
            self.registry.store,
            clock=clock,
        )

    def adopt(self, policy_yaml: str) -> Any:
        """Propose a policy (validator-1) and adopt it (compliance-1)."""
        import yaml

        from policies.schema import Policy

        policy = Policy.model_validate(yaml.safe_load(policy_yaml))
        self.registry.propose_policy(self["validator-1"], policy)
        return self.registry.approve_policy(self["compliance-1"], policy.ref, comment="adopted")

    # -- inspection --------------------------------------------------------------
    def size(self) -> int:
        with self.ctx.engine.connect() as conn:
            return int(self.ctx.ledger.head(conn)[0])

    def checkpoint_sizes(self) -> list[int]:
        with self.ctx.engine.connect() as conn:
            return [cp.size for cp in self.ctx.ledger.checkpoints(conn)]

    def rows(self, table: str, **equals: Any) -> list[dict[str, Any]]:
        from registry.projection import DatabaseView

        with self.ctx.engine.connect() as conn:
            return DatabaseView(conn).where(table, **equals)

    def row(self, model: str = MODEL, version: int = 1) -> dict[str, Any] | None:
        from registry.projection import DatabaseView

        with self.ctx.engine.connect() as conn:
            return DatabaseView(conn).get("versions", (model, version))

    def events(self, **filters: Any) -> list[Any]:
        with self.ctx.engine.connect() as conn:
            return list(self.ctx.ledger.events(conn, **filters))

    def blobs(self) -> set[Path]:
        root = Path(self.settings.store_path)
        return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()

    def refusals(self) -> list[tuple[str, str]]:
        """(actor, reason) of every ``access.denied`` event, oldest first."""
        return [(e.actor, e.data["reason"]) for e in self.events(types=["access.denied"])]

    def state(self) -> dict[str, Any]:
        """Everything a refused action must leave untouched.

        A refusal by role or by segregation of duties is itself recorded, as
        an ``access.denied`` event signed in a checkpoint of its own; the tests
        of refusals check that event separately, so neither is counted here.
        """
        refused = {e.seq for e in self.events(types=["access.denied"])}
        return {
            "size": self.size() - len(refused),
            "checkpoints": [s for s in self.checkpoint_sizes() if s not in refused],
            "versions": sorted(str(sorted(r.items())) for r in self.rows("versions")),
            "aliases": sorted(str(sorted(r.items())) for r in self.rows("aliases")),
            "signoffs": sorted(str(sorted(r.items())) for r in self.rows("signoffs")),
            "principals": sorted(str(sorted(r.items())) for r in self.rows("principals")),
            "blobs": self.blobs(),
        }

    def verify(self) -> Any:
        from audits.signing import load_public_key

        return self.registry.verify(
            None,
            load_public_key(self.settings.public_key_path),
            anchor_dir=self.settings.anchors_path,
        )

    # -- driving a version -------------------------------------------------------
    def submit(self, model: str = MODEL, *, by: str = "ds-1", **overrides: Any) -> int:
        args: dict[str, Any] = {
            "artifact": self.files.model,
            "train": self.files.train_csv,
            "validation": self.files.validation_parquet,
            "target": TARGET,
            "protected": list(PROTECTED),
        }
        args.update(overrides)
        number: int = self.registry.submit(self[by], model, **args)
        return number

    def evaluated(
        self,
        model: str = MODEL,
        *,
        by: str = "ds-1",
        results: list[dict[str, Any]] | None = None,
    ) -> int:
        """Submit a version and complete its evaluation with constructed results."""
        version = self.submit(model, by=by)
        number = self.registry.start_evaluation(self[by], model, version)
        self.registry.evaluations.record_evaluation(
            self[by],
            model,
            version,
            number,
            passing_results() if results is None else results,
        )
        return version

    def sign(self, who: str, model: str = MODEL, version: int = 1, *, approve: bool = True) -> Any:
        actor = self[who]
        return self.registry.signoff(
            actor,
            model,
            version,
            role=actor.role,
            approve=approve,
            comment=f"{who} looked at it",
        )

    def approved(self, model: str = MODEL) -> int:
        version = self.evaluated(model)
        for who in ("validator-1", "compliance-1", "owner-1"):
            self.sign(who, model, version)
        return version


def make_kit(home: Any, files: Inputs) -> Kit:
    ctx = home.context()
    kit = Kit(home=home, ctx=ctx, files=files)
    kit.keys["admin"] = home.admin_key
    kit.principals["admin"] = kit.admin
    return kit


# -- fixtures (re-exported by the conftests) -------------------------------------------
@pytest.fixture(scope="session")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    """Synthetic data, a LightGBM text model and refusal files, built once."""
    if "inputs" not in _inputs_cache:
        _inputs_cache["inputs"] = build_inputs(tmp_path_factory.mktemp("inputs"))
    return _inputs_cache["inputs"]


def _kit(home: Any, files: Inputs) -> Iterator[Kit]:
    made = make_kit(home, files)
    try:
        yield made
        # Whatever a test did or was refused, the ledger and its projection verify.
        made.verify()
    finally:
        made.ctx.close()


@pytest.fixture
def kit(home: Any, inputs: Inputs) -> Iterator[Kit]:
    """A home on SQLite and on PostgreSQL (where reachable); verified at teardown."""
    yield from _kit(home, inputs)


@pytest.fixture
def sqlite_kit(sqlite_home: Any, inputs: Inputs) -> Iterator[Kit]:
    """A home on SQLite only; verified at teardown."""
    yield from _kit(sqlite_home, inputs)
