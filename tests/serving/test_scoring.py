"""The scorer on real lenders' data: oracle tests against Booster.predict on a DataFrame
with category dtypes, per-row answers, nulls, unseen categories, ranges, reasons, and
hostile values (hypothesis), on models trained with LightGBM."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lender import CATEGORICAL, REASONS, write_lender_candidate

from core.errors import InputError
from policies.schema import ScoringRules
from serving.approval import Approval
from serving.decisions import Decision, check_decision
from serving.errors import Check, LoadRefused
from serving.scoring import Reason, Refused, Scored, Scorer

REFUSE = ScoringRules()
LENIENT = ScoringRules(unseen_category="missing", out_of_range="score")
STRICT = ScoringRules(unseen_category="refuse", out_of_range="refuse")


def _approval(
    booster: Any,
    *,
    contract: dict[str, Any] | None,
    texts: dict[str, Any],
    rules: ScoringRules = REFUSE,
    suite: dict[str, Any] | None = None,
) -> Approval:
    return Approval(
        model="m",
        version=1,
        alias="champion",
        approval_seq=1,
        artifact_digest="0" * 64,
        evidence_digest="0" * 64,
        revalidate_by="2999-01-01T00:00:00.000000Z",
        features=booster.feature_name(),
        cutoff="0.5",
        reason_texts=texts,
        schema_suite=suite,
        retention_days=760,
        proof={},
        head=1,
        contract=contract,
        scoring=rules,
    )


class Lender:
    """The lender's model, its contract, its validation data in every shape."""

    def __init__(self, root: Path) -> None:
        import lightgbm
        import pandas as pd

        from validation.contract import derive

        self.files = write_lender_candidate(root)
        self.text = self.files["artifact"].read_text()
        self.booster = lightgbm.Booster(model_str=self.text)
        self.features: list[str] = self.booster.feature_name()
        self.train = pd.read_csv(self.files["train"])
        self.contract = derive(self.text, self.train, source="train.csv")
        self.csv = pd.read_csv(self.files["validation"])[self.features]
        self.parquet = pd.read_parquet(self.files["validation_parquet"])[self.features]
        # JSON rows as a client sends them: missing cells are null
        records = self.csv.astype(object).where(self.csv.notna(), None).to_dict(orient="records")
        self.rows: list[dict[str, Any]] = json.loads(json.dumps(records))

    def scorer(self, rules: ScoringRules = REFUSE) -> Scorer:
        approval = _approval(
            self.booster, contract=self.contract.canonical(), texts=REASONS, rules=rules
        )
        return Scorer(approval, self.booster)

    def frame(self, rows: list[dict[str, Any]]) -> Any:
        """``rows`` as the DataFrame LightGBM's pandas path takes: the model's category dtypes."""
        import pandas as pd

        frame = pd.DataFrame(rows, columns=self.features).astype(
            {f: "float64" for f in self.features if f not in CATEGORICAL}
        )
        for name, categories in zip(CATEGORICAL, self.booster.pandas_categorical, strict=True):
            if set(frame[name].dropna()) <= set(categories):
                frame[name] = pd.Categorical(frame[name], categories=categories)
            else:  # its own categories: LightGBM's pandas path sets the model's
                frame[name] = frame[name].astype("category")
        return frame

    def predict(self, rows: list[dict[str, Any]], **kwargs: Any) -> Any:
        return self.booster.predict(self.frame(rows), **kwargs)


@pytest.fixture(scope="module")
def lender(tmp_path_factory: pytest.TempPathFactory) -> Lender:
    return Lender(tmp_path_factory.mktemp("lender"))


def _scored(results: list[Any]) -> list[Scored]:
    assert all(isinstance(r, Scored) for r in results), [r for r in results if not r.flags]
    return results


