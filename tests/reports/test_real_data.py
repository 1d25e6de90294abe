"""A lender's data, end to end: categorical columns, missing values, CSV and Parquet.

A LightGBM model trained on pandas ``category`` columns (LightGBM's native
categorical handling) with about 8% missing values in a numeric column is
submitted from a CSV (categories as strings, empty cells) and a Parquet file
(category dtype, nulls). Every gate measures it (no ``error`` verdict), the
recorded data contract is exactly what the model and the training data say,
and the PDF report shows the contract and the categories.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from govreg_homes import make_home

TARGET = "default"
PROTECTED = ["sex"]
HOUSING = ["mortgage", "own", "rent"]  # pandas sorts the categories; the model keeps them
PURPOSE = ["business", "car", "education"]


def lender_frame(n: int, seed: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    income = rng.lognormal(10.5, 0.4, n).round(0)
    housing = rng.choice(["own", "rent", "mortgage"], n, p=[0.3, 0.4, 0.3])
    purpose = rng.choice(PURPOSE, n)
    utilisation = rng.uniform(0, 1, n).round(4)
    logit = (
        -1.2
        - 1.6 * (income / 40_000 - 1)
        + 0.9 * (housing == "rent")
        + 0.5 * (purpose == "business")
        + 1.8 * utilisation
    )
    default = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame = pd.DataFrame(
        {
            "income": income,
            "housing": pd.Categorical(housing, categories=HOUSING),
            "purpose": pd.Categorical(purpose, categories=PURPOSE),
            "utilisation": utilisation,
            "sex": rng.choice(["F", "M"], n),
            TARGET: default,
        }
    )
    frame.loc[rng.permutation(n)[: int(0.08 * n)], "utilisation"] = np.nan  # exactly 8%
    return frame


@pytest.fixture(scope="module")
def lender(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import lightgbm as lgb

    root = tmp_path_factory.mktemp("lender")
    train, validation = lender_frame(3000, 1), lender_frame(1500, 2)
    features = ["income", "housing", "purpose", "utilisation"]
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 15, "seed": 0},
        lgb.Dataset(train[features], train[TARGET]),
        num_boost_round=60,
    )
    model = root / "model.txt"
    model.write_text(booster.model_to_string(), encoding="utf-8")
    train.to_csv(root / "train.csv", index=False)
    validation.to_parquet(root / "validation.parquet", index=False)
    (root / "reasons.yaml").write_text(
        "income: Income too low for the amount requested\n"
        "utilisation: High use of existing credit\n"
        "purpose: Purpose of the loan\n"
        "housing:\n"
        "  default: Housing status\n"
        "  categories:\n"
        "    rent: Renting rather than owning a home\n",
        encoding="utf-8",
    )
    return {
        "root": root,
        "booster": booster,
        "train": train,
        "validation": validation,
        "features": features,
    }


def _submit(ctx: Any, ds: Any, root: Path, **extra: Any) -> int:
    import yaml

    version: int = ctx.registry.submit(
        ds,
        "lender",
        artifact=root / "model.txt",
        train=root / "train.csv",
        validation=root / "validation.parquet",
        target=TARGET,
        protected=PROTECTED,
        reason_texts=yaml.safe_load((root / "reasons.yaml").read_text()),
        **extra,
    )
    return version


def test_a_categorical_model_with_nulls_is_measured_by_every_gate_and_reported(
    lender: dict[str, Any], database_url: str, tmp_path: Path
) -> None:
    import numpy as np

    from reports.service import generate_report

    home = make_home(tmp_path / "home", database_url)
    ctx = home.context()
    try:
        admin = ctx.registry.authenticate(home.admin_key)
        _, key = ctx.registry.create_principal(admin, "ds-1", "data_scientist")
        ds = ctx.registry.authenticate(key)
        _, key = ctx.registry.create_principal(admin, "auditor-1", "auditor")
        auditor = ctx.registry.authenticate(key)
        version = _submit(ctx, ds, lender["root"])

        # The contract: the model's own categories, the training null rate and range.
        train = lender["train"]
        contract = ctx.registry.submission("lender", version)["contract"]
        assert ctx.registry.show_version(ds, "lender", version)["contract"] == contract
        utilisation = train["utilisation"].dropna()
        assert contract == {
            "features": [
                {
                    "name": "income",
                    "kind": "numeric",
                    "null_rate": "0.0",
                    "minimum": repr(float(train["income"].min())),
                    "maximum": repr(float(train["income"].max())),
                },
                {
                    "name": "housing",
                    "kind": "categorical",
                    "null_rate": "0.0",
                    "categories": HOUSING,
                },
                {
                    "name": "purpose",
                    "kind": "categorical",
                    "null_rate": "0.0",
                    "categories": PURPOSE,
                },
                {
                    "name": "utilisation",
                    "kind": "numeric",
                    "null_rate": repr(float(train["utilisation"].isna().mean())),
                    "minimum": repr(float(utilisation.min())),
                    "maximum": repr(float(utilisation.max())),
                },
            ]
        }
        # The reason texts recorded: per category for housing.
        assert ctx.registry.submission("lender", version)["reason_texts"]["housing"] == {
            "default": "Housing status",
            "categories": {"rent": "Renting rather than owning a home"},
        }

        ctx.registry.evaluate(ds, "lender", version)
        shown = ctx.registry.show_version(auditor, "lender", version)
        gates = {g["gate_id"]: g for g in shown["gates"]}
        assert set(gates) == {
            "performance",
            "fairness",
            "data-schema",
            "explainability",
            "stability",
            "latency",
        }
        assert {g: r["verdict"] for g, r in gates.items() if r["verdict"] == "error"} == {}
        # Category-typed Parquet columns pass the suite derived from the CSV's strings.
        assert gates["data-schema"]["verdict"] == "passed", gates["data-schema"]["message"]

        # Performance: the AUC LightGBM's own pandas path gives on the validation frame.
        from sklearn.metrics import roc_auc_score

        validation = lender["validation"]
        expected = roc_auc_score(
            validation[TARGET], lender["booster"].predict(validation[lender["features"]])
        )
        assert float(gates["performance"]["values"]["auc"]) == pytest.approx(expected, abs=1e-11)

        # Stability: one bin per category of housing, shares as counted directly.
        bins = {b["category"]: b for b in gates["stability"]["details"]["bins"]["housing"]}
        assert sorted(bins) == HOUSING
        share = float((validation["housing"] == "rent").mean())
        assert float(bins["rent"]["actual_share"]) == pytest.approx(share, abs=1e-11)

        # Explainability: a mean contribution per category, from LightGBM's pred_contrib.
        by_category = gates["explainability"]["details"]["contributions_by_category"]
        assert [r["category"] for r in by_category["housing"]] == HOUSING
        assert sum(r["rows"] for r in by_category["purpose"]) == int(
            gates["explainability"]["details"]["importance_rows"]
        )

        # Data schema: the value set of housing is the model's categories.
        suite = gates["data-schema"]["details"]["suite"]["expectations"]
        value_sets = {
            e["kwargs"]["column"]: e["kwargs"]["value_set"]
            for e in suite
            if e["type"] == "expect_column_values_to_be_in_set"
        }
        assert value_sets["housing"] == HOUSING
        assert value_sets["purpose"] == PURPOSE
        assert np.isfinite(float(gates["stability"]["values"]["utilisation"]))

        from audits.signing import load_public_key

        key = load_public_key(home.settings().public_key_path)
        report = generate_report(ctx.registry, auditor, "lender", version, public_key=key)
        pdf = tmp_path / "report.pdf"
        pdf.write_bytes(report.pdf)
        text = subprocess.run(
            ["pdftotext", "-raw", str(pdf), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert "Data contract" in text
        assert "3 categories: mortgage, own, rent" in text
        assert "rent: Renting rather than owning a home" in text
        assert "housing by category" in text
    finally:
        ctx.close()


def test_an_unseen_validation_category_fails_the_data_schema_gate_by_name(
    lender: dict[str, Any], tmp_path: Path
) -> None:
    import pandas as pd

    root = tmp_path / "files"
    root.mkdir()
    for name in ("model.txt", "train.csv", "reasons.yaml"):
        (root / name).write_bytes((lender["root"] / name).read_bytes())
    validation = lender["validation"].copy()
    housing = validation["housing"].astype(object)
    housing.iloc[:40] = "caravan"
    validation["housing"] = pd.Categorical(housing)
    validation.to_parquet(root / "validation.parquet", index=False)
    home = make_home(tmp_path / "home", f"sqlite:///{tmp_path / 'g.db'}")
    ctx = home.context()
    try:
        admin = ctx.registry.authenticate(home.admin_key)
        _, key = ctx.registry.create_principal(admin, "ds-1", "data_scientist")
        ds = ctx.registry.authenticate(key)
        version = _submit(ctx, ds, root)
        status = ctx.registry.evaluate(ds, "lender", version)
        assert status.value == "gates_failed"
        show = ctx.registry.show_version(admin, "lender", version)
        schema = next(g for g in show["gates"] if g["gate_id"] == "data-schema")
        assert schema["verdict"] == "failed"
        assert (
            "expect_column_values_to_be_in_set(housing) unexpected ['caravan']"
            in (schema["message"])
        )
        # The stability gate gives the unseen category a bin of its own, by its text.
        stability = next(g for g in show["gates"] if g["gate_id"] == "stability")
        bins = {b["category"]: b for b in stability["details"]["bins"]["housing"]}
        assert sorted(bins) == sorted([*HOUSING, "caravan"])
        assert bins["caravan"]["expected_share"] == "0"
        assert float(bins["caravan"]["actual_share"]) == pytest.approx(40 / 1500, abs=1e-11)
    finally:
        ctx.close()
