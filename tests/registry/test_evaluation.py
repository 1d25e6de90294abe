"""Evaluation through the service layer: real gates, recorded evidence, fail closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from govreg_kit import submit_candidate

from audits.events import EventType
from audits.signing import load_public_key
from policies.schema import PolicyError


@pytest.fixture(scope="module")
def candidate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from govreg.synthetic import write_candidate

    # the demo's fair candidate: passes every gate of credit-risk@1
    return write_candidate(tmp_path_factory.mktemp("candidate"), validation_format="parquet")


def _actors(ctx: Any, admin_key: str) -> dict[str, Any]:
    admin = ctx.registry.authenticate(admin_key)
    out = {}
    for name, role in (
        ("ds-1", "data_scientist"),
        ("validator-1", "validator"),
        ("compliance-1", "compliance_officer"),
        ("owner-1", "business_owner"),
    ):
        _, key = ctx.registry.create_principal(admin, name, role)
        out[role] = ctx.registry.authenticate(key)
    return out


def _submit(ctx: Any, actor: Any, files: dict[str, Path]) -> int:
    return submit_candidate(ctx.registry, actor, "pd", files)


def _verify(home: Any, ctx: Any) -> int:
    settings = home.settings()
    report = ctx.registry.verify(
        None, load_public_key(settings.public_key_path), anchor_dir=settings.anchors_path
    )
    return int(report.size)


def _gate_events(ctx: Any, version: int) -> list[Any]:
    with ctx.registry.reading() as conn:
        return list(
            ctx.ledger.events(conn, model="pd", version=version, types=[EventType.GATE_EVALUATED])
        )


def test_evaluate_records_one_event_per_gate_with_input_digests(home: Any, candidate: Any) -> None:
    ctx = home.context()
    try:
        who = _actors(ctx, home.admin_key)
        version = _submit(ctx, who["data_scientist"], candidate)
        messages: list[str] = []
        status = ctx.registry.evaluate(
            who["data_scientist"], "pd", version, progress=messages.append
        )
        shown = ctx.registry.show_version(who["validator"], "pd", version)
        events = _gate_events(ctx, version)
        size = _verify(home, ctx)
    finally:
        ctx.close()

    assert status.value == "awaiting_signoff"
    assert messages[0] == "loading the artifact and datasets"
    assert messages[1:] == [
        "gate performance (performance)",
        "gate fairness (fairness)",
        "gate data-schema (data_schema)",
        "gate explainability (explainability)",
        "gate stability (stability)",
        "gate latency (latency)",
    ]
    assert [e.data["gate_id"] for e in events] == [m.split()[1] for m in messages[1:]]
    inputs = {
        "artifact": shown["artifact_digest"],
        "train": shown["train_digest"],
        "validation": shown["validation_digest"],
        "policy": shown["policy"]["digest"],
    }
    for event in events:
        assert event.data["inputs"] == inputs
        assert event.index["inputs"] == inputs
        expected = "warned" if event.data["gate_id"] == "fairness" else "passed"
        # the fairness gate warns: equalized odds intervals on 10,000 rows reach above 0.10
        assert event.index["verdict"] == event.data["result"]["verdict"] == expected
    performance = shown["gates"][0]
    assert performance["thresholds"] == {"min_auc": "0.8", "min_ks": "0.35"}
    assert float(performance["values"]["auc"]) > 0.80
    assert shown["evidence_digest"] is not None
    assert size > 0


def test_reevaluation_under_newer_policy_is_recorded_and_voids_signoffs(
    home: Any, candidate: Any
) -> None:
    from policies.loader import find_policy
    from policies.schema import Policy

    data = find_policy("credit-risk").canonical()
    data["version"] = 2
    data["gates"][0]["params"]["min_auc"] = "0.81"
    newer = Policy.model_validate(data)

    ctx = home.context()
    try:
        who = _actors(ctx, home.admin_key)
        version = _submit(ctx, who["data_scientist"], candidate)
        assert ctx.registry.evaluate(who["data_scientist"], "pd", version).value == (
            "awaiting_signoff"
        )
        ctx.registry.signoff(
            who["validator"], "pd", version, role="validator", approve=True, comment="ok"
        )
        before = ctx.registry.show_version(who["validator"], "pd", version)
        # a proposed policy is not in force: re-evaluating under it is refused
        ctx.registry.propose_policy(who["validator"], newer)
        with pytest.raises(PolicyError) as waiting:
            ctx.registry.evaluate(who["validator"], "pd", version, policy_id="credit-risk@2")
        ctx.registry.approve_policy(who["compliance_officer"], "credit-risk@2", comment="tighter")
        status = ctx.registry.evaluate(who["validator"], "pd", version, policy_id="credit-risk@2")
        after = ctx.registry.show_version(who["validator"], "pd", version)
        events = _gate_events(ctx, version)
        with ctx.registry.reading() as conn:
            started = list(
                ctx.ledger.events(
                    conn, model="pd", version=version, types=[EventType.EVALUATION_STARTED]
                )
            )
        _verify(home, ctx)
    finally:
        ctx.close()

    assert str(waiting.value) == (
        "policy credit-risk@2 is not adopted: it was proposed by 'validator-1' and waits "
        "for a compliance officer (govreg policies approve credit-risk@2)"
    )
    assert status.value == "awaiting_signoff"
    assert before["policy"]["version"] == 1
    assert after["policy"] == {"id": "credit-risk", "version": 2, "digest": newer.digest}
    assert after["evaluation"] == 2
    assert after["gates"][0]["thresholds"] == {"min_auc": "0.81", "min_ks": "0.35"}
    # the old results stay in the trail, under the old policy
    assert [e.data["evaluation"] for e in events] == [1] * 6 + [2] * 6
    assert {e.data["policy_digest"] for e in events[:6]} == {before["policy"]["digest"]}
    assert {e.data["policy_digest"] for e in events[6:]} == {newer.digest}
    assert "policy" not in started[0].data
    assert started[1].data["policy_digest"] == started[1].index["policy_digest"] == newer.digest
    assert started[1].actor == "validator-1"
    # new evidence: the validator's earlier sign-off no longer counts
    assert after["evidence_digest"] != before["evidence_digest"]
    assert [s["current"] for s in after["signoffs"]] == [False]
    assert after["signoffs_missing"] == [
        {"role": "validator", "missing": 1},
        {"role": "compliance_officer", "missing": 1},
        {"role": "business_owner", "missing": 1},
    ]


def test_missing_blob_fails_closed_with_the_reason_recorded(home: Any, candidate: Any) -> None:
    ctx = home.context()
    try:
        who = _actors(ctx, home.admin_key)
        version = _submit(ctx, who["data_scientist"], candidate)
        shown = ctx.registry.show_version(who["validator"], "pd", version)
        ctx.registry.store.path_for(shown["train_digest"]).unlink()
        status = ctx.registry.evaluate(who["data_scientist"], "pd", version)
        after = ctx.registry.show_version(who["validator"], "pd", version)
        _verify(home, ctx)
    finally:
        ctx.close()

    assert status.value == "gates_failed"
    assert {g["verdict"] for g in after["gates"]} == {"error"}
    assert len(after["gates"]) == 6
    digest = shown["train_digest"][:12]
    assert after["gates"][0]["message"] == (
        f"inputs could not be loaded: blob {digest} is not in the store "
        f"{home.settings().store_path}"
    )
    assert after["status_reason"] == (
        "performance error; fairness error; data-schema error; explainability error; "
        "stability error; latency error"
    )


def test_empty_results_fail_closed(home: Any, candidate: Any) -> None:
    ctx = home.context()
    try:
        who = _actors(ctx, home.admin_key)
        version = _submit(ctx, who["data_scientist"], candidate)
        number = ctx.registry.start_evaluation(who["data_scientist"], "pd", version)
        status = ctx.registry.evaluations.record_evaluation(
            who["data_scientist"], "pd", version, number, []
        )
        after = ctx.registry.show_version(who["validator"], "pd", version)
    finally:
        ctx.close()
    assert status.value == "gates_failed"
    assert after["status_reason"] == "no gate results (an empty evaluation fails closed)"


def test_a_supplied_expectation_suite_is_the_schema_gate(sqlite_home: Any, candidate: Any) -> None:
    from core.errors import InputError

    suite = {
        "name": "applicants",
        "expectations": [
            {"type": "expect_column_to_exist", "kwargs": {"column": "income"}},
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "income", "min_value": 0, "max_value": 1000},
            },
        ],
    }
    ctx = sqlite_home.context()
    try:
        who = _actors(ctx, sqlite_home.admin_key)
        with ctx.registry.reading() as conn:
            before = ctx.ledger.head(conn)[0]
        with pytest.raises(InputError) as refused:
            ctx.registry.submit(
                who["data_scientist"],
                "pd",
                artifact=candidate["artifact"],
                train=candidate["train"],
                validation=candidate["validation"],
                target="default",
                protected=["sex"],
                schema_suite={"name": "empty", "expectations": []},
            )
        with ctx.registry.reading() as conn:
            assert ctx.ledger.head(conn)[0] == before
        version = submit_candidate(
            ctx.registry, who["data_scientist"], "pd", candidate, schema_suite=suite
        )
        assert ctx.registry.submission("pd", version)["schema_suite"] == suite
        status = ctx.registry.evaluate(who["data_scientist"], "pd", version)
        gates = {
            g["gate_id"]: g
            for g in ctx.registry.show_version(who["validator"], "pd", version)["gates"]
        }
    finally:
        ctx.close()
    assert str(refused.value) == (
        "the expectation suite has no 'expectations' list; an empty suite proves nothing"
    )
    assert status.value == "gates_failed"
    assert gates["data-schema"]["verdict"] == "failed"
    assert gates["data-schema"]["details"]["suite_source"] == "supplied"
    assert {g: r["verdict"] for g, r in gates.items() if g != "data-schema"} == {
        "performance": "passed",
        "fairness": "warned",  # equalized odds intervals on 10,000 rows reach above 0.10
        "explainability": "passed",
        "stability": "passed",
        "latency": "passed",
    }
