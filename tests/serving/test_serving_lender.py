"""A lender's model end to end over HTTP, on SQLite and PostgreSQL: trained with LightGBM on
a DataFrame with category columns and 8 % missing values in a numeric column, submitted
from CSV, every gate, three sign-offs, promoted, scored by a real `govreg serve` and by a
remote scorer from `serving.remote.fetch_approved`, the decision log read back."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import Server, start_server, stop
from govreg_homes import make_home, postgres_schema
from govreg_kit import Inputs, Kit, make_kit, submit_candidate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lender import CATEGORICAL, REASONS, write_lender_candidate

from audits.signing import load_public_key
from policies.schema import ScoringRules
from serving.deciding import Decided, Decider, decide, decimal
from serving.decisions import Decision, new_decision_id
from serving.errors import DecisionLogError, LoadRefused
from serving.remote import ServerSink, decisions_body, fetch_approved
from serving.scoring import ApplicantsRefused, Refused, Scored, Scorer

MODEL = "lender-pd"  # credit-risk@1: unseen categories refused, out-of-range scored
LENIENT = "lender-pd-lenient"  # credit-risk@2: unseen scored as missing, out-of-range refused


def _policy_v2() -> str:
    import yaml

    root = Path(__file__).resolve().parents[2]
    doc = yaml.safe_load((root / "policies" / "credit-risk.yaml").read_text())
    doc["version"] = 2
    doc["scoring"] = {"unseen_category": "missing", "out_of_range": "refuse"}
    return str(yaml.safe_dump(doc))


@dataclass
class Served:
    kit: Kit
    server: Server
    files: dict[str, Path]
    booster: Any
    features: list[str]
    rows: list[dict[str, Any]]

    def post(self, rows: list[Any], model: str = MODEL) -> httpx.Response:
        with self.server.client("service") as client:
            return client.post(f"/v1/models/{model}/score", json={"applicants": rows})

    def raw(self) -> httpx.Client:
        """A client of the service principal that sends bodies as given."""
        headers = {
            "Authorization": f"Bearer {self.server.keys['service']}",
            "Content-Type": "application/json",
        }
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=60)

    def logged(self) -> int:
        from sqlalchemy import text

        with self.kit.ctx.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM decisions")).scalar_one())

    def settle(self, expected: int) -> None:
        """Wait until the server's decision log holds ``expected`` decisions (it writes in
        the background), then a little longer to see that no more arrive."""
        deadline = time.monotonic() + 20
        while self.logged() < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.7)  # longer than the writer's flush interval
        assert self.logged() == expected

    def stored(self, model: str = MODEL) -> list[Any]:
        from serving.decisions import read_decisions

        with self.kit.ctx.engine.connect() as conn:
            return list(read_decisions(conn, self.kit.ctx.ledger.keyring, model=model))

    def predict(self, rows: list[dict[str, Any]], **kwargs: Any) -> Any:
        import pandas as pd

        frame = pd.DataFrame(rows, columns=self.features).astype(
            {f: "float64" for f in self.features if f not in CATEGORICAL}
        )
        for name, categories in zip(CATEGORICAL, self.booster.pandas_categorical, strict=True):
            known = set(frame[name].dropna()) <= set(categories)
            frame[name] = (
                pd.Categorical(frame[name], categories=categories)
                if known
                else frame[name].astype("category")  # LightGBM sets the model's categories
            )
        return self.booster.predict(frame, **kwargs)

    def remote(self, model: str = MODEL) -> Decider:
        return fetch_approved(
            self.server.url,
            self.server.keys["service"],
            model,
            public_key=load_public_key(self.kit.settings.public_key_path),
        )


def _approve(kit: Kit, model: str, files: dict[str, Path], **extra: Any) -> int:
    version = submit_candidate(kit.registry, kit["ds-1"], model, files, **extra)
    kit.registry.evaluate(kit["ds-1"], model, version)
    for who in ("validator-1", "compliance-1", "owner-1"):
        kit.sign(who, model, version)
    kit.registry.promote(kit["compliance-1"], model, version, alias="champion")
    return version


@pytest.fixture(scope="module")
def lender_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_lender_candidate(tmp_path_factory.mktemp("lender"))


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def served(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    inputs: Inputs,
    lender_files: dict[str, Path],
) -> Iterator[Served]:
    import lightgbm
    import pandas as pd

    root = tmp_path_factory.mktemp(f"served-{request.param}")
    cleanup = contextlib.ExitStack()
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'govreg.db'}"
    else:
        url = cleanup.enter_context(postgres_schema())
    kit = make_kit(make_home(root / "home", url), inputs)
    server = None
    try:
        _approve(kit, MODEL, lender_files)
        kit.adopt(_policy_v2())
        _approve(kit, LENIENT, lender_files, policy_id="credit-risk@2")
        server = start_server(kit.home, workers=1)
        server.keys["service"] = kit.key("service-1")
        booster = lightgbm.Booster(model_str=lender_files["artifact"].read_text())
        features = booster.feature_name()
        frame = pd.read_csv(lender_files["validation"])[features]
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        yield Served(kit, server, lender_files, booster, features, json.loads(json.dumps(records)))
    finally:
        if server is not None:
            stop(server)
        kit.verify()
        kit.ctx.close()
        cleanup.close()


def _expected_reasons(served: Served, row: dict[str, Any], contrib: Any) -> list[dict[str, Any]]:
    import numpy as np

    out = []
    for j in [j for j in np.argsort(-contrib, kind="stable")[:4] if contrib[j] > 0]:
        feature = served.features[j]
        value = row[feature]
        text = REASONS[feature]
        if not isinstance(text, str):
            text = text["categories"].get(value, text["default"])
        out.append(
            {
                "feature": feature,
                "reason": text,
                "value": value,
                "contribution": f"{contrib[j]:.6f}",
            }
        )
    return out


def _as_json(result: Any) -> dict[str, Any]:
    """A remote scorer's result as the server's JSON answer shows it (its decimals)."""
    if isinstance(result, Refused):
        return {"error": result.error, "fields": list(result.fields)}
    assert isinstance(result, Scored)
    return {
        "probability_of_default": decimal(result.probability_of_default),
        "decision": result.decision,
        "reasons": [
            {
                "feature": r.feature,
                "reason": r.text,
                "value": r.value,
                "contribution": decimal(r.contribution),
            }
            for r in result.reasons
        ],
        "flags": result.flags,
    }


def _same(server: list[dict[str, Any]], remote: list[Any]) -> None:
    """The remote scorer answers exactly as the server did: refusals, flags, reasons
    (the server's answers also give each decision the id its decision log gave it)."""
    assert [_as_json(r) for r in remote] == [_without_id(r) for r in server]


def _without_id(result: dict[str, Any]) -> dict[str, Any]:
    """A route's result without its decision id, which it must have when decided."""
    if "error" in result:
        assert "decision_id" not in result
        return result
    assert re.fullmatch(r"[0-9a-f]{32}", result["decision_id"])
    return {k: v for k, v in result.items() if k != "decision_id"}


# -- the 8 %-missing model end to end -----------------------------------------------------------
def test_a_model_with_missing_values_scores_over_http_and_remotely(served: Served) -> None:
    kit = served.kit
    row = kit.row(MODEL, 1)
    assert row is not None
    assert row["status"] == "promoted"
    contract = kit.registry.submission(MODEL, 1)["contract"]
    kinds = {f["name"]: (f["kind"], f["null_rate"]) for f in contract["features"]}
    assert kinds["employment_years"] == ("numeric", "0.080625")
    assert kinds["housing"] == ("categorical", "0.0")
    rows = served.rows[:120]
    assert sum(r["employment_years"] is None for r in rows) >= 5
    assert sum(r["purpose"] is None for r in rows) >= 2
    before = served.logged()
    response = served.post(rows)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    p = served.predict(rows)
    contrib = served.predict(rows, pred_contrib=True)[:, :-1]
    declines = 0
    for i, result in enumerate(results):
        assert result["probability_of_default"] == f"{p[i]:.6f}"
        if p[i] >= 0.5:
            declines += 1
            assert result["decision"] == "decline"
            assert result["reasons"] == _expected_reasons(served, rows[i], contrib[i])
        else:
            assert (result["decision"], result["reasons"]) == ("approve", [])
    assert 0 < declines < len(rows)
    served.settle(before + len(rows))
    stored = served.stored()[-len(rows) :]
    assert [s.inputs for s in stored] == rows  # nulls kept as given
    assert [s.flags for s in stored] == [r["flags"] for r in results]
    assert [s.reason_values for s in stored] == [
        [{"feature": x["feature"], "value": x["value"]} for x in r["reasons"]] for r in results
    ]
    assert len({s.batch for s in stored}) == 1  # one request, one batch
    # The same model fetched with its proof scores exactly as the server did.
    remote = served.remote()
    assert remote.version == 1
    assert remote.scorer.rules == ScoringRules()
    assert remote.scorer.contract.canonical() == contract
    _same(results, remote.scorer.score(rows))


# -- unseen categories, nulls, ranges, mixed batches (credit-risk@1) ------------------------------
def test_refusals_flags_and_a_mixed_batch(served: Served) -> None:
    good = served.rows[:3]
    unseen = {**served.rows[3], "housing": "houseboat"}
    null = {**served.rows[4], "income": None}
    far = {**served.rows[5], "income": 5_000_000}
    missing = {k: v for k, v in served.rows[6].items() if k != "loan_amount"}
    remote = served.remote()
    before = served.logged()
    refusals = {
        "houseboat": (
            unseen,
            "applicants[0].housing",
            "'houseboat' is not a category the model was trained on "
            "(its categories: 'free', 'mortgage', 'own', 'rent')",
        ),
        "null": (
            null,
            "applicants[0].income",
            "null, but the training data had no missing values here",
        ),
    }
    for row, field, message in refusals.values():
        response = served.post([row])
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["detail"] == f"no applicant could be scored: {field}: {message}"
        assert problem["errors"] == [{"field": field, "message": message}]
        (same,) = remote.scorer.score([row])
        assert isinstance(same, Refused)
        assert same.error == f"{field}: {message}"
    served.settle(before)  # nothing refused is logged
    # Out of range: scored and flagged, in the answer and in the decision log.
    response = served.post([far])
    assert response.status_code == 200, response.text
    (flagged,) = response.json()["results"]
    assert flagged["flags"] == {"out_of_range": ["income"]}
    assert flagged["probability_of_default"] == f"{served.predict([far])[0]:.6f}"
    served.settle(before + 1)
    last = served.stored()[-1]
    assert (last.inputs, last.flags) == (far, {"out_of_range": ["income"]})
    _same([flagged], remote.scorer.score([far]))
    # A mixed batch: each row answered on its own, only the decided ones logged, together.
    batch = [good[0], unseen, good[1], missing, far, good[2], null]
    response = served.post(batch)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    alone = [served.post([row]).json() for row in (good[0], good[1], far, good[2])]
    decided = [alone[k]["results"][0] for k in range(4)]
    assert [_without_id(results[i]) for i in (0, 2, 4, 5)] == [_without_id(d) for d in decided]
    assert len({r["decision_id"] for r in [*decided, *(results[i] for i in (0, 2, 4, 5))]}) == 8
    assert results[1] == {
        "error": f"applicants[1].housing: {refusals['houseboat'][2]}",
        "fields": ["housing"],
    }
    assert results[3] == {"error": "applicants[3].loan_amount: missing", "fields": ["loan_amount"]}
    assert results[6] == {
        "error": f"applicants[6].income: {refusals['null'][2]}",
        "fields": ["income"],
    }
    served.settle(before + 1 + 4 + 4)  # the batch's 4 decided rows and the 4 rows alone
    mixed = served.stored()[-8:-4]
    assert [s.inputs for s in mixed] == [good[0], good[1], far, good[2]]
    assert len({s.batch for s in mixed}) == 1
    _same(results, remote.scorer.score(batch))


# -- a later policy: unseen categories scored as missing, out-of-range refused ---------------------
def test_a_later_policy_scores_unseen_as_missing_and_refuses_out_of_range(served: Served) -> None:
    assert served.kit.registry.submission(LENIENT, 1)["policy"]["scoring"] == {
        "out_of_range": "refuse",
        "unseen_category": "missing",
    }
    remote = served.remote(LENIENT)
    assert (remote.scorer.rules.unseen_category, remote.scorer.rules.out_of_range) == (
        "missing",
        "refuse",
    )
    before = served.logged()
    unseen = {**served.rows[3], "housing": "houseboat", "purpose": "yacht"}
    response = served.post([unseen], LENIENT)
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    assert result["flags"] == {"unseen_category": ["housing", "purpose"]}
    as_missing = served.predict([{**unseen, "housing": None, "purpose": None}])[0]
    assert result["probability_of_default"] == f"{as_missing:.6f}"
    _same([result], remote.scorer.score([unseen]))
    far = {**served.rows[5], "income": 5_000_000}
    response = served.post([far], LENIENT)
    assert response.status_code == 422
    message = "applicants[0].income: 5000000 is outside the training range 8048..270148"
    assert response.json()["detail"] == f"no applicant could be scored: {message}"
    (refused,) = remote.scorer.score([far])
    assert isinstance(refused, Refused)
    assert refused.error == message
    served.settle(before + 1)
    last = served.stored(LENIENT)[-1]
    assert (last.inputs, last.flags) == (unseen, {"unseen_category": ["housing", "purpose"]})


# -- a remote scorer's decisions, recorded through the server ------------------------------------
def _route_json(result: Any) -> dict[str, Any]:
    """A decision of ``decide`` as the score route's JSON answer shows it."""
    if isinstance(result, Refused):
        return {"error": result.error, "fields": list(result.fields)}
    assert isinstance(result, Decided)
    return {
        "probability_of_default": result.probability_of_default,
        "decision": result.decision,
        "reasons": [
            {
                "feature": r.feature,
                "reason": r.reason,
                "value": r.value,
                "contribution": r.contribution,
            }
            for r in result.reasons
        ],
        "flags": result.flags,
    }


def _stated(stored: Any) -> tuple[Any, ...]:
    return (
        stored.model,
        stored.version,
        stored.approval_seq,
        stored.inputs,
        stored.score,
        stored.decision,
        stored.reasons,
        stored.flags,
        stored.reason_values,
    )


def test_a_remote_scorer_records_its_decisions_through_the_server(served: Served) -> None:
    remote = served.remote()
    rows = served.rows[:30]
    far = {**served.rows[5], "income": 5_000_000}  # scored and flagged
    unseen = {**served.rows[3], "housing": "houseboat"}  # refused, so not recorded
    batch = [*rows, far, unseen]
    before = served.logged()
    results = remote.decide(batch)
    served.settle(before + 31)  # synchronous: the server took them before decide returned
    response = served.post(batch)  # the route decides the same applicants the same way
    assert response.status_code == 200, response.text
    answered = response.json()["results"]
    assert [_route_json(r) for r in results] == [_without_id(r) for r in answered]
    served.settle(before + 62)
    stored = served.stored()[-62:]
    by_remote, by_route = stored[:31], stored[31:]
    # each answer names its decision by the id the server's log stored it under
    assert [s.decision_id for s in by_remote] == [
        r.decision_id for r in results if isinstance(r, Decided)
    ]
    assert [s.decision_id for s in by_route] == [
        r["decision_id"] for r in answered if "decision_id" in r
    ]
    assert len({s.decision_id for s in stored}) == 62
    assert [_stated(s) for s in by_remote] == [_stated(s) for s in by_route]
    assert [s.inputs for s in by_remote] == [*rows, far]
    assert {(s.model, s.version, s.approval_seq) for s in by_remote} == {
        (MODEL, 1, remote.approval_seq)
    }
    assert [s.score for s in by_remote] == [
        r.probability_of_default for r in results if isinstance(r, Decided)
    ]
    assert by_remote[-1].flags == {"out_of_range": ["income"]}
    assert len({s.batch for s in by_remote}) == 1  # one request, one batch
    assert sum(r.decision == "decline" for r in results if isinstance(r, Decided)) > 0
    # `govreg audit decisions` lists them, with their scores
    audited = served.kit.home.cli("audit", "decisions", "--model", MODEL, "--json")
    assert audited.exit_code == 0, audited.output
    listed = json.loads(audited.output)["listed"]
    assert len(listed) == len(served.stored())
    assert [(d["model"], d["version"], d["score"]) for d in listed[-62:-31]] == [
        (MODEL, 1, s.score) for s in by_remote
    ]
    # Nothing decided, nothing posted: the applicants' errors, as the route's 422.
    with pytest.raises(ApplicantsRefused, match=r"applicants\[0\]\.housing: 'houseboat'"):
        remote.decide([unseen])
    served.settle(before + 62)


class Kept(list[Decision]):
    """A sink that keeps what it is given (to post it by hand), giving ids as a log does."""

    def record_many(self, decisions: Sequence[Decision], /) -> list[str]:
        self.extend(decisions)
        return [new_decision_id() for _ in decisions]


def _honest(scorer: Scorer, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A remote scorer's honest body for ``rows`` (all decided)."""
    kept = Kept()
    decide(scorer, rows, sink=kept)
    assert len(kept) == len(rows)
    return decisions_body(kept)


def _posted(served: Served, rows: list[dict[str, Any]]) -> dict[str, Any]:
    return _honest(served.remote().scorer, rows)


def _post_decisions(served: Served, body: Any, model: str = MODEL) -> httpx.Response:
    with served.server.client("service") as client:
        return client.post(f"/v1/models/{model}/decisions", json=body)


def test_tampered_remote_decisions_are_refused_and_nothing_is_written(served: Served) -> None:
    kit = served.kit
    rows = served.rows[:40]
    honest = _posted(served, rows)
    declined = next(i for i, d in enumerate(honest["decisions"]) if d["decision"] == "decline")
    first = honest["decisions"][declined]
    seq = honest["approval_seq"]

    def changed(field: str, value: Any, i: int = declined) -> dict[str, Any]:
        body = json.loads(json.dumps(honest))
        body["decisions"][i][field] = value
        return body

    reasons = [first["reasons"][0] + " (edited)", *first["reasons"][1:]]
    values = [{**first["reason_values"][0], "value": "edited"}, *first["reason_values"][1:]]
    refusals = [
        (
            changed("score", "0.000001"),
            422,
            f'decisions[{declined}]: score "0.000001" differs from the server\'s '
            f'"{first["score"]}"',
        ),
        (
            changed("decision", "approve"),
            422,
            f'decisions[{declined}]: decision "approve" differs from the server\'s "decline"',
        ),
        (
            changed("reasons", reasons),
            422,
            f"decisions[{declined}]: reasons {json.dumps(reasons)} differs from the "
            f"server's {json.dumps(first['reasons'])}",
        ),
        (
            changed("reason_values", values),
            422,
            f"decisions[{declined}]: reason_values {json.dumps(values)} differs from the "
            f"server's {json.dumps(first['reason_values'])}",
        ),
        (
            changed("flags", {"out_of_range": ["income"]}),
            422,
            f'decisions[{declined}]: flags {{"out_of_range": ["income"]}} differs from the '
            "server's {}",
        ),
        (
            changed("inputs", {**rows[declined], "housing": "houseboat"}),
            422,
            f"decisions[{declined}]: the server refuses its inputs: inputs[{declined}].housing: "
            "'houseboat' is not a category the model was trained on "
            "(its categories: 'free', 'mortgage', 'own', 'rent')",
        ),
        (
            changed("inputs", {**rows[declined], "income": {"nested": 1}}),
            422,
            f"decisions[{declined}]: decision input 'income': dict is not a JSON scalar "
            "(str, int, float, bool or None)",
        ),
        (
            {**honest, "version": 7},
            409,
            f"refused to serve {MODEL} v7: status check failed: decisions[0] was made under "
            f"approval seq {seq}; {MODEL} is served now at v1 (approval seq {seq})",
        ),
        (
            {**honest, "approval_seq": seq - 1},
            409,
            f"refused to serve {MODEL} v1: status check failed: decisions[0] was made under "
            f"approval seq {seq - 1}; {MODEL} is served now at v1 (approval seq {seq})",
        ),
    ]
    before = served.logged()
    denied = len(kit.refusals())
    for body, status, detail in refusals:
        response = _post_decisions(served, body)
        assert (response.status_code, response.json()["detail"]) == (status, detail)
    served.settle(before)  # all or none: not one of the 40 honest decisions was written
    # the first refusal is an access.denied event at once (the others are counted)
    assert kit.refusals()[denied] == ("service-1", refusals[0][2])
    # the honest body itself is taken whole
    response = _post_decisions(served, honest)
    assert response.status_code == 200, response.text
    answer = response.json()
    ids = answer.pop("decision_ids")
    assert answer == {
        "model": MODEL,
        "version": 1,
        "alias": "champion",
        "approval_seq": seq,
        "recorded": 40,
    }
    served.settle(before + 40)
    assert [s.inputs for s in served.stored()[-40:]] == rows
    assert [s.decision_id for s in served.stored()[-40:]] == ids


HOSTILE = [
    b'{"version": "one", "approval_seq": 1, "decisions": []}',
    b'{"version": 1, "approval_seq": 1, "decisions": "all"}',
    b'{"version": 1, "approval_seq": 1, "decisions": [{"inputs": [], "score": 0.5, '
    b'"decision": "maybe", "reasons": {}}]}',
    b'{"version": 1, "approval_seq": 1, "decisions": [{"inputs": {"income": 1e400}, '
    b'"score": "0.5", "decision": "approve", "reasons": []}]}',
    b'{"version": 1, "approval_seq": 1, "decisions": [{"inputs": {}, "score": "0.5", '
    b'"decision": "approve", "reasons": [], "approved_by": "me"}]}',
    b'{"version": 1, "approval_seq": 1, "decisions": [{"inputs": '
    + b'{"a": ' * 50_000
    + b"1"
    + b"}" * 50_000
    + b', "score": "0.5", "decision": "approve", "reasons": []}]}',
    b'{"version": 1, "approval_seq": 1, "decisions": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}",
    b'{"version": 99999999999999999999999, "approval_seq": 1, "decisions": []}',
    b"[]",
    b"",
]


def test_hostile_decision_bodies_get_a_4xx_never_a_500(served: Served) -> None:
    honest = json.dumps(_posted(served, served.rows[:1])).encode()
    huge = honest[:-2] + b', "padding": "' + b"x" * (9 * 1024 * 1024) + b'"}'
    before = served.logged()
    with served.raw() as client:
        for body in HOSTILE:
            response = client.post(f"/v1/models/{MODEL}/decisions", content=body)
            assert 400 <= response.status_code < 500, (body[:60], response.text[:200])
            assert response.json()["detail"]
        assert client.post(f"/v1/models/{MODEL}/decisions", content=huge).status_code == 413
    served.settle(before)


def test_a_remote_scorer_of_a_version_no_longer_served_decides_nothing(served: Served) -> None:
    """Suspended: the server refuses its decisions and ``decide`` raises, returning
    none; a server that cannot be reached likewise. (Last: it suspends LENIENT.)"""
    kit = served.kit
    remote = served.remote(LENIENT)
    row = served.rows[0]
    before = served.logged()
    unreachable = Decider(
        remote.scorer, ServerSink("http://127.0.0.1:9", served.server.keys["service"], LENIENT)
    )
    with pytest.raises(DecisionLogError, match="the server did not record the decisions"):
        unreachable.decide([row])
    honest = _honest(remote.scorer, [row])
    kit.registry.suspend(kit["compliance-1"], LENIENT, 1, reason="drift")
    deadline = time.monotonic() + 10
    # an applicant with no field: 422 while the version is served, 409 once the
    # suspension reached the server (within its bound); never recorded
    while served.post([{}], LENIENT).status_code == 422:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    response = _post_decisions(served, honest, LENIENT)
    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"refused to serve {LENIENT} v1: status check failed: the version is suspended"
    )
    with pytest.raises(LoadRefused, match="the version is suspended"):
        remote.decide([row])
    served.settle(before)


# -- hostile values ----------------------------------------------------------------------------
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.text(max_size=20)
    | st.sampled_from(["\ud800", "x" * 100_000, "rent", "", "1e400", "NaN"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)
RAW = [
    b'{"applicants": [{"income": 1e400}]}',
    b'{"applicants": [{"income": NaN, "housing": Infinity}]}',
    b'{"applicants": [{"income": -Infinity}]}',
    b'{"applicants": [{"income": ' + b"9" * 5000 + b"}]}",
    b'{"applicants": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}",
    b'{"applicants": [{"housing": "\\ud800"}]}',
    b'{"applicants": [{"housing": "\xff\xfe"}]}',
    b'{"applicants": "all of them"}',
    b'{"applicants": [null, 1, "x", []]}',
    b'{"applicants": [{}], "extra": 1}',
    b"[]",
    b"",
]


def test_hostile_bodies_never_yield_a_500(served: Served) -> None:
    with served.raw() as client:
        for body in RAW:
            response = client.post(f"/v1/models/{MODEL}/score", content=body)
            assert response.status_code in (400, 422), (body[:60], response.text)
            assert response.json()["detail"]

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(data=st.data())
        def one(data: st.DataObject) -> None:
            row = dict(served.rows[0])
            for name in data.draw(
                st.lists(st.sampled_from(served.features), unique=True, max_size=4)
            ):
                row[name] = data.draw(JSON)
            row.update(data.draw(st.dictionaries(st.text(max_size=30), JSON, max_size=2)))
            body = json.dumps({"applicants": [row, served.rows[1]]}).encode()  # NaN tokens too
            response = client.post(f"/v1/models/{MODEL}/score", content=body)
            assert response.status_code == 200, response.text
            first, second = response.json()["results"]
            assert second["decision"] in ("approve", "decline")
            assert ("error" in first) != ("decision" in first)

        one()
    assert served.post(served.rows[:1]).status_code == 200  # still serving