# -- oracle ---------------------------------------------------------------------------------
def test_json_rows_with_categories_and_nulls_equal_booster_predict(lender: Lender) -> None:
    import numpy as np

    scorer = lender.scorer()
    rows = lender.rows[:400]
    assert any(r["employment_years"] is None for r in rows)
    assert any(r["purpose"] is None for r in rows)
    assert {r["housing"] for r in rows} == {"own", "mortgage", "rent", "free"}
    expected = lender.predict(rows)
    batch = _scored(scorer.score(rows))
    assert np.max(np.abs(np.array([s.probability_of_default for s in batch]) - expected)) <= 1e-12
    fast = 0
    for row, want, together in zip(rows, expected, batch, strict=True):
        fast += scorer._fast_row(row) is not None
        alone = scorer.score([row])[0]
        assert abs(alone.probability_of_default - want) <= 1e-12
        assert alone == together  # the single-row path agrees with the batch path
    # every row inside the training ranges takes the single-row fast path
    assert fast == sum(not s.flags for s in batch)
    assert 0 < sum(s.decision == "decline" for s in batch) < len(rows)


def test_score_frame_on_csv_and_parquet_read_frames(lender: Lender) -> None:
    import pandas as pd

    scorer = lender.scorer()
    from_json = scorer.score(lender.rows)
    assert str(lender.parquet["housing"].dtype) == "category"
    assert pd.api.types.is_string_dtype(lender.csv["housing"])
    assert scorer.score_frame(lender.csv) == from_json
    assert scorer.score_frame(lender.parquet) == from_json
    p = lender.booster.predict(lender.parquet)  # Parquet keeps the category dtype
    assert [s.probability_of_default for s in _scored(from_json)] == pytest.approx(
        list(p), abs=1e-12
    )
    # the flags say which rows lie outside the training ranges
    flagged = {i: s.flags for i, s in enumerate(from_json) if s.flags}
    for i, flags in flagged.items():
        for name in flags["out_of_range"]:
            feature = lender.contract[name]
            value = lender.rows[i][name]
            assert value < feature.minimum or value > feature.maximum
    assert flagged
    assert set().union(*flagged.values()) == {"out_of_range"}


def test_numbers_equal_to_a_category_score_as_it() -> None:
    """A model whose categories are integers: 2 and "2" are the category 2, as Parquet's
    2 and a CSV's "2" are; 2.5 and "two" are categories it never saw."""
    import lightgbm
    import numpy as np
    import pandas as pd

    from validation.contract import derive

    rng = np.random.default_rng(3)
    n = 600
    grade = rng.choice([1, 2, 3], size=n)
    x = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(x + grade - 2)))).astype(int)
    train = pd.DataFrame({"x": x, "grade": pd.Categorical(grade, categories=[1, 2, 3])})
    params = {"objective": "binary", "verbose": -1, "min_data_in_leaf": 10, "num_threads": 1}
    text = lightgbm.train(params, lightgbm.Dataset(train, label=y), 10).model_to_string()
    booster = lightgbm.Booster(model_str=text)
    contract = derive(text, train, source="train")
    approval = _approval(
        booster, contract=contract.canonical(), texts={"x": "x", "grade": "Grade"}, rules=LENIENT
    )
    scorer = Scorer(approval, booster)
    frame = pd.DataFrame({"x": [0.1] * 3, "grade": pd.Categorical([1, 2, 3], categories=[1, 2, 3])})
    want = booster.predict(frame)
    for sent in ([1, 2, 3], ["1", "2", "3"], [1.0, 2.0, 3.0]):
        got = _scored(scorer.score([{"x": 0.1, "grade": g} for g in sent]))
        assert [s.probability_of_default for s in got] == list(want)
        assert all(s.flags == {} for s in got)
    missing = booster.predict(
        pd.DataFrame({"x": [0.1], "grade": pd.Categorical([None], [1, 2, 3])})
    )
    for unseen in (2.5, "two", True, 7):
        got = _scored(scorer.score([{"x": 0.1, "grade": unseen}]))[0]
        assert (got.probability_of_default, got.flags) == (
            missing[0],
            {"unseen_category": ["grade"]},
        )


