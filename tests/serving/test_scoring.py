"""The scorer's fast paths: oracle tests against Booster.predict and the per-field check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.errors import InputError
from serving.approval import Approval
from serving.scoring import Scorer


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Scorer, Any, list[dict[str, Any]]]:
    import lightgbm
    import pandas as pd

    from govreg.synthetic import write_candidate

    files = write_candidate(tmp_path_factory.mktemp("scoring"))
    booster = lightgbm.Booster(model_str=files["artifact"].read_text())
    features = booster.feature_name()
    frame = pd.read_csv(files["validation"])[features]
    suite = {
        "expectations": [
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {
                    "column": f,
                    "min_value": float(frame[f].min()),
                    "max_value": float(frame[f].max()),
                },
            }
            for f in features
        ]
    }
    approval = Approval(
        model="m",
        version=1,
        alias="champion",
        approval_seq=1,
        artifact_digest="0" * 64,
        evidence_digest="0" * 64,
        revalidate_by="2999-01-01T00:00:00.000000Z",
        features=features,
        cutoff="0.5",
        reason_texts=json.loads(Path(files["reasons"]).read_text()),
        schema_suite=suite,
        retention_days=760,
        proof={},
        head=1,
    )
    rows: list[dict[str, Any]] = frame.head(300).to_dict(orient="records")
    return Scorer(approval, booster), booster, rows


def test_single_rows_equal_booster_predict_and_its_contributions(made: Any) -> None:
    import numpy as np

    scorer, booster, rows = made
    assert scorer._single is not None
    declines = 0
    for row in rows:
        x = np.array([[row[f] for f in scorer.features]])
        got = scorer.score([row])[0]
        assert got.probability_of_default == float(booster.predict(x)[0])
        assert got == scorer.score_matrix(x)[0]  # the batch path agrees
        if got.decision == "decline":
            declines += 1
            c = booster.predict(x, pred_contrib=True)[0][:-1]
            order = [j for j in np.argsort(-c, kind="stable")[:4] if c[j] > 0]
            assert [r.feature for r in got.reasons] == [scorer.features[j] for j in order]
            assert [r.contribution for r in got.reasons] == [float(c[j]) for j in order]
    assert 0 < declines < len(rows)


def test_batches_from_dicts_and_frames_equal_booster_predict(made: Any) -> None:
    import numpy as np
    import pandas as pd

    scorer, booster, rows = made
    p = booster.predict(np.array([[r[f] for f in scorer.features] for r in rows]))
    from_dicts = scorer.score(rows)
    from_frame = scorer.score_frame(pd.DataFrame(rows))
    assert [s.probability_of_default for s in from_dicts] == p.tolist()
    assert from_frame == from_dicts


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"income": float("nan")}, "applicants[0].income: must be finite, got nan"),
        ({"income": float("inf")}, "applicants[0].income: must be finite, got inf"),
        ({"income": True}, "applicants[0].income: must be a number, got True"),
        ({"income": "1"}, "applicants[0].income: must be a number, got '1'"),
        ({"income": None}, "applicants[0].income: null"),
        ({"income": 1e12}, "applicants[0].income: 1000000000000.0 is outside the validated"),
        ({"extra": 1}, "applicants[0].extra: unknown field"),
    ],
)
def test_the_fast_paths_refuse_what_the_field_check_refuses(
    made: Any, change: dict[str, Any], message: str
) -> None:
    scorer, _, rows = made
    bad = {**rows[0], **change}
    for batch in ([bad], [rows[1], bad]):
        with pytest.raises(InputError) as caught:
            scorer.score(batch)
        assert message.replace("[0]", f"[{len(batch) - 1}]") in str(caught.value)
    missing = {k: v for k, v in rows[0].items() if k != "income"}
    with pytest.raises(InputError, match=r"applicants\[0\].income: missing"):
        scorer.score([missing])


def test_frames_are_checked_value_by_value(made: Any) -> None:
    import pandas as pd

    scorer, _, rows = made
    frame = pd.DataFrame(rows[:3])
    out = frame.copy()
    out.loc[2, "income"] = 1e12
    with pytest.raises(InputError, match=r"applicants\[2\].income: 1000000000000.0 is outside"):
        scorer.score_frame(out)
    with pytest.raises(InputError, match=r"applicants.income: missing"):
        scorer.score_frame(frame.drop(columns=["income"]))
    with pytest.raises(InputError, match=r"applicants.extra: unknown field"):
        scorer.score_frame(frame.assign(extra=1))
    with pytest.raises(InputError, match=r"applicants.income: must be a number"):
        scorer.score_frame(frame.assign(income="x"))
    nan = frame.copy()
    nan.loc[1, "income"] = float("nan")
    with pytest.raises(InputError, match=r"applicants\[1\].income: null"):
        scorer.score_frame(nan)
