"""The submission contract: what is refused (one exact line, nothing recorded) and
what a good submission stores."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from govreg_kit import MODEL
from govreg_kit import submit_args as cli_args
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core.errors import GovregError, NotFoundError, PermissionDenied

LGBM_HINT = "save it with booster.save_model('model.txt')"


# name -> (overrides as a function of the inputs, expected message, exit code)
Case = tuple[Callable[[Any], dict[str, Any]], Callable[[Any], str], int]
CASES: dict[str, Case] = {
    "missing artifact": (
        lambda f: {"artifact": f.root / "no-such-model.txt"},
        lambda f: f"artifact file {f.root / 'no-such-model.txt'} does not exist; check the path",
        2,
    ),
    "artifact is a folder": (
        lambda f: {"artifact": f.root},
        lambda f: f"artifact path {f.root} is not a file",
        2,
    ),
    "empty artifact": (
        lambda f: {"artifact": f.empty_artifact},
        lambda f: f"artifact {f.empty_artifact} is empty",
        2,
    ),
    "binary garbage": (
        lambda f: {"artifact": f.garbage_binary},
        lambda f: f"artifact {f.garbage_binary} is not text; {LGBM_HINT}",
        2,
    ),
    "text garbage": (
        lambda f: {"artifact": f.garbage_text},
        lambda f: (
            f"artifact {f.garbage_text} is not a LightGBM text model (it must start with "
            f"'tree'); {LGBM_HINT}"
        ),
        2,
    ),
    "pickle": (
        lambda f: {"artifact": f.pickle},
        lambda f: (
            f"artifact {f.pickle} is a pickle or zip archive; govreg accepts only LightGBM "
            "native text models (booster.save_model('model.txt'))"
        ),
        2,
    ),
    "missing train dataset": (
        lambda f: {"train": f.root / "no-such-train.csv"},
        lambda f: (
            f"train dataset file {f.root / 'no-such-train.csv'} does not exist; check the path"
        ),
        2,
    ),
    "dataset of another format": (
        lambda f: {"validation": f.bad["wrong_suffix"]},
        lambda f: f"dataset {f.bad['wrong_suffix']} must be .csv or .parquet, not '.json'",
        2,
    ),
    "zero-byte dataset": (
        lambda f: {"validation": f.bad["zero_bytes"]},
        lambda f: (
            f"dataset {f.bad['zero_bytes']} cannot be read as csv "
            "(EmptyDataError: 'No columns to parse from file')"
        ),
        2,
    ),
    "header only": (
        lambda f: {"validation": f.bad["header_only"]},
        lambda f: f"dataset {f.bad['header_only']} has no rows",
        2,
    ),
    "header only train": (
        lambda f: {"train": f.bad["header_only"]},
        lambda f: f"dataset {f.bad['header_only']} has no rows",
        2,
    ),
    "target column absent": (
        lambda f: {"validation": f.bad["no_target"]},
        lambda f: (
            f"dataset {f.bad['no_target']} has no target column 'default'; pass --target with "
            "one of income, debt_to_income, credit_utilisation, delinquencies_2y, "
            "months_since_last_delinquency, employment_years, age, open_accounts, "
            "inquiries_6m, loan_amount, postcode_risk, sex"
        ),
        2,
    ),
    "wrong target name": (
        lambda f: {"target": "defaulted"},
        lambda f: (
            f"dataset {f.train_csv} has no target column 'defaulted'; pass --target with "
            "one of income, debt_to_income, credit_utilisation, delinquencies_2y, "
            "months_since_last_delinquency, employment_years, age, open_accounts, "
            "inquiries_6m, loan_amount, postcode_risk, sex"
        ),
        2,
    ),
    "target with three values": (
        lambda f: {"validation": f.bad["three_classes"]},
        lambda f: (
            f"target column 'default' in {f.bad['three_classes']} is not binary: it must hold "
            "0 and 1 only, both present, no missing values (found ['0', '1', '2'])"
        ),
        2,
    ),
    "target with one class": (
        lambda f: {"validation": f.bad["one_class"]},
        lambda f: (
            f"target column 'default' in {f.bad['one_class']} is not binary: it must hold "
            "0 and 1 only, both present, no missing values (found ['0'])"
        ),
        2,
    ),
    "protected column absent": (
        lambda f: {"validation": f.bad["no_protected"]},
        lambda f: f"dataset {f.bad['no_protected']} has no protected column 'sex'; fix --protected",
        2,
    ),
    "protected column misnamed": (
        lambda f: {"protected": ["sex", "race"]},
        lambda f: f"dataset {f.train_csv} has no protected column 'race'; fix --protected",
        2,
    ),
    "no protected column declared": (
        lambda f: {"protected": []},
        lambda f: "declare at least one protected attribute with --protected",
        2,
    ),
    "model feature missing": (
        lambda f: {"validation": f.bad["no_feature"]},
        lambda f: f"dataset {f.bad['no_feature']} lacks the model's features income",
        2,
    ),
    "cutoff not a number": (
        lambda f: {"cutoff": "half"},
        lambda f: "--cutoff 'half' is not a number",
        2,
    ),
    "cutoff out of range": (
        lambda f: {"cutoff": "1.0"},
        lambda f: "--cutoff 1.0 must be strictly between 0 and 1",
        2,
    ),
    "unknown policy": (
        lambda f: {"policy_id": "no-such-policy"},
        lambda f: (
            "no policy 'no-such-policy' is adopted; propose it with `govreg policies propose FILE`"
        ),
        2,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_submission_is_refused_and_records_nothing(sqlite_kit: Any, case: str) -> None:
    kit = sqlite_kit
    overrides_of, message_of, exit_code = CASES[case]
    overrides = overrides_of(kit.files)
    message = message_of(kit.files)
    kit.people("ds-1")
    before = kit.state()
    assert before["blobs"] == set()

    with pytest.raises(GovregError) as caught:
        kit.submit(**overrides)
    assert str(caught.value) == message
    assert caught.value.exit_code == exit_code
    assert kit.state() == before

    result = kit.home.cli(*cli_args(kit.files, **overrides), api_key=kit.key("ds-1"))
    assert result.exit_code == exit_code
    assert result.stderr == f"error: {message}\n"
    assert result.stdout == ""
    assert kit.state() == before
    assert kit.row() is None
    assert kit.rows("models") == []
    kit.verify()


def test_every_bad_submission_records_nothing_on_either_database(kit: Any) -> None:
    """The refusals above, through the service, on SQLite and PostgreSQL (one home)."""
    kit.submit()  # a model and blobs exist: a refusal must not add to them
    before = kit.state()
    for case, (overrides_of, message_of, _code) in sorted(CASES.items()):
        with pytest.raises(GovregError) as caught:
            kit.submit(**overrides_of(kit.files))
        assert str(caught.value) == message_of(kit.files), case
        assert kit.state() == before, case
    assert kit.row(MODEL, 2) is None
    kit.verify()


def test_a_store_failure_leaves_no_blob_behind(kit: Any, monkeypatch: Any) -> None:
    assert kit.submit() == 1
    kept = kit.blobs()
    before = kit.state()

    def broken(conn: Any, events: Any, **_: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(kit.registry.recorder, "record", broken)
    with pytest.raises(OSError, match="disk full"):
        # Same artifact and train set (already stored), a new validation file.
        kit.submit(validation=kit.files.validation_csv)
    assert kit.state() == before
    assert kit.blobs() == kept
    kit.verify()


def test_only_data_scientists_submit(sqlite_kit: Any) -> None:
    kit = sqlite_kit
    kit.people("auditor-1", "validator-1")
    for who, role in (("auditor-1", "auditor"), ("validator-1", "validator"), ("admin", "admin")):
        before = kit.state()
        with pytest.raises(PermissionDenied) as caught:
            kit.submit(by=who)
        assert str(caught.value) == f"'{who}' ({role}) may not submit"
        result = kit.home.cli(*cli_args(kit.files), api_key=kit.key(who))
        assert result.exit_code == 6
        assert result.stderr == f"error: '{who}' ({role}) may not submit\n"
        assert kit.state() == before
    assert kit.row() is None


def test_a_model_name_must_be_safe(sqlite_kit: Any) -> None:
    kit = sqlite_kit
    kit.people("ds-1")
    before = kit.state()
    result = kit.home.cli(*cli_args(kit.files, model="../etc"), api_key=kit.key("ds-1"))
    assert result.exit_code == 2
    assert result.stderr == (
        "error: model name '../etc' is not allowed: use 1-100 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit\n"
    )
    assert kit.state() == before


def test_show_of_an_unknown_model_or_version(sqlite_kit: Any) -> None:
    kit = sqlite_kit
    kit.submit()
    key = kit.key("auditor-1")
    before = kit.state()
    for args, message in (
        (("nope", "1"), "no model 'nope'; see `govreg versions list`"),
        ((MODEL, "7"), "model 'pd' has no version 7"),
    ):
        with pytest.raises(NotFoundError) as caught:
            kit.registry.show_version(kit["auditor-1"], args[0], int(args[1]))
        assert str(caught.value) == message
        result = kit.home.cli("versions", "show", *args, api_key=key)
        assert result.exit_code == 4
        assert result.stderr == f"error: {message}\n"
    result = kit.home.cli("versions", "list", "nope", api_key=key)
    assert result.exit_code == 4
    assert result.stderr == "error: no model 'nope'; see `govreg versions list`\n"
    assert kit.state() == before


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_good_submission_stores_content_addressed_blobs_once(kit: Any) -> None:
    files = kit.files
    assert kit.submit(train=files.train_csv, validation=files.validation_parquet) == 1
    store = Path(kit.settings.store_path)
    digests = {sha(files.model), sha(files.train_csv), sha(files.validation_parquet)}
    assert kit.blobs() == {store / "sha256" / d[:2] / d for d in digests}
    for path in (files.model, files.train_csv, files.validation_parquet):
        assert kit.registry.store.get(sha(path)) == path.read_bytes()

    row = kit.row()
    assert row is not None
    assert row["artifact_digest"] == sha(files.model)
    assert row["train_digest"] == sha(files.train_csv)
    assert row["validation_digest"] == sha(files.validation_parquet)
    assert (row["status"], row["target"], row["cutoff"]) == ("submitted", "default", "0.5")
    assert json.loads(row["protected"]) == ["sex", "age_band"]
    assert json.loads(row["features"]) == files.features
    assert (row["policy_id"], row["policy_version"]) == ("credit-risk", 1)

    submitted = kit.events(model=MODEL, version=1, types=["version.submitted"])
    assert len(submitted) == 1
    data = submitted[0].data
    assert data["artifact"] == {
        "digest": sha(files.model),
        "size": files.model.stat().st_size,
        "format": "lightgbm-text",
    }
    assert data["num_trees"] == 20
    assert data["train"]["format"] == "csv"
    assert data["train"]["rows"] == 800
    assert data["validation"]["format"] == "parquet"
    assert data["validation"]["rows"] == 400
    assert data["policy_digest"] == row["policy_digest"]
    datasets = {d["digest"]: d for d in kit.rows("datasets")}
    assert set(datasets) == {row["train_digest"], row["validation_digest"]}
    assert [a["digest"] for a in kit.rows("artifacts")] == [row["artifact_digest"]]

    # The same bytes again: a new version, no new blob.
    blobs = kit.blobs()
    assert kit.submit(train=files.train_csv, validation=files.validation_parquet) == 2
    assert kit.blobs() == blobs
    assert [e.type for e in kit.events(model=MODEL)] == [
        "model.registered",
        "version.submitted",
        "version.submitted",
    ]
    kit.verify()


def test_submit_json_and_the_policys_cutoff(sqlite_kit: Any) -> None:
    kit = sqlite_kit
    result = kit.home.cli(
        *cli_args(kit.files, train=kit.files.train_parquet, cutoff="0.50"),
        "--json",
        api_key=kit.key("ds-1"),
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"model": MODEL, "version": 1, "status": "submitted"}
    assert kit.row()["cutoff"] == "0.5"  # another cutoff: tests/registry/test_cutoff_policy.py
    result = kit.home.cli(*cli_args(kit.files), api_key=kit.key("ds-1"))
    assert result.exit_code == 0
    assert result.stdout == "submitted pd v2\n"
    kit.verify()


# -- the data contract: categorical features and missing values ---------------------------
@pytest.fixture(scope="module")
def categorical(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A model on categorical columns with missing values, its good files and bad ones."""
    import lightgbm as lgb
    import yaml

    from govreg.synthetic import MONOTONE, make_credit_data, reason_texts, train_lightgbm

    root = tmp_path_factory.mktemp("categorical")
    data = make_credit_data(1500, seed=3, realistic=True)
    train, validation = data.iloc[:1000], data.iloc[1000:].reset_index(drop=True)
    files = {
        "model": root / "model.txt",
        "train": root / "train.csv",
        "validation": root / "validation.parquet",
        "reasons": root / "reasons.yaml",
    }
    files["model"].write_text(
        train_lightgbm(train, num_boost_round=15, monotone=MONOTONE), encoding="utf-8"
    )
    train.to_csv(files["train"], index=False)
    validation.to_parquet(files["validation"], index=False)
    texts = reason_texts(realistic=True)
    files["reasons"].write_text(yaml.safe_dump(texts, sort_keys=False), encoding="utf-8")

    def write(name: str, frame: Any) -> None:
        files[name] = root / f"{name}.csv"
        frame.to_csv(files[name], index=False)

    typed = train.astype({"income": object})
    typed.loc[typed.index[6], "income"] = "unknown"  # pandas reads 'n/a', 'NA', '' as missing
    write("text_in_train", typed)
    typed = validation.astype({"loan_amount": object})
    typed.loc[typed.index[2], "loan_amount"] = "12,500"
    write("text_in_validation", typed)
    boat = train.astype({"housing": object})
    boat.loc[boat.index[:3], "housing"] = "boat"
    write("unseen_in_train", boat)

    # a model trained on a column named with a space: LightGBM calls it loan_purpose
    spaced = train.rename(columns={"loan_purpose": "loan purpose"})
    features = ["income", "debt_to_income", "housing", "loan purpose"]
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "seed": 0},
        lgb.Dataset(spaced[features], spaced[TARGET_COLUMN]),
        num_boost_round=5,
    )
    assert booster.feature_name()[-1] == "loan_purpose"
    files["model_spaced"] = root / "model_spaced.txt"
    files["model_spaced"].write_text(booster.model_to_string(), encoding="utf-8")
    write("train_spaced", spaced)
    # a categorical feature of integer codes: the model has no category names
    codes = train.assign(housing=train["housing"].cat.codes)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "seed": 0},
        lgb.Dataset(codes[["income", "housing"]], codes[TARGET_COLUMN], categorical_feature=[1]),
        num_boost_round=5,
    )
    files["model_codes"] = root / "model_codes.txt"
    files["model_codes"].write_text(booster.model_to_string(), encoding="utf-8")
    write("train_codes", codes)

    without = {k: v for k, v in texts.items() if k != "housing"}
    files["reasons_without_housing"] = root / "reasons_without_housing.yaml"
    files["reasons_without_housing"].write_text(yaml.safe_dump(without), encoding="utf-8")
    unknown = {**texts, "housing": {"default": "Housing", "categories": {"caravan": "A van"}}}
    files["reasons_unknown_category"] = root / "reasons_unknown_category.yaml"
    files["reasons_unknown_category"].write_text(yaml.safe_dump(unknown), encoding="utf-8")
    return files


