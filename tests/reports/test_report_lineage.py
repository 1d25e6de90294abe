"""The report's lineage rows (reports.report.lineage_rows) from every shape of recorded
lineage: none, declared by the submitter, recorded from MLflow, hostile."""

from __future__ import annotations

from typing import Any

import pytest

from reports.report import NOT_RECORDED, lineage_rows


def test_no_lineage_says_not_recorded() -> None:
    assert lineage_rows({}) == [
        {"label": "Training run", "value": NOT_RECORDED},
        {"label": "Source commit", "value": NOT_RECORDED},
    ]


def test_declared_lineage_fills_the_run_and_commit_and_lists_the_rest() -> None:
    rows = lineage_rows(
        {
            "training_run": "nightly-2026-12-01",
            "commit": "9f3c2e1",
            "pipeline": {"name": "pd-train", "step": 4},
            "owner": "credit risk analytics",  # an inventory field: shown in section 1
            "empty": "",
        }
    )
    assert rows == [
        {"label": "Training run", "value": "nightly-2026-12-01"},
        {"label": "Source commit", "value": "9f3c2e1"},
        {"label": "pipeline (declared)", "value": '{"name": "pd-train", "step": 4}'},
    ]


def test_the_mlflow_record_wins_over_a_declared_run() -> None:
    rows = lineage_rows(
        {
            "run_id": "declared",
            "mlflow": {"run_id": "abc123", "source_commit": None, "registered_model": None},
        }
    )
    assert rows[:2] == [
        {"label": "Training run", "value": "abc123"},
        {"label": "Source commit", "value": NOT_RECORDED},
    ]
    assert len(rows) == 2


@pytest.mark.parametrize(
    "lineage",
    [
        {"mlflow": "not an object"},
        {"mlflow": {"registered_model": {"name": "<script>", "version": 1}}},
        {"note": "x" * 5000},
        {"deep": [[[[{"a": None}]]]]},
    ],
)
def test_odd_lineage_is_shown_cut_and_never_raises(lineage: dict[str, Any]) -> None:
    rows = lineage_rows(lineage)
    assert rows[0]["label"] == "Training run"
    assert all(len(r["value"]) <= 360 for r in rows)
    if "note" in lineage:
        assert rows[2]["value"].endswith(" ... (cut; the evidence bundle holds it whole)")
        assert rows[2]["value"].startswith("x" * 300)
