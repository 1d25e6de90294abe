"""Serving over HTTP: scoring with reasons, fetch + offline proof, changes reaching every worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_server import Server, start_server, stop
from govreg_kit import Kit, make_kit, submit_candidate

from audits.signing import create_signing_key, load_public_key
from serving.errors import Check, LoadRefused
from serving.live import PROPAGATION_BOUND_SECONDS
from serving.remote import scorer_from_response

MODEL = "credit-pd"


@pytest.fixture(scope="module")
def candidate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from govreg.synthetic import write_candidate

    return write_candidate(tmp_path_factory.mktemp("serving-candidate"))


def _approve(kit: Kit, files: dict[str, Path]) -> int:
    version = submit_candidate(kit.registry, kit["ds-1"], MODEL, files)
    kit.registry.evaluate(kit["ds-1"], MODEL, version)
    for who in ("validator-1", "compliance-1", "owner-1"):
        kit.sign(who, MODEL, version)
    return version


@pytest.fixture
def served(home: Any, inputs: Any, candidate: dict[str, Path]) -> Iterator[tuple[Kit, Server]]:
    kit = make_kit(home, inputs)
    version = _approve(kit, candidate)
    assert kit.row(MODEL, version)["status"] == "approved"  # type: ignore[index]
    kit.registry.promote(kit["compliance-1"], MODEL, version, alias="champion")
    server = start_server(home, workers=2)
    server.keys["service"] = kit.key("service-1")
    server.keys["auditor"] = kit.key("auditor-1")
    try:
        yield kit, server
    finally:
        stop(server)
        kit.verify()
        kit.ctx.close()


def _applicants(candidate: dict[str, Path], n: int) -> list[dict[str, Any]]:
    import pandas as pd

    frame = pd.read_csv(candidate["validation"]).head(n)
    text = candidate["artifact"].read_text()
    import lightgbm

    features = lightgbm.Booster(model_str=text).feature_name()
    records: list[dict[str, Any]] = frame[features].to_dict(orient="records")
    return records


def test_scores_with_reasons_from_the_models_own_contributions(
    served: tuple[Kit, Server], candidate: dict[str, Path]
) -> None:
    import lightgbm
    import numpy as np

    kit, server = served
    rows = _applicants(candidate, 200)
    with server.client("service") as client:
        response = client.post(f"/v1/models/{MODEL}/score", json={"applicants": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    approval = kit.events(types=["version.approved"])[-1]
    assert (body["model"], body["version"], body["alias"]) == (MODEL, 1, "champion")
    assert body["approval_seq"] == approval.seq
    assert body["artifact_digest"] == approval.data["artifact_digest"]
    assert body["cutoff"] == "0.5"
    booster = lightgbm.Booster(model_str=candidate["artifact"].read_text())
    features = booster.feature_name()
    x = np.array([[r[f] for f in features] for r in rows], dtype=np.float64)
    p = booster.predict(x)
    contrib = booster.predict(x, pred_contrib=True)[:, :-1]
    texts = json.loads(candidate["reasons"].read_text())
    declines = 0
    for i, result in enumerate(body["results"]):
        assert result["probability_of_default"] == f"{p[i]:.6f}"
        if p[i] >= 0.5:
            declines += 1
            assert result["decision"] == "decline"
            order = [j for j in np.argsort(-contrib[i], kind="stable")[:4] if contrib[i][j] > 0]
            assert [r["feature"] for r in result["reasons"]] == [features[j] for j in order]
            assert [r["reason"] for r in result["reasons"]] == [texts[features[j]] for j in order]
            assert len(result["reasons"]) >= 1
        else:
            assert result["decision"] == "approve"
            assert result["reasons"] == []
    assert 0 < declines < len(rows)
    # A clean shutdown writes every decision; the log verifies and holds each one exactly.
    stop(server)
    decisions = _decisions(kit)
    assert [d.seq for d in decisions] == list(range(1, len(rows) + 1))
    for row, result, stored in zip(rows, body["results"], decisions, strict=True):
        assert stored.inputs == row
        assert (stored.model, stored.version, stored.approval_seq) == (MODEL, 1, approval.seq)
        assert (stored.score, stored.decision) == (
            result["probability_of_default"],
            result["decision"],
        )
        assert stored.reasons == [r["reason"] for r in result["reasons"]]
    # What an auditor runs.
    shown = subprocess.run(
        [
            str(Path(sys.executable).with_name("govreg")),
            "audit",
            "decisions",
            "--model",
            MODEL,
            "--json",
        ],
        env={**os.environ, **kit.home.env, "GOVREG_API_KEY": kit.key("auditor-1")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    listed = json.loads(shown.stdout)
    assert (listed["ok"], listed["decisions"], len(listed["listed"])) == (True, 200, 200)
    assert [d["decision"] for d in listed["listed"]] == [r["decision"] for r in body["results"]]
    assert [d["decision_id"] for d in listed["listed"]] == [
        r["decision_id"] for r in body["results"]
    ]


def _decisions(kit: Kit) -> list[Any]:
    from serving.decisions import read_decisions, verify_decisions

    with kit.ctx.engine.connect() as conn:
        report = verify_decisions(
            conn, kit.ctx.ledger.keyring, load_public_key(kit.settings.public_key_path)
        )
        stored = list(read_decisions(conn, kit.ctx.ledger.keyring, model=MODEL))
    assert report.decisions == len(stored)
    return stored


def test_bad_payloads_name_the_field(
    served: tuple[Kit, Server], candidate: dict[str, Path]
) -> None:
    kit, server = served
    good = _applicants(candidate, 2)
    missing = {k: v for k, v in good[0].items() if k != "income"}
    unknown = {**good[0], "applicant_id": 7}
    out_of_range = {**good[0], "credit_utilisation": 55.0}
    text_value = {**good[0], "income": "lots"}
    null_value = {**good[0], "debt_to_income": None}
    cases = [
        ([missing], "applicants[0].income", "missing"),
        (
            [unknown],
            "applicants[0].applicant_id",
            "unknown field; the model takes only its features",
        ),
        ([text_value], "applicants[0].income", "must be a number, got 'lots'"),
        (
            [null_value],
            "applicants[0].debt_to_income",
            "null, but the training data had no missing values here",
        ),
    ]
    with server.client("service") as client:
        for rows, field, message in cases:
            response = client.post(f"/v1/models/{MODEL}/score", json={"applicants": rows})
            assert response.status_code == 422, response.text
            problem = response.json()
            assert problem["detail"] == f"no applicant could be scored: {field}: {message}"
            assert problem["errors"] == [{"field": field, "message": message}]
        empty = client.post(f"/v1/models/{MODEL}/score", json={"applicants": []})
        assert empty.status_code == 422
        # A number outside the training range is scored and flagged (credit-risk@1 scores it).
        flagged = client.post(f"/v1/models/{MODEL}/score", json={"applicants": [out_of_range]})
        assert flagged.status_code == 200, flagged.text
        assert flagged.json()["results"][0]["flags"] == {"out_of_range": ["credit_utilisation"]}
        # Only the service role scores.
    with server.client("auditor") as client:
        denied = client.post(f"/v1/models/{MODEL}/score", json={"applicants": good})
        assert denied.status_code == 403
    stop(server)
    (only,) = _decisions(kit)  # nothing refused was logged; the flagged one was
    assert (only.inputs, only.flags) == (out_of_range, {"out_of_range": ["credit_utilisation"]})


def test_fetch_with_a_proof_verified_offline(served: tuple[Kit, Server], tmp_path: Path) -> None:
    from core.clock import utcnow

    kit, server = served
    pinned = load_public_key(kit.settings.public_key_path)
    with server.client("service") as client:
        response = client.get(f"/v1/models/{MODEL}/approved")
    assert response.status_code == 200, response.text
    body = response.json()
    scorer = scorer_from_response(body, pinned, model=MODEL)
    assert (scorer.version, scorer.artifact_digest) == (1, body["artifact_digest"])
    fetched = kit.events(types=["serving.fetched"])
    assert [(e.actor, e.version) for e in fetched] == [("service-1", 1)]

    def refused(changed: dict[str, Any], key: Any = pinned, **kwargs: Any) -> LoadRefused:
        with pytest.raises(LoadRefused) as caught:
            scorer_from_response(changed, key, model=MODEL, now=utcnow(), **kwargs)
        return caught.value

    # Other bytes than the approved ones.
    other = dict(body, artifact_base64=__import__("base64").b64encode(b"tree\nx").decode())
    assert refused(other).check == Check.DIGEST
    # A proof for another version, or another model.
    assert refused(body, version=2).check == Check.PROOF
    wrong = dict(body, proof=dict(body["proof"], version=2))
    assert "the proof is for credit-pd v2" in str(refused(wrong))
    # Signed by another key.
    create_signing_key(tmp_path)
    assert refused(body, key=load_public_key(tmp_path / "checkpoint.pub")).check == (
        Check.CHECKPOINT
    )
    # An edited approval event no longer hashes into the signed tree.
    events = [dict(e) for e in body["proof"]["events"]]
    events[0]["actor"] = "someone-else"
    edited = dict(body, proof=dict(body["proof"], events=events))
    assert refused(edited).check == Check.CHECKPOINT


def _fetched(server: Server) -> dict[str, Any]:
    with server.client("service") as client:
        response = client.get(f"/v1/models/{MODEL}/approved")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_proof_covers_what_the_scorer_acts_on(served: tuple[Kit, Server]) -> None:
    kit, server = served
    pinned = load_public_key(kit.settings.public_key_path)
    body = _fetched(server)
    scoring = body["scoring"]
    assert set(scoring) == {
        "features",
        "cutoff",
        "reason_texts",
        "schema_suite",
        "retention_days",
        "contract",
        "rules",
        "policy_digest",
    }
    scorer = scorer_from_response(body, pinned, model=MODEL)
    assert scorer.approval.cutoff == scoring["cutoff"]

    def refused(**changed: Any) -> LoadRefused:
        with pytest.raises(LoadRefused) as caught:
            scorer_from_response(dict(body, scoring=dict(scoring, **changed)), pinned, model=MODEL)
        assert caught.value.check == Check.PROOF
        assert "differs from what the server signed" in str(caught.value)
        return caught.value

    refused(cutoff="0.999")  # a decline would become an approve
    refused(features=scoring["features"][:-1])
    first = next(iter(scoring["reason_texts"]))
    refused(reason_texts=dict(scoring["reason_texts"], **{first: "Anything at all"}))
    refused(rules=dict(scoring["rules"], unseen_category="missing"))
    refused(contract=None)
    refused(policy_digest="0" * 64)


def test_a_response_captured_before_a_suspension_expires(served: tuple[Kit, Server]) -> None:
    from datetime import timedelta

    from core.clock import parse, utcnow
    from serving.proof import DEFAULT_MAX_PROOF_AGE_SECONDS, Standing

    kit, server = served
    pinned = load_public_key(kit.settings.public_key_path)
    captured = _fetched(server)
    standing = Standing.verified(captured["proof"]["standing"], pinned)
    issued = parse(standing.issued_at)
    assert parse(standing.expires_at) - issued == timedelta(seconds=DEFAULT_MAX_PROOF_AGE_SECONDS)
    kit.registry.suspend(kit["compliance-1"], MODEL, 1, reason="drift")
    with server.client("service") as client:
        assert client.get(f"/v1/models/{MODEL}/approved").status_code == 409
    # Within the bound the captured response still loads (the documented window) ...
    within = issued + timedelta(seconds=DEFAULT_MAX_PROOF_AGE_SECONDS - 1)
    assert scorer_from_response(captured, pinned, model=MODEL, now=within).version == 1
    assert utcnow() < within
    # ... and past it, it is refused.
    past = issued + timedelta(seconds=DEFAULT_MAX_PROOF_AGE_SECONDS)
    with pytest.raises(LoadRefused) as caught:
        scorer_from_response(captured, pinned, model=MODEL, now=past)
    assert caught.value.check == Check.STATUS
    assert f"the standing statement expired at {standing.expires_at}" in str(caught.value)
    # A statement cut out of the proof, or re-dated without the key, is refused too.
    without = dict(captured, proof={k: v for k, v in captured["proof"].items() if k != "standing"})
    with pytest.raises(LoadRefused, match="malformed response"):
        scorer_from_response(without, pinned, model=MODEL, now=within)
    later = captured["proof"]["standing"].replace(
        standing.expires_at, "2999-01-01T00:00:00.000000Z"
    )
    redated = dict(captured, proof=dict(captured["proof"], standing=later))
    with pytest.raises(LoadRefused, match="signature does not verify"):
        scorer_from_response(redated, pinned, model=MODEL, now=past)


_HOSTILE: tuple[Any, ...] = (None, 0, -1, True, 1.5, "", "x", "2026-13-45", [], [1], {}, {"a": 1})


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path in a JSON value (lists by index), depth first."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        yield (*prefix, key)
        if isinstance(item, (dict, list)) and len(prefix) < 4:
            yield from _paths(item, (*prefix, key))


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    copy = json.loads(json.dumps(value))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return copy


def test_every_malformed_field_is_a_refusal(served: tuple[Kit, Server]) -> None:
    from core.clock import utcnow

    kit, server = served
    pinned = load_public_key(kit.settings.public_key_path)
    body = _fetched(server)
    reference = scorer_from_response(body, pinned, model=MODEL)
    now = utcnow()
    paths = [p for p in _paths(body) if p[0] != "artifact_base64" or len(p) == 1]
    outcomes = {"accepted": 0, "refused": 0}
    for path in paths:
        for new in _HOSTILE:
            mutated = _replaced(body, path, new)
            try:
                scorer = scorer_from_response(mutated, pinned, model=MODEL, now=now)
            except LoadRefused:
                outcomes["refused"] += 1
                continue
            # Accepted only if nothing the scorer acts on changed.
            assert scorer.approval.scoring_metadata() == reference.approval.scoring_metadata()
            assert scorer.artifact_digest == reference.artifact_digest
            outcomes["accepted"] += 1
    assert outcomes["refused"] > 10 * len(paths)
    # A malformed revalidation date in the approval record is a refusal, not a ValueError.
    events = [dict(e) for e in body["proof"]["events"]]
    events[0]["index_fields"] = json.dumps(
        dict(json.loads(events[0]["index_fields"]), revalidate_by="not a date")
    )
    with pytest.raises(LoadRefused):
        scorer_from_response(
            dict(body, proof=dict(body["proof"], events=events)), pinned, model=MODEL
        )


def _wait_for(predicate: Any, bound: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < bound + 5:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError("the change never reached the server")


def test_changes_reach_every_worker_within_the_bound(
    served: tuple[Kit, Server], candidate: dict[str, Path]
) -> None:
    kit, server = served
    rows = _applicants(candidate, 1)
    clients = [server.client("service") for _ in range(4)]  # connections spread over workers

    def statuses() -> list[int]:
        return [
            c.post(f"/v1/models/{MODEL}/score", json={"applicants": rows}).status_code
            for c in clients
            for _ in range(3)
        ]

    assert set(statuses()) == {200}
    kit.registry.suspend(kit["compliance-1"], MODEL, 1, reason="drift found")
    elapsed = _wait_for(lambda: set(statuses()) == {409}, PROPAGATION_BOUND_SECONDS)
    assert elapsed <= PROPAGATION_BOUND_SECONDS
    # After the bound, never served again.
    for _ in range(5):
        assert set(statuses()) == {409}
    refusal = clients[0].post(f"/v1/models/{MODEL}/score", json={"applicants": rows}).json()
    assert "the version is suspended" in refusal["detail"]
    # A newly approved version promoted to the alias is served within the bound.
    version = _approve(kit, candidate)
    kit.registry.promote(kit["compliance-1"], MODEL, version, alias="champion")

    last: list[tuple[int, str]] = []

    def serving_new() -> bool:
        answers = [c.post(f"/v1/models/{MODEL}/score", json={"applicants": rows}) for c in clients]
        last[:] = [(a.status_code, a.text[:200]) for a in answers]
        return all(a.status_code == 200 and a.json()["version"] == version for a in answers)

    try:
        elapsed = _wait_for(serving_new, PROPAGATION_BOUND_SECONDS)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the last answers: {last}") from None
    finally:
        for c in clients:  # a failure must not leave sockets for a later test to collect
            c.close()
    assert elapsed <= PROPAGATION_BOUND_SECONDS
    loads = kit.events(types=["serving.loaded"])
    assert {e.version for e in loads} == {1, 2}
    assert all(e.actor == "govreg-serve" for e in loads)