TARGET_COLUMN = "default"
CATEGORICAL_HINT = "write a number, or leave the cell empty for a missing value"
# name -> (overrides of the categorical files, expected message)
ContractCase = tuple[Callable[[dict[str, Path]], dict[str, Path]], Callable[[dict[str, Path]], str]]
CONTRACT_CASES: dict[str, ContractCase] = {
    "text in a numeric training column": (
        lambda f: {"train": f["text_in_train"]},
        lambda f: (
            f"column 'income' of {f['text_in_train']} must be numeric (the model treats it as "
            f"a number), but row 7 holds 'unknown'; {CATEGORICAL_HINT}"
        ),
    ),
    "text in a numeric validation column": (
        lambda f: {"validation": f["text_in_validation"]},
        lambda f: (
            f"column 'loan_amount' of {f['text_in_validation']} must be numeric (the model "
            f"treats it as a number), but row 3 holds '12,500'; {CATEGORICAL_HINT}"
        ),
    ),
    "a column LightGBM renamed": (
        lambda f: {"artifact": f["model_spaced"], "train": f["train_spaced"]},
        lambda f: (
            f"dataset {f['train_spaced']} lacks the model's features loan_purpose; LightGBM "
            "renamed columns when the model was trained ('loan purpose' -> 'loan_purpose'): "
            "rename them so in your data, or train on names without spaces"
        ),
    ),
    "a categorical feature of integer codes": (
        lambda f: {"artifact": f["model_codes"], "train": f["train_codes"]},
        lambda f: (
            "feature 'housing' is categorical in the model, but the model carries no category "
            "names for it; train on a pandas DataFrame with the column as dtype 'category' so "
            "the model records its categories"
        ),
    ),
    "training categories the model does not know": (
        lambda f: {"train": f["unseen_in_train"]},
        lambda f: (
            f"column 'housing' of {f['unseen_in_train']} holds 3 rows with categories the model "
            "does not know (e.g. 'boat'); the model's categories are ['own', 'mortgage', "
            "'rent', 'other']: was it trained on this data?"
        ),
    ),
    "reasons without a feature": (
        lambda f: {"reasons": f["reasons_without_housing"]},
        lambda f: "reason texts lack 1 of the model's features: housing; give each feature a text",
    ),
    "reasons naming a category the model does not know": (
        lambda f: {"reasons": f["reasons_unknown_category"]},
        lambda f: (
            "reason texts for 'housing' name category 'caravan', which the model does not know; "
            "its categories are 'own', 'mortgage', 'rent', 'other'"
        ),
    ),
}