# -- the contract's rules ------------------------------------------------------------------
def test_unseen_category_refused_or_scored_as_missing(lender: Lender) -> None:
    row = {**lender.rows[0], "housing": "houseboat"}
    (refused,) = lender.scorer(REFUSE).score([row])
    assert refused == Refused(
        (
            (
                "applicants[0].housing",
                "'houseboat' is not a category the model was trained on "
                "(its categories: 'free', 'mortgage', 'own', 'rent')",
            ),
        ),
        ("housing",),
    )
    hostile = {**lender.rows[0], "purpose": "\x1b[31m" + "x" * 500}
    (escaped,) = lender.scorer(REFUSE).score([hostile])
    assert isinstance(escaped, Refused)
    assert escaped.error == (
        "applicants[0].purpose: '\\x1b[31mxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' is not a category the "
        "model was trained on (its categories: 'car', 'debt_consolidation', 'education', "
        "'home_improvement', 'other')"
    )
    (scored,) = lender.scorer(LENIENT).score([row])
    assert isinstance(scored, Scored)
    assert scored.flags == {"unseen_category": ["housing"]}
    as_missing = lender.predict([{**row, "housing": None}])[0]
    assert scored.probability_of_default == as_missing  # what LightGBM does with it
    assert lender.predict([row])[0] == as_missing  # (LightGBM's own pandas path agrees)


def test_nulls_only_where_training_had_missing_values(lender: Lender) -> None:
    scorer = lender.scorer()
    assert lender.contract["employment_years"].null_rate > 0.07
    assert lender.contract["purpose"].null_rate > 0.03
    assert lender.contract["income"].null_rate == lender.contract["housing"].null_rate == 0
    allowed = {**lender.rows[0], "employment_years": None, "purpose": None}
    (scored,) = scorer.score([allowed])
    assert isinstance(scored, Scored)
    assert scored.probability_of_default == lender.predict([allowed])[0]
    (refused,) = scorer.score([{**lender.rows[0], "income": None, "housing": None}])
    assert isinstance(refused, Refused)
    assert refused.error == (
        "applicants[0].income: null, but the training data had no missing values here; "
        "applicants[0].housing: null, but the training data had no missing values here"
    )
    assert refused.fields == ("income", "housing")


def test_out_of_range_scored_and_flagged_or_refused(lender: Lender) -> None:
    top = lender.contract["income"].maximum
    assert top == 270148.0
    row = {**lender.rows[0], "income": 2_000_000, "debt_to_income": -0.5}
    (scored,) = lender.scorer(REFUSE).score([row])  # the default: score and flag
    assert isinstance(scored, Scored)
    assert scored.flags == {"out_of_range": ["income", "debt_to_income"]}
    assert scored.probability_of_default == lender.predict([row])[0]
    (refused,) = lender.scorer(STRICT).score([row])
    assert isinstance(refused, Refused)
    assert refused.error == (
        "applicants[0].income: 2000000 is outside the training range 8048..270148; "
        "applicants[0].debt_to_income: -0.5 is outside the training range 0.002..1.0688"
    )


