"""The data contract: model features read from the text model, values mapped as LightGBM's
pandas path maps them, the canonical record, and hostile input to each parser."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import InputError
from validation.contract import (
    DataContract,
    Feature,
    ModelFeature,
    category_key,
    derive,
    model_features,
    renamed_hint,
)


@pytest.fixture(scope="module")
def trained() -> dict[str, Any]:
    import lightgbm as lgb
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    n = 4000
    frame = pd.DataFrame(
        {
            "income": rng.normal(50, 10, n),
            "housing": pd.Categorical(rng.choice(["own", "rent", "free"], n)),
            "grade": pd.Categorical(rng.choice([1, 2, 5], n)),
            "dti": rng.normal(0.3, 0.1, n),
        }
    )
    frame.loc[rng.random(n) < 0.1, "dti"] = np.nan
    frame.loc[rng.random(n) < 0.05, "housing"] = np.nan
    y = ((frame["housing"] == "rent") | (frame["grade"] == 5) | (rng.random(n) < 0.2)).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 8, "seed": 0},
        lgb.Dataset(frame, y),
        num_boost_round=30,
    )
    return {"booster": booster, "text": booster.model_to_string(), "frame": frame}


def test_model_features_are_the_models_kinds_and_categories(trained: dict[str, Any]) -> None:
    assert model_features(trained["text"]) == [
        ModelFeature("income", "numeric"),
        ModelFeature("housing", "categorical", ("free", "own", "rent")),
        ModelFeature("grade", "categorical", (1, 2, 5)),
        ModelFeature("dti", "numeric"),
    ]


@pytest.mark.parametrize("fmt", ["frame", "csv", "parquet"])
def test_encoding_equals_lightgbms_pandas_path(trained: dict[str, Any], fmt: str) -> None:
    """Oracle: ``booster.predict`` on the category-typed frame, to 1e-12, whatever the file."""
    import numpy as np
    import pandas as pd

    frame = trained["frame"]
    if fmt == "csv":
        given_frame = pd.read_csv(io.StringIO(frame.to_csv(index=False)))
        assert given_frame["housing"].dtype != "category"  # strings and empty cells
    elif fmt == "parquet":
        given_frame = pd.read_parquet(io.BytesIO(frame.to_parquet(index=False)))
    else:
        given_frame = frame
    contract = derive(trained["text"], given_frame, source="train")
    booster = trained["booster"]
    expected = booster.predict(frame)
    got = booster.predict(contract.encode(given_frame))
    assert np.max(np.abs(got - expected)) <= 1e-12


def test_an_unseen_category_is_missing_as_lightgbm_treats_it(trained: dict[str, Any]) -> None:
    import numpy as np
    import pandas as pd

    frame = trained["frame"].head(50).copy()
    contract = derive(trained["text"], trained["frame"], source="train")
    strings = frame.astype({"housing": object, "grade": object})
    strings.loc[strings.index[:7], "housing"] = "castle"
    reference = frame.copy()
    reference.loc[reference.index[:7], "housing"] = np.nan  # what set_categories makes of it
    booster = trained["booster"]
    got = booster.predict(contract.encode(strings))
    assert np.max(np.abs(got - booster.predict(reference))) <= 1e-12
    assert contract.unseen(strings) == {"housing": {"rows": 7, "examples": ["castle"]}}
    assert pd.isna(contract.encode(strings)[0, 1])


def test_the_contract_records_categories_null_rates_and_exact_ranges(
    trained: dict[str, Any],
) -> None:
    frame = trained["frame"]
    contract = derive(trained["text"], frame, source="train")
    dti = frame["dti"].dropna()
    assert contract.canonical() == {
        "features": [
            {
                "name": "income",
                "kind": "numeric",
                "null_rate": "0.0",
                "minimum": repr(float(frame["income"].min())),
                "maximum": repr(float(frame["income"].max())),
            },
            {
                "name": "housing",
                "kind": "categorical",
                "null_rate": repr(float(frame["housing"].isna().mean())),
                "categories": ["free", "own", "rent"],
            },
            {"name": "grade", "kind": "categorical", "null_rate": "0.0", "categories": [1, 2, 5]},
            {
                "name": "dti",
                "kind": "numeric",
                "null_rate": repr(float(frame["dti"].isna().mean())),
                "minimum": repr(float(dti.min())),
                "maximum": repr(float(dti.max())),
            },
        ]
    }
    again = DataContract.from_canonical(json.loads(json.dumps(contract.canonical())))
    assert again == contract
    assert again["dti"].nullable
    assert not again["income"].nullable
    assert again["grade"].code("5") == 2
    assert again["grade"].code(5.0) == 2


def test_category_keys_match_text_and_numbers() -> None:
    assert category_key("2") == category_key(2) == category_key(2.0) == "2"
    assert category_key(2.5) == "2.5"
    assert category_key(True) == "True"


def test_a_numeric_column_holding_text_is_refused_naming_column_row_and_value(
    trained: dict[str, Any],
) -> None:
    frame = trained["frame"].astype({"income": object})
    frame.loc[frame.index[11], "income"] = "n/a"
    with pytest.raises(InputError) as caught:
        derive(trained["text"], frame, source="train.csv")
    assert str(caught.value) == (
        "column 'income' of train.csv must be numeric (the model treats it as a number), "
        "but row 12 holds 'n/a'; write a number, or leave the cell empty for a missing value"
    )


def test_training_categories_the_model_does_not_know_are_refused(
    trained: dict[str, Any],
) -> None:
    frame = trained["frame"].astype({"housing": object})
    frame.loc[frame.index[:3], "housing"] = "boat"
    with pytest.raises(InputError) as caught:
        derive(trained["text"], frame, source="train.csv")
    assert str(caught.value) == (
        "column 'housing' of train.csv holds 3 rows with categories the model does not know "
        "(e.g. 'boat'); the model's categories are ['free', 'own', 'rent']: was it trained "
        "on this data?"
    )


def test_a_categorical_feature_without_category_names_is_refused() -> None:
    import lightgbm as lgb
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"code": rng.integers(0, 4, 600), "x": rng.normal(size=600)})
    y = (frame["code"] == 3).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1},
        lgb.Dataset(frame, y, categorical_feature=["code"]),
        num_boost_round=5,
    )
    with pytest.raises(InputError) as caught:
        model_features(booster.model_to_string(), source="model.txt")
    assert str(caught.value).startswith(
        "feature 'code' is categorical in model.txt, but the model carries no category names"
    )


def test_a_column_lightgbm_renamed_is_named_with_the_rename() -> None:
    assert renamed_hint(["loan_amount"], ["loan amount", "income"]) == (
        "; LightGBM renamed columns when the model was trained ('loan amount' -> "
        "'loan_amount'): rename them so in your data, or train on names without spaces"
    )
    assert renamed_hint(["income"], ["salary"]) == ""
    contract = DataContract((Feature("loan_amount", "numeric", 0.0),))
    import pandas as pd

    with pytest.raises(InputError) as caught:
        contract.check_frame(pd.DataFrame({"loan amount": [1.0]}), source="train.csv")
    assert str(caught.value) == (
        "dataset train.csv lacks the model's features loan_amount; LightGBM renamed columns "
        "when the model was trained ('loan amount' -> 'loan_amount'): rename them so in your "
        "data, or train on names without spaces"
    )


# -- hostile input to the parsers -------------------------------------------------------
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(["name", "kind", "null_rate", "categories", "minimum", "maximum", "x"]),
        _json,
    )
)
def test_a_hostile_contract_record_is_refused_or_read_never_a_crash(item: dict[str, Any]) -> None:
    try:
        contract = DataContract.from_canonical({"features": [item]})
    except InputError:
        return
    assert len(contract.features) == 1


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.text(max_size=60), st.text(max_size=40))
def test_hostile_model_header_lines_are_refused_or_read_never_a_crash(
    categorical: str, names: str, infos: str
) -> None:
    text = (
        f"tree\nversion=v4\nfeature_names={names}\nfeature_infos={infos}\n\nend of trees\n\n"
        f"parameters:\n[categorical_feature: {categorical}]\nend of parameters\n\n"
        f"pandas_categorical:{categorical}\n"
    )
    try:
        features = model_features(text)
    except InputError:
        return
    assert [f.name for f in features] == names.split(" ")