def contract_args(files: dict[str, Path], overrides: dict[str, Path]) -> dict[str, Any]:
    """Registry.submit arguments (the reasons file read as the CLI reads it)."""
    import yaml

    chosen = {
        "artifact": files["model"],
        "train": files["train"],
        "validation": files["validation"],
        "reasons": files["reasons"],
        **overrides,
    }
    texts = yaml.safe_load(chosen.pop("reasons").read_text(encoding="utf-8"))
    return {**chosen, "reason_texts": texts}


def contract_cli(files: dict[str, Path], overrides: dict[str, Path]) -> list[str]:
    chosen = {
        "artifact": files["model"],
        "train": files["train"],
        "validation": files["validation"],
        "reasons": files["reasons"],
        **overrides,
    }
    args = ["submit", MODEL, "--target", TARGET_COLUMN, "--protected", "sex,age_band"]
    for key, path in chosen.items():
        args += [f"--{key}", str(path)]
    return args


@pytest.mark.parametrize("case", sorted(CONTRACT_CASES))
def test_data_that_cannot_feed_the_model_is_refused_by_name(
    sqlite_kit: Any, categorical: dict[str, Path], case: str
) -> None:
    kit = sqlite_kit
    overrides_of, message_of = CONTRACT_CASES[case]
    overrides, message = overrides_of(categorical), message_of(categorical)
    kit.people("ds-1")
    before = kit.state()

    with pytest.raises(GovregError) as caught:
        kit.submit(**contract_args(categorical, overrides))
    assert str(caught.value) == message
    assert caught.value.exit_code == 2
    assert kit.state() == before

    result = kit.home.cli(*contract_cli(categorical, overrides), api_key=kit.key("ds-1"))
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"error: {message}\n"
    assert kit.state() == before
    assert kit.row() is None
    assert kit.rows("models") == []
    kit.verify()


