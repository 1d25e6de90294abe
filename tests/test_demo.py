"""The README's main job, run as a test: its outcome is checked, not just its exit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def run(root: Path) -> dict[str, Any]:
    """The demo's outcome; a failed step is asserted at the end of the test, after the rest."""
    from govreg.demo import DemoIncomplete, run_demo

    try:
        return run_demo(root=root)
    except DemoIncomplete as incomplete:
        return incomplete.result


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path) -> None:
    from audits.signing import load_public_key
    from govreg.context import build
    from govreg.settings import Settings
    from govreg.synthetic import CATEGORIES

    result = run(tmp_path)

    assert result["versions"] == {"biased": 1, "fair": 2}
    assert result["outcome"] == {"biased": "gates_failed", "fair": "awaiting_signoff"}
    assert result["final"] == {"biased": "gates_failed", "fair": "promoted"}
    assert result["refusal"] == "'ds-team' (data_scientist) may not sign"

    settings = Settings(home=tmp_path / ".govreg-demo", database_url=None)
    ctx = build(settings)
    try:
        admin_key = (settings.resolved_home / "admin.key").read_text().strip()
        admin = ctx.registry.authenticate(admin_key)
        biased = ctx.registry.show_version(admin, "credit-pd", 1)
        fair = ctx.registry.show_version(admin, "credit-pd", 2)
        report = ctx.registry.verify(
            None, load_public_key(settings.public_key_path), anchor_dir=settings.anchors_path
        )
    finally:
        ctx.close()

    verdicts = {g["gate_id"]: g["verdict"] for g in biased["gates"]}
    assert verdicts["fairness"] == "failed"
    assert biased["status_reason"] == "fairness failed"
    assert {g["gate_id"]: g["verdict"] for g in fair["gates"]} == {
        "performance": "passed",
        "fairness": "warned",  # equalized odds intervals on 40,000 rows reach above 0.10
        "data-schema": "passed",
        "explainability": "passed",
        "stability": "passed",
        "latency": "passed",
    }
    assert fair["aliases"] == ["champion"]
    assert sorted(s["role"] for s in fair["signoffs"]) == [
        "business_owner",
        "compliance_officer",
        "validator",
    ]
    assert fair["signoffs_missing"] == []
    assert report.size == result["ledger_size"]
    # Both candidates came from MLflow; their runs are the recorded lineage.
    submissions = {
        label: ctx_submission(settings, version["version"])
        for label, version in (("biased", biased), ("fair", fair))
    }
    for label, submission in submissions.items():
        assert submission["lineage"]["mlflow"]["run_id"] == result["tracked"][label]["run_id"]
    # The data: the biased candidate's files are CSV, the fair one's Parquet; both have the
    # categorical columns (the model's own categories) and missing values in training.
    assert [submissions[k]["train"]["format"] for k in ("biased", "fair")] == ["csv", "parquet"]
    assert [submissions[k]["validation"]["rows"] for k in ("biased", "fair")] == [40000] * 2
    for submission in submissions.values():
        contract = {f["name"]: f for f in submission["contract"]["features"]}
        for name, categories in CATEGORIES.items():
            assert contract[name]["kind"] == "categorical"
            assert contract[name]["categories"] == list(categories)
        nullable = sorted(n for n, f in contract.items() if f["null_rate"] != "0.0")
        assert nullable == ["employment_years", "income", "months_since_last_delinquency"]
        texts = submission["reason_texts"]
        assert (
            texts["housing"]["categories"]["rent"] == "Renting rather than owning or buying a home"
        )
        assert texts["loan_purpose"]["categories"]["business"] == (
            "Credit requested for business purposes"
        )
    explainability = next(g for g in fair["gates"] if g["gate_id"] == "explainability")
    by_category = explainability["details"]["contributions_by_category"]
    assert sorted(by_category) == sorted(CATEGORIES)
    assert [c["category"] for c in by_category["housing"]] == list(CATEGORIES["housing"])
    # MLflow shows the alias on the approved version only (the fair run's registered version).
    assert result["mlflow_aliases"] == {"champion": 1}
    import hashlib

    from reports.bundle import verify_bundle

    pdf = result["report"].read_bytes()
    assert pdf.startswith(b"%PDF-")
    bundle = verify_bundle(result["bundle"].read_bytes(), load_public_key(settings.public_key_path))
    assert (bundle.model, bundle.version) == ("credit-pd", 2)
    with ctx_reading(settings) as events:
        generated = [e for e in events if e.type == "report.generated"]
    assert [e.data["report_sha256"] for e in generated] == [hashlib.sha256(pdf).hexdigest()]
    # approval and promotion each signed a checkpoint, and each was anchored
    assert report.checkpoints == report.anchors >= 3

    # The service sends category strings and a null where training had missing values.
    scored = result["scored"]
    applicants = scored["applicants"]
    assert len(applicants) == 8
    assert all(a["housing"] in CATEGORIES["housing"] for a in applicants)
    assert any(a["months_since_last_delinquency"] is None for a in applicants)
    # ... and is served by the promoted version; declines carry reasons.
    assert result["failed_steps"] == []
    assert (scored["version"], scored["alias"]) == (2, "champion")
    assert len(scored["results"]) == 8
    declined = [r for r in scored["results"] if r["decision"] == "decline"]
    assert declined
    assert all(1 <= len(r["reasons"]) <= 4 for r in declined)
    assert all(float(r["probability_of_default"]) >= 0.5 for r in declined)
    assert result["decisions"] == 8


def ctx_reading(settings: Any) -> Any:
    from contextlib import contextmanager

    from govreg.context import build

    @contextmanager
    def reading() -> Any:
        ctx = build(settings)
        try:
            with ctx.registry.reading() as conn:
                yield list(ctx.ledger.events(conn, model="credit-pd"))
        finally:
            ctx.close()

    return reading()


def test_demo_refuses_to_delete_a_foreign_folder(tmp_path: Path) -> None:
    import click

    from govreg.demo import run_demo

    (tmp_path / ".govreg-demo").mkdir()
    (tmp_path / ".govreg-demo" / "precious.txt").write_text("keep me")
    with pytest.raises(click.ClickException, match="is not a govreg demo home; move it away"):
        run_demo(root=tmp_path)
    assert (tmp_path / ".govreg-demo" / "precious.txt").read_text() == "keep me"


def ctx_submission(settings: Any, version: int) -> dict[str, Any]:
    from govreg.context import build

    ctx = build(settings)
    try:
        submission: dict[str, Any] = ctx.registry.submission("credit-pd", version)
        return submission
    finally:
        ctx.close()