def test_a_mixed_batch_answers_each_row(lender: Lender) -> None:
    scorer = lender.scorer()
    good = lender.rows[:3]
    missing = {k: v for k, v in lender.rows[3].items() if k != "income"}
    odd = {**lender.rows[4], "income": "lots", "applicant_id": 7, "housing": {"own": True}}
    results = scorer.score([good[0], missing, good[1], odd, good[2], "not an object"])
    assert results[0] == scorer.score([good[0]])[0]
    assert results[2] == scorer.score([good[1]])[0]
    assert results[4] == scorer.score([good[2]])[0]
    assert results[1] == Refused((("applicants[1].income", "missing"),), ("income",))
    assert results[3] == Refused(
        (
            ("applicants[3].applicant_id", "unknown field; the model takes only its features"),
            ("applicants[3].income", "must be a number, got 'lots'"),
            ("applicants[3].housing", "must be a category (a string), got an object"),
        ),
        ("applicant_id", "income", "housing"),
    )
    assert results[5] == Refused(
        (("applicants[5]", "must be an object of feature values, got 'not an object'"),), ()
    )
    with pytest.raises(InputError, match="give at least one applicant"):
        scorer.score([])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"income": float("nan")}, "applicants[0].income: must be a finite number, got nan"),
        ({"income": float("inf")}, "applicants[0].income: must be a finite number, got inf"),
        ({"income": 10**400}, "applicants[0].income: an integer of 401 digits is beyond +-2^53"),
        ({"income": 2**53 + 1}, "applicants[0].income: 9007199254740993 is beyond +-2^53"),
        ({"income": True}, "applicants[0].income: must be a number, got true"),
        ({"income": "1"}, "applicants[0].income: must be a number, got '1'"),
        ({"income": [1]}, "applicants[0].income: must be a number, got a list"),
        ({"income": None}, "applicants[0].income: null, but the training data had no missing"),
        ({"housing": 3}, "applicants[0].housing: 3 is not a category the model was trained on"),
        ({"housing": float("nan")}, "applicants[0].housing: must be a category, got nan"),
        (
            {"housing": "x" * 2000},
            "applicants[0].housing: 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'",
        ),
        ({"housing": "\ud800"}, "applicants[0].housing: '\\ud800' is not valid Unicode text"),
        ({"x" * 100: 1}, "applicants[0].'" + "x" * 37 + "...': unknown field"),
    ],
)
def test_the_fast_paths_refuse_what_the_field_check_refuses(
    lender: Lender, change: dict[str, Any], message: str
) -> None:
    scorer = lender.scorer()
    good = lender.rows[1]
    bad = {**lender.rows[0], **change}
    (alone,) = scorer.score([bad])
    assert isinstance(alone, Refused)
    assert alone.error.startswith(message), alone.error
    ok, refused = scorer.score([good, bad])  # the column checks say the same
    assert ok == scorer.score([good])[0]
    assert isinstance(refused, Refused)
    assert refused.error.startswith(message.replace("[0]", "[1]")), refused.error


def test_frames_are_answered_row_by_row(lender: Lender) -> None:
    import numpy as np

    scorer = lender.scorer()
    frame = lender.csv.head(5).copy()
    frame.loc[1, "income"] = np.nan
    frame.loc[2, "housing"] = "houseboat"
    frame.loc[3, "employment_years"] = np.inf
    frame["open_accounts"] = frame["open_accounts"].astype(object)
    frame.loc[4, "open_accounts"] = "seven"
    results = scorer.score_frame(frame)
    assert results[0] == scorer.score([lender.rows[0]])[0]
    assert [r.error for r in results[1:]] == [
        "applicants[1].income: null, but the training data had no missing values here",
        "applicants[2].housing: 'houseboat' is not a category the model was trained on "
        "(its categories: 'free', 'mortgage', 'own', 'rent')",
        "applicants[3].employment_years: must be a finite number, got inf",
        "applicants[4].open_accounts: must be a number, got 'seven'",
    ]
    with pytest.raises(InputError, match=r"applicants.income: missing"):
        scorer.score_frame(frame.drop(columns=["income"]))
    with pytest.raises(InputError, match=r"applicants.extra: unknown field"):
        scorer.score_frame(frame.assign(extra=1))
    with pytest.raises(InputError, match=r"applicants: give at least one applicant"):
        scorer.score_frame(frame.iloc[:0])


# -- reasons -------------------------------------------------------------------------------
def _text(feature: str, category: Any) -> str:
    text = REASONS[feature]
    if isinstance(text, str):
        return text
    specific: str = text["categories"].get(category, text["default"])
    return specific


def test_declined_applicants_get_the_category_text_and_the_value(lender: Lender) -> None:
    import numpy as np

    scorer = lender.scorer()
    rows = lender.rows[:1500]
    results = _scored(scorer.score(rows))
    declined = [i for i, s in enumerate(results) if s.decision == "decline"]
    contrib = lender.predict([rows[i] for i in declined], pred_contrib=True)[:, :-1]
    rent = 0
    for k, i in enumerate(declined):
        c = contrib[k]
        order = [j for j in np.argsort(-c, kind="stable")[:4] if c[j] > 0]
        expected = [
            Reason(
                lender.features[j],
                _text(lender.features[j], rows[i][lender.features[j]]),
                float(c[j]),
                rows[i][lender.features[j]],
            )
            for j in order
        ]
        assert results[i].reasons == expected
        assert scorer.score([rows[i]])[0].reasons == expected  # the single-row path too
        rent += any(r.value == "rent" for r in expected if r.feature == "housing")
    assert rent > 0
    example = next(
        r
        for i in declined
        for r in results[i].reasons
        if (r.feature, r.value) == ("housing", "rent")
    )
    assert example.text == "Renting rather than owning a home"