def test_contract_refusals_record_nothing_on_either_database(
    kit: Any, categorical: dict[str, Path]
) -> None:
    assert kit.submit(**contract_args(categorical, {})) == 1
    before = kit.state()
    for case, (overrides_of, message_of) in sorted(CONTRACT_CASES.items()):
        with pytest.raises(GovregError) as caught:
            kit.submit(**contract_args(categorical, overrides_of(categorical)))
        assert str(caught.value) == message_of(categorical), case
        assert kit.state() == before, case
    assert kit.row(MODEL, 2) is None
    kit.verify()


def test_a_categorical_submission_through_the_cli_records_categories_and_texts(
    sqlite_kit: Any, categorical: dict[str, Path]
) -> None:
    import pandas as pd

    from govreg.synthetic import CATEGORIES, reason_texts

    kit = sqlite_kit
    result = kit.home.cli(*contract_cli(categorical, {}), api_key=kit.key("ds-1"))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"submitted {MODEL} v1\n"
    submitted = kit.events(model=MODEL, version=1, types=["version.submitted"])[0].data
    contract = {f["name"]: f for f in submitted["contract"]["features"]}
    for name, categories in CATEGORIES.items():
        assert contract[name] == {
            "name": name,
            "kind": "categorical",
            "null_rate": "0.0",
            "categories": list(categories),
        }
    train = pd.read_csv(categorical["train"])
    assert contract["income"]["null_rate"] == repr(float(train["income"].isna().mean()))
    assert float(contract["months_since_last_delinquency"]["null_rate"]) > 0.4
    # The reasons file's texts per category are recorded as written, not as text.
    texts = reason_texts(realistic=True)
    assert submitted["reason_texts"]["housing"] == texts["housing"]
    assert submitted["reason_texts"]["loan_purpose"]["categories"]["business"] == (
        "Credit requested for business purposes"
    )
    assert submitted["reason_texts"] == {f: texts[f] for f in contract}
    kit.verify()


_yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@example(document={"a\nb": {"default": ""}})  # a name with a newline, echoed escaped
@given(document=st.dictionaries(st.text(max_size=12), _yaml_values, max_size=5) | _yaml_values)
def test_any_reasons_file_is_read_and_checked_or_refused_in_one_line(
    tmp_path: Path, document: Any
) -> None:
    """The CLI's reasons reader and the checks behind it: an InputError, never a crash."""
    import yaml

    from core.errors import InputError
    from registry.inputs import read_reasons
    from validation.contract import DataContract, Feature
    from validation.reasons import check, normalise

    path = tmp_path / "reasons.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    contract = DataContract(
        (
            Feature("income", "numeric", 0.0),
            Feature("housing", "categorical", 0.0, ("own", "rent")),
        )
    )
    try:
        recorded = check(normalise(read_reasons(path)), contract)
    except InputError as refused:
        message = str(refused)
    else:
        assert set(recorded) <= {"income", "housing"}
        return
    assert message
    assert "\n" not in message  # one line, whatever the file holds