# -- a version submitted before contracts were recorded -------------------------------------
def test_a_version_without_a_contract_scores_from_its_recorded_suite(lender: Lender) -> None:
    """The recorded suite's numbers are decimal strings (``"mostly": "0.910625"``); nulls
    are allowed where it allowed them, and the model's own categories still apply."""
    from policies.schema import DataSchemaParams
    from validation.data_schema import derive_suite
    from validation.result import jsonable

    suite = jsonable(derive_suite(lender.train, DataSchemaParams()))
    nulls = {
        e["kwargs"]["column"]: e["kwargs"]["mostly"]
        for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_not_be_null" and "mostly" in e["kwargs"]
    }
    assert nulls == {"employment_years": "0.909375", "purpose": "0.94425"}
    old = Scorer(
        _approval(lender.booster, contract=None, texts=REASONS, suite=suite), lender.booster
    )
    assert [f.kind for f in old.contract.features] == [f.kind for f in lender.contract.features]
    assert old.contract["housing"].categories == lender.contract["housing"].categories
    assert old.contract["income"].maximum == 270148.0
    assert old.score(lender.rows[:300]) == lender.scorer().score(lender.rows[:300])
    (refused,) = old.score([{**lender.rows[0], "income": None}])
    assert isinstance(refused, Refused)


def test_the_contract_must_describe_the_model(lender: Lender) -> None:
    canonical = lender.contract.canonical()

    def refused(contract: dict[str, Any]) -> str:
        approval = _approval(lender.booster, contract=contract, texts=REASONS)
        with pytest.raises(LoadRefused) as caught:
            Scorer(approval, lender.booster)
        assert caught.value.check == Check.CONTRACT
        return caught.value.detail

    other = json.loads(json.dumps(canonical))
    other["features"][9]["categories"] = ["own", "rent", "mortgage", "free"]
    assert refused(other) == "the contract's categories of 'housing' are not the model's"
    numeric = json.loads(json.dumps(canonical))
    numeric["features"][9] = {"name": "housing", "kind": "numeric", "null_rate": "0"}
    assert (
        refused(numeric) == "feature 'housing' is categorical in the model, numeric in the contract"
    )
    renamed = json.loads(json.dumps(canonical))
    renamed["features"][0]["name"] = "salary"
    assert refused(renamed).startswith("the recorded features ['salary',")
    assert refused({"features": "none"}) == "the data contract has no 'features' list"


# -- hostile values --------------------------------------------------------------------------
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(10**420), max_value=10**420)
    | st.text(max_size=30)
    | st.sampled_from(["\ud800", "x" * 5000, "rent", "own", "", "NaN", "1e400", "\x00"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    extra=st.dictionaries(st.text(max_size=80), JSON, max_size=2),
)
def test_hostile_values_never_crash(
    lender: Lender, data: st.DataObject, extra: dict[str, Any]
) -> None:
    """Any JSON value in any field, unknown fields too: each row is scored or refused with
    messages naming its fields; a decided row can always be logged as given; a good row
    beside it is answered as alone."""
    scorer = lender.scorer(data.draw(st.sampled_from([REFUSE, LENIENT, STRICT])))
    row = dict(lender.rows[0])
    for name in data.draw(st.lists(st.sampled_from(lender.features), unique=True, max_size=4)):
        row[name] = data.draw(JSON)
    row.update(extra)
    good = lender.rows[1]
    alone = scorer.score([row])[0]
    beside, other = scorer.score([row, good])
    assert other == scorer.score([good])[0]
    for result in (alone, beside):
        if isinstance(result, Refused):
            assert result.problems
            assert result.error.startswith("applicants[")
            assert "\n" not in result.error
            assert len(result.error) < 4000
        else:
            assert 0 <= result.probability_of_default <= 1
            assert not math.isnan(result.probability_of_default)
            check_decision(
                Decision(
                    model="m",
                    version=1,
                    approval_seq=1,
                    inputs=row,
                    score="0.5",
                    decision=result.decision,
                    reasons=[r.text for r in result.reasons],
                    retention_days=1,
                    flags=result.flags,
                    reason_values=[
                        {"feature": r.feature, "value": r.value} for r in result.reasons
                    ],
                )
            )
    assert (type(alone), getattr(alone, "probability_of_default", None)) == (
        type(beside),
        getattr(beside, "probability_of_default", None),
    )


# -- deciding: scored, rendered and recorded before the answer ---------------------------------
def test_decide_records_before_it_answers_and_answers_nothing_the_log_refuses(
    lender: Lender, kit: Any
) -> None:
    from audits.signing import SIGNING_KEY_FILE
    from serving.deciding import Decided, decide, decimal
    from serving.decisions import DecisionLog, read_decisions
    from serving.errors import DecisionLogError
    from serving.scoring import ApplicantsRefused

    scorer = lender.scorer()
    rows = [*lender.rows[:5], {"grade": "x"}]
    raw = scorer.score(rows)
    log = DecisionLog(
        kit.ctx.engine, kit.ctx.ledger.keyring, kit.settings.keys_path / SIGNING_KEY_FILE
    )
    try:
        results = decide(scorer, rows, sink=log)
        log.flush()
        with kit.ctx.engine.connect() as conn:
            stored = list(read_decisions(conn, kit.ctx.ledger.keyring))
        with pytest.raises(ApplicantsRefused, match=r"applicants\[0\]\.grade"):
            decide(scorer, rows[-1:], sink=log)
        log.flush()
        with kit.ctx.engine.connect() as conn:
            assert len(list(read_decisions(conn, kit.ctx.ledger.keyring))) == 5
    finally:
        log.close()
    assert results[5] == raw[5]  # the refused applicant, as the scorer refused it
    decided = [r for r in results if isinstance(r, Decided)]
    assert len(decided) == 5
    for got, s in zip(decided, raw[:5], strict=True):
        assert isinstance(s, Scored)
        assert got.probability_of_default == decimal(s.probability_of_default)
        assert [(r.feature, r.reason, r.value, r.contribution) for r in got.reasons] == [
            (r.feature, r.text, r.value, decimal(r.contribution)) for r in s.reasons
        ]
    assert [(d.model, d.version, d.approval_seq, d.inputs) for d in stored] == [
        ("m", 1, 1, row) for row in rows[:5]
    ]
    assert [(d.score, d.decision, d.reasons) for d in stored] == [
        (r.probability_of_default, r.decision, [x.reason for x in r.reasons]) for r in decided
    ]
    assert len({d.batch for d in stored}) == 1
    # each answer carries the id its decision is stored under
    assert [r.decision_id for r in decided] == [d.decision_id for d in stored]
    assert len({d.decision_id for d in stored}) == 5
    with pytest.raises(DecisionLogError, match="the decision log is closed"):
        decide(scorer, rows, sink=log)


class _Answering:
    """A sink that takes the decisions and answers with ``ids``."""

    def __init__(self, ids: object) -> None:
        self.ids = ids

    def record_many(self, decisions: object, /) -> object:
        return self.ids


@pytest.mark.parametrize(
    "ids", [None, [], ["0" * 32] * 6, ["0" * 31] * 5, ["A" * 32] * 5, [1, 2, 3, 4, 5]]
)
def test_a_sink_answering_without_one_id_per_decision_answers_nothing(
    lender: Lender, ids: object
) -> None:
    from serving.deciding import decide
    from serving.errors import DecisionLogError

    with pytest.raises(DecisionLogError, match="answered without 5 decision ids"):
        decide(lender.scorer(), lender.rows[:5], sink=_Answering(ids))  # type: ignore[arg-type]


def test_decimal_renders_six_places_from_the_shortest_repr() -> None:
    from serving.deciding import decimal

    assert [decimal(v) for v in (0.1, 0.0000005, 0.0000015, 1.0, 0.9423564999, 1e-300)] == [
        "0.100000",
        "0.000000",
        "0.000002",
        "1.000000",
        "0.942356",
        "0.000000",
    ]
